"""torchrun plumbing: this process's rank, the process group, and collectives that are no-ops alone.

``torchrun --nproc_per_node=N -m minerrestore ...`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them (NCCL on CUDA, gloo on
CPU) and :class:`Distributed` wraps the few collectives training needs, each of which does
nothing in a single process. ``restore`` needs less: :func:`distributed_env` (rank and world
size), :func:`shard` (every N-th file), :func:`gather_reports` and :func:`merge_reports` (one
report on rank 0). torch is imported when a collective first runs, so importing this module
stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from minerrestore.batch import BatchReport, ItemResult
from minerrestore.device import resolve_device
from minerrestore.errors import MinerRestoreError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

_T = TypeVar("_T")


REPORT_TIMEOUT = timedelta(days=7)
"""How long ranks wait for the slowest one before a report merge."""


def distributed_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's ``RANK`` / ``WORLD_SIZE`` (0, 1 when not under torchrun).

    Raises:
        UsageError: malformed values, or ``WORLD_SIZE`` above 1 without ``RANK``.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and "RANK" not in os.environ:
            raise UsageError("WORLD_SIZE is set but RANK is missing", hint="start with torchrun")
        rank = int(os.environ.get("RANK", "0"))
    except ValueError as exc:
        raise UsageError(f"RANK / WORLD_SIZE are not integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world


def local_rank_env() -> int:
    """This process's rank on its machine, torchrun's ``LOCAL_RANK`` (0 when unset).

    Raises:
        UsageError: not an integer.
    """
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise UsageError(f"LOCAL_RANK is not an integer ({exc})") from exc


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (selects the CUDA device).
        owns_group: the process group was created here and is destroyed by :meth:`close`.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs and writes)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process runs."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process."""
        if self.enabled:
            import torch.distributed as torch_dist

            torch_dist.barrier()

    def broadcast(self, value: _T) -> _T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        import torch.distributed as torch_dist

        box = [value]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: _T) -> list[_T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.enabled:
            return [value]
        import torch.distributed as torch_dist

        boxes: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(boxes, value)
        return boxes

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` is set on any rank."""
        if not self.enabled:
            return flag
        import torch
        import torch.distributed as torch_dist

        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def mean(self, tensor: Tensor) -> Tensor:
        """Element-wise mean over ranks."""
        if not self.enabled:
            return tensor
        import torch.distributed as torch_dist

        tensor = tensor.clone()
        torch_dist.all_reduce(tensor)
        return tensor / self.world_size

    def average_gradients(self, parameters: Sequence[nn.Parameter]) -> None:
        """Replace each gradient by its mean over ranks (one flat all-reduce)."""
        if not self.enabled:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        import torch
        import torch.distributed as torch_dist

        flat = torch.cat([g.reshape(-1) for g in grads])
        torch_dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def sync_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if self.enabled:
            import torch.distributed as torch_dist

            for tensor in module.state_dict().values():
                torch_dist.broadcast(tensor, src=0)

    def close(self) -> None:
        """Destroy the process group if it was created by :func:`init_distributed`."""
        if not self.owns_group:
            return
        import torch.distributed as torch_dist

        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def init_distributed(device_spec: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun process group (``WORLD_SIZE`` > 1) and pick this process's device.

    Uses NCCL when running on CUDA (device ``cuda:LOCAL_RANK``), gloo on CPU.

    Raises:
        UsageError: the environment is incomplete or the device is invalid.
    """
    rank, world_size = distributed_env()
    device = resolve_device(device_spec)
    if world_size <= 1:
        return Distributed(), device
    local_rank = local_rank_env()
    import torch
    import torch.distributed as torch_dist

    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not torch_dist.is_initialized()
    if owns:
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return Distributed(rank, world_size, local_rank, owns), device


def main_first(dist: Distributed, task: Callable[[], _T]) -> _T:
    """Run ``task`` on rank 0 and give its result (or its error) to every rank."""
    if not dist.enabled:
        return task()
    outcome: tuple[Any, tuple[str, str | None, tuple[str, ...], int] | None] = (None, None)
    error: MinerRestoreError | None = None
    if dist.is_main:
        try:
            outcome = (task(), None)
        except MinerRestoreError as exc:
            error = exc
            outcome = (None, (exc.message, exc.hint, exc.settings, exc.exit_code))
    result, failure = dist.broadcast(outcome)
    if error is not None:
        raise error
    if failure is not None:
        remote = MinerRestoreError(failure[0], failure[1], settings=failure[2])
        remote.exit_code = failure[3]
        raise remote
    return result



def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """The share of process ``rank``: every ``world_size``-th item starting at ``rank``."""
    return list(items[rank::world_size])


def merge_reports(parts: Sequence[Mapping[str, Any]], order: Sequence[str], description: str) -> BatchReport:
    """One :class:`BatchReport` from the ``to_dict()`` of every rank, items in ``order``.

    Args:
        parts: ``BatchReport.to_dict()`` of each process.
        order: item names (input paths) in the order of the whole run.
        description: label of the merged report.
    """
    results = {item["item"]: ItemResult(**item) for part in parts for item in part["items"]}
    position = {name: index for index, name in enumerate(order)}
    ordered = sorted(results.values(), key=lambda r: position.get(r.item, len(position)))
    return BatchReport(description, ordered, max((float(part["seconds"]) for part in parts), default=0.0))


def gather_reports(report: BatchReport, rank: int, world: int) -> list[dict[str, Any]] | None:
    """Every rank's report on rank 0 (None elsewhere), over torch.distributed (gloo)."""
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=REPORT_TIMEOUT)
    try:
        parts: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(report.to_dict(), parts, dst=0)
        return parts
    finally:
        if created:
            dist.destroy_process_group()

__all__ = [
    "REPORT_TIMEOUT",
    "Distributed",
    "distributed_env",
    "gather_reports",
    "init_distributed",
    "local_rank_env",
    "main_first",
    "merge_reports",
    "shard",
]
