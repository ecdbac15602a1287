"""Device selection, seeding and worker counts shared by every command."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

from minerrestore.errors import UsageError

if TYPE_CHECKING:  # torch is imported inside the functions so that CLI start-up stays fast
    import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a :class:`torch.device`.

    ``auto`` picks the first CUDA device when one is available, else the CPU.

    Raises:
        UsageError: an unknown spec, or CUDA asked for where there is none.
    """
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {spec}: CUDA is not available here", hint="use device cpu or auto", settings=("device",)
            )
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) present",
                hint="use an index below the number of CUDA devices",
                settings=("device",),
            )
        return device
    raise UsageError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N", settings=("device",))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for reproducible runs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_workers() -> int:
    """All cores this process may use (respects CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
