"""Training of the improved GFP-GAN: the library side of ``minerrestore train``.

Trains a restorer of :mod:`minerrestore.archs.restorer` (any of the paper's schemes A-G,
METHOD.md section 2) with the losses of :mod:`minerrestore.losses` (paper Eq. 9-13 and
GFP-GAN's pyramid and style terms, METHOD.md section 3) and the optimisation of section 4:
Adam for the generator, the StyleGAN2 discriminator (lazy R1) and the three facial-component
discriminators, an exponential moving average of the generator, a multi-step learning rate.

A run lives in one folder (``train.out_dir``)::

    config.yml                 the resolved config (what this run really used)
    checkpoints/iter_NNNNNNNN.pt   networks, EMA, optimisers, schedulers, iteration, RNG states
    log.jsonl                  one JSON record per log step, validation and event
    tensorboard/               TensorBoard events (when tensorboard is installed)
    val/iter_NNNNNNNN.png      validation grids: degraded | restored (EMA) | ground truth
    aligned/                   faces aligned once with the detector and the FFHQ template
    restorer_ema.safetensors   the EMA generator at the end (for ``minerrestore restore``)
    loss_curves.png            the losses over the run

Checkpoints are written atomically every ``train.checkpoint_every`` iterations, at the end,
and on Ctrl-C/SIGTERM (the current iteration finishes first), so a run killed outright loses
at most one interval. ``resume=True`` continues exactly: the data order comes from
(seed, epoch), every degradation from (seed, epoch, file name), and the noise from the
restored random-number states; on CPU a resumed run reproduces the uninterrupted one.

Under ``torchrun --nproc_per_node=N`` each process trains on its share of every batch
(``data.batch_size`` is the total) and gradients are averaged over processes after every
backward pass (gloo on CPU, NCCL on CUDA); rank 0 aligns the data, logs, validates and writes
checkpoints. Averaging gradients explicitly instead of wrapping the networks in
``DistributedDataParallel`` keeps the GAN's switching of ``requires_grad`` and the parameters
the loss stops using (pyramid outputs after ``pyramid_until``) correct without
``find_unused_parameters``. On CUDA the forward passes run under autocast (``optim.amp``).

Follows the official GFP-GAN training (``gfpgan/models/gfpgan_model.py``,
``options/train_gfpgan_v1.yml``, Apache-2.0); written for minerrestore (MIT).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from minerrestore import losses as L
from minerrestore.config import Config, ModelConfig, config_to_dict, config_to_yaml, from_dict, load_config, replace
from minerrestore.device import resolve_device
from minerrestore.errors import ConfigError, MinerRestoreError, UsageError
from minerrestore.io import IMAGE_SUFFIXES, atomic_path, atomic_write_text, list_images, read_image, write_image

CHECKPOINT_FORMAT = "minerrestore.train/1"
CHECKPOINT_PATTERN = re.compile(r"iter_(\d{8})\.pt$")
EMA_EXPORT = "restorer_ema.safetensors"
RUN_FILES = ("config.yml", "log.jsonl", "checkpoints")  # a folder holding any of these is a run

_T = TypeVar("_T")


# =============================================================================================
# run folder


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run folder.

    Attributes:
        root: the run folder (``train.out_dir``).
    """

    root: Path

    @property
    def config(self) -> Path:
        """The resolved config, ``config.yml``."""
        return self.root / "config.yml"

    @property
    def checkpoints(self) -> Path:
        """Folder of checkpoints."""
        return self.root / "checkpoints"

    @property
    def log(self) -> Path:
        """JSON-lines log."""
        return self.root / "log.jsonl"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event folder."""
        return self.root / "tensorboard"

    @property
    def val(self) -> Path:
        """Folder of validation grids."""
        return self.root / "val"

    @property
    def aligned(self) -> Path:
        """Cache of aligned faces."""
        return self.root / "aligned"

    @property
    def loss_curves(self) -> Path:
        """Loss-curve plot."""
        return self.root / "loss_curves.png"

    @property
    def ema_export(self) -> Path:
        """EMA generator weights written at the end."""
        return self.root / EMA_EXPORT

    def checkpoint(self, iteration: int) -> Path:
        """Checkpoint file of ``iteration``."""
        return self.checkpoints / f"iter_{iteration:08d}.pt"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """(iteration, path) of every checkpoint, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = []
        for path in self.checkpoints.iterdir():
            match = CHECKPOINT_PATTERN.search(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run folder.
        iteration: iterations completed.
        interrupted: stopped early by Ctrl-C or SIGTERM (resume with ``resume=True``).
        checkpoint: the last checkpoint written.
        ema_weights: the exported EMA generator (None when interrupted).
        validation: the last validation figures.
        seconds: wall time of this session.
    """

    run_dir: Path
    iteration: int
    interrupted: bool
    checkpoint: Path | None
    ema_weights: Path | None
    validation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


# =============================================================================================
# distributed plumbing


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
        """True when more than one process trains."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process."""
        if self.enabled:
            torch_dist.barrier()

    def broadcast(self, value: _T) -> _T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        box = [value]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: _T) -> list[_T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.enabled:
            return [value]
        boxes: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(boxes, value)
        return boxes

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` is set on any rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def mean(self, tensor: Tensor) -> Tensor:
        """Element-wise mean over ranks."""
        if not self.enabled:
            return tensor
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
            for tensor in module.state_dict().values():
                torch_dist.broadcast(tensor, src=0)

    def close(self) -> None:
        """Destroy the process group if it was created by :func:`init_distributed`."""
        if self.owns_group and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def init_distributed(device_spec: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun process group (``WORLD_SIZE`` > 1) and pick this process's device.

    Uses NCCL when training on CUDA (device ``cuda:LOCAL_RANK``), gloo on CPU.

    Raises:
        UsageError: the environment is incomplete or the device is invalid.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_spec)
    if world_size <= 1:
        return Distributed(), device
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as exc:
        raise UsageError("WORLD_SIZE is set but RANK is missing", hint="start with torchrun") from exc
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not torch_dist.is_initialized()
    if owns:
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return Distributed(rank, world_size, local_rank, owns), device


def _main_first(dist: Distributed, task: Callable[[], _T]) -> _T:
    """Run ``task`` on rank 0 and give its result (or its error) to every rank."""
    if not dist.enabled:
        return task()
    outcome: tuple[Any, tuple[str, str | None, int] | None] = (None, None)
    error: MinerRestoreError | None = None
    if dist.is_main:
        try:
            outcome = (task(), None)
        except MinerRestoreError as exc:
            error = exc
            outcome = (None, (exc.message, exc.hint, exc.exit_code))
    result, failure = dist.broadcast(outcome)
    if error is not None:
        raise error
    if failure is not None:
        remote = MinerRestoreError(failure[0], failure[1])
        remote.exit_code = failure[2]
        raise remote
    return result


# =============================================================================================
# data


@dataclass(frozen=True)
class FaceItem:
    """One training or validation face.

    Attributes:
        name: name relative to its folder (seeds its degradations).
        gt: ground-truth image (an aligned crop, or the user's aligned face).
        lq: the low-quality twin for paired data; None when degraded on the fly.
        landmarks: (5, 2) landmarks in the coordinates of a ``out_size`` crop, as a tuple.
    """

    name: str
    gt: Path
    lq: Path | None
    landmarks: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class DataPlan:
    """The faces a run trains and validates on, and what was skipped.

    Attributes:
        train: training faces, sorted by name.
        val: validation faces, sorted by name.
        skipped: ``name: reason`` of images left out (no face found, unreadable).
        source: where the faces came from (for the log).
    """

    train: tuple[FaceItem, ...]
    val: tuple[FaceItem, ...]
    skipped: tuple[str, ...]
    source: str


def _template_landmarks(size: int) -> tuple[tuple[float, float], ...]:
    from minerrestore.face import template_for

    return tuple((float(x), float(y)) for x, y in template_for(size))


def split_names(paths: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Sorted-name split: the last ``val_fraction`` (at least one when asked) goes to validation."""
    if val_fraction <= 0 or len(paths) < 2:
        return paths, []
    count = min(len(paths) - 1, max(1, math.ceil(len(paths) * val_fraction)))
    return paths[:-count], paths[-count:]


def _aligned_items(root: Path, paths: Sequence[Path], size: int) -> list[FaceItem]:
    """Faces that already are FFHQ-aligned: their landmarks are the template's."""
    template = _template_landmarks(size)
    return [FaceItem(path.relative_to(root).as_posix(), path, None, template) for path in paths]


def _paired_folders(root: Path) -> tuple[Path, Path] | None:
    gt, lq = root / "gt", root / "lq"
    return (gt, lq) if gt.is_dir() and lq.is_dir() else None


def _list_faces(folder: str, key: str) -> tuple[Path, list[Path]]:
    """The images of a data folder (of its ``gt/`` for a paired folder), sorted.

    Raises:
        UsageError: the folder is missing or holds no image.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"{key}: {root} is not a folder", hint=f"set {key}=/path/to/faces")
    paths = list_images(root / "gt" if _paired_folders(root) else root)
    if not paths:
        raise UsageError(f"{key}: no images in {root}", hint=f"image files end in {', '.join(IMAGE_SUFFIXES)}")
    return root, paths


def _readable(root: Path, paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Paths whose image header can be read, and ``name: reason`` of the others (a fast check)."""
    from PIL import Image, UnidentifiedImageError

    good, bad = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size  # noqa: B018  (reads the header)
            good.append(path)
        except (OSError, UnidentifiedImageError) as exc:
            bad.append(f"{path.relative_to(root).as_posix()}: unreadable ({exc})")
    return good, bad


def _paired_items(root: Path, paths: Sequence[Path], size: int) -> list[FaceItem]:
    gt_dir, lq_dir = root / "gt", root / "lq"
    items = []
    for path in paths:
        name = path.relative_to(gt_dir).as_posix()
        lq = lq_dir / name
        if not lq.is_file():
            raise UsageError(f"{path}: no low-quality twin {lq}", hint="give the --out folder of minerrestore degrade")
        items.append(FaceItem(name, path, lq, _template_landmarks(size)))
    return items


def _align_one(path: Path, out_dir: Path, size: int, detector: str) -> dict[str, Any]:
    """Detect the largest face of ``path``, align it onto the FFHQ template, save the crop (run_batch worker)."""
    from minerrestore.face import detect_faces, estimate_affine, get_largest_face, warp_face

    rgb = read_image(path).rgb
    faces = detect_faces(rgb, detector=detector)
    if not faces:
        raise UsageError(f"{path}: no face found, skipped")
    face = get_largest_face(faces)
    affine = estimate_affine(face.landmarks, size)
    crop = warp_face(rgb, affine, size)
    out = out_dir / f"{path.name}.png"
    write_image(out, crop, protect=[path])
    points = np.asarray(face.landmarks, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]
    return {"crop": out.name, "landmarks": np.round(points, 3).tolist()}


def _align_folder(
    paths: Sequence[Path], root: Path, cache: Path, size: int, detector: str, workers: int, quiet: bool
) -> tuple[list[FaceItem], list[str]]:
    """Align ``paths`` into ``cache`` once (``cache/index.json`` remembers the result)."""
    from minerrestore.batch import run_batch

    index_file = cache / "index.json"
    names = [path.relative_to(root).as_posix() for path in paths]
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        if index.get("names") != names or index.get("size") != size:
            raise UsageError(
                f"{cache}: aligned faces of a different image list or size",
                hint="start a new run (another train.out_dir) when the data changed",
            )
    else:
        process = partial(_align_one, out_dir=cache, size=size, detector=detector)
        description = f"aligning faces ({cache.name})"
        report = run_batch(list(paths), process, workers=workers, description=description, quiet=quiet)
        entries = {}
        for name, result in zip(names, report.results, strict=True):
            entries[name] = result.info if result.status == "done" else {"error": result.error}
        index = {"names": names, "size": size, "faces": entries}
        atomic_write_text(index_file, json.dumps(index, indent=1))
    items, skipped = [], []
    for name in names:
        entry = index["faces"][name]
        if "error" in entry:
            skipped.append(f"{name}: {entry['error']}")
            continue
        landmarks = tuple((float(x), float(y)) for x, y in entry["landmarks"])
        items.append(FaceItem(name, cache / entry["crop"], None, landmarks))
    return items, skipped


def plan_data(config: Config, layout: RunLayout, quiet: bool = False) -> DataPlan:
    """Find the training and validation faces; align them once into the run folder when needed.

    Raises:
        UsageError: a data folder is missing or empty, or no usable face is left.
    """
    data = config.data
    _check_data_folders(config)
    key = "data.paired_dir" if data.paired_dir is not None else "data.train_dir"
    root, paths = _list_faces(str(data.paired_dir or data.train_dir), key)
    train_paths, val_paths = split_names(paths, 0.0 if data.val_dir else data.val_fraction)
    train_paths = train_paths[: data.max_images] if data.max_images is not None else train_paths
    if data.paired_dir is None:
        source = f"{'aligned ' if data.aligned else ''}faces in {root}, degraded with {', '.join(data.presets)}"
        if data.degrade_scales != (1,):
            source += f" at scales {', '.join(map(str, data.degrade_scales))}"
    else:
        source = f"pairs (gt/, lq/) in {root}"
    train, skipped = _items(root, train_paths, config, layout.aligned / "train", quiet)
    val, skipped_val = _items(root, val_paths[: config.log.val_images], config, layout.aligned / "val", quiet)
    if data.val_dir is not None:
        val_root, val_paths = _list_faces(data.val_dir, "data.val_dir")
        val, skipped_val = _items(val_root, val_paths[: config.log.val_images], config, layout.aligned / "val", quiet)
    if not train:
        raise UsageError(f"no usable training face ({source}; {len(skipped)} skipped)", hint="check the data folder")
    return DataPlan(tuple(train), tuple(val), tuple(skipped + skipped_val), source)


def _items(
    root: Path, paths: Sequence[Path], config: Config, cache: Path, quiet: bool
) -> tuple[list[FaceItem], list[str]]:
    """Faces of one folder: pairs, aligned faces, or photos aligned once into ``cache``; and the skipped ones."""
    data, size = config.data, config.model.out_size
    if _paired_folders(root) is not None:
        good, skipped = _readable(root / "gt", paths)
        return _paired_items(root, good, size), skipped
    if data.aligned:
        good, skipped = _readable(root, paths)
        return _aligned_items(root, good, size), skipped
    workers = max(1, data.num_workers)
    return _align_folder(paths, root, cache, size, data.detector, workers, quiet)


def _pick(options: Sequence[_T], rng: np.random.Generator) -> _T:
    """One of ``options`` drawn with ``rng``; a single option draws nothing (keeps the stream)."""
    return options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]


class FacePairs(Dataset):
    """(lq, gt, component boxes) for ``(index, epoch)`` keys: deterministic given the seed.

    Faces are degraded on the fly with one of ``presets`` (drawn per sample), or read from
    paired files; ``hflip`` mirrors half of the samples (the eye boxes swap accordingly).
    Everything random comes from ``image_seed(seed, name, epoch)``, so a sample does not
    depend on workers, order or process.

    Args:
        items: the faces.
        size: side of the square faces.
        presets: degradation presets (names or files).
        seed: global seed.
        hflip: random horizontal flip.
        eye_enlarge: eye-box enlargement (see :func:`minerrestore.losses.component_boxes`).
        scales: degradation scales, one drawn per sample
            (:func:`minerrestore.degrade.apply_degradation_at_scale`).
    """

    def __init__(
        self,
        items: Sequence[FaceItem],
        size: int,
        presets: Sequence[str],
        seed: int,
        hflip: bool,
        eye_enlarge: float,
        scales: Sequence[int] = (1,),
    ) -> None:
        from minerrestore.presets import load_preset

        self.items = list(items)
        self.size = size
        self.presets = [load_preset(p) for p in presets]
        self.seed = seed
        self.hflip = hflip
        self.scales = tuple(scales)
        boxes = []  # computed once per face: (boxes, boxes of the mirrored face)
        for item in self.items:
            points = np.asarray(item.landmarks, dtype=np.float32)
            mirrored = L.flip_landmarks(points, size)
            boxes.append(np.stack([L.component_boxes(p, eye_enlarge) for p in (points, mirrored)]))
        self.boxes = np.stack(boxes) if boxes else np.zeros((0, 2, 3, 4), np.float32)

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(lq, gt, mirrored) uint8 HxWx3 RGB arrays of face ``index`` at ``epoch``."""
        from minerrestore.augment import image_seed
        from minerrestore.degrade import apply_degradation_at_scale, prepare_gt, sample_params

        item = self.items[index]
        rng = np.random.default_rng(image_seed(self.seed, item.name, epoch))
        gt = prepare_gt(read_image(item.gt).rgb, self.size, "stretch")
        if item.lq is not None:
            lq = prepare_gt(read_image(item.lq).rgb, self.size, "stretch")
        else:
            params = sample_params(_pick(self.presets, rng), rng)
            lq = apply_degradation_at_scale(gt, params, _pick(self.scales, rng))
        mirrored = self.hflip and bool(rng.random() < 0.5)
        if mirrored:
            gt, lq = np.ascontiguousarray(gt[:, ::-1]), np.ascontiguousarray(lq[:, ::-1])
        return lq, gt, mirrored

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        from minerrestore.datasets import to_tensor

        index, epoch = key
        lq, gt, mirrored = self.pair(index, epoch)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "boxes": torch.from_numpy(self.boxes[index, int(mirrored)])}


class IterationSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, epoch)`` keys for iterations ``start`` .. ``end`` - 1 of this rank.

    Each epoch is a permutation of the faces drawn from (seed, epoch); every iteration takes
    the next ``batch_size * world_size`` faces (an epoch's remainder is dropped) and this
    rank takes its slice. The batch of an iteration is a pure function of its number, so a
    resumed run sees exactly the batches an uninterrupted run would.

    Args:
        num_items: number of faces.
        batch_size: faces per rank and iteration.
        seed: seed of the permutations.
        start: first iteration (0-based, i.e. iterations already done).
        end: iteration to stop before.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, end: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.end = end
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = num_items // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"{num_items} training faces are fewer than one batch ({batch_size} x {world_size} processes)",
                hint="lower data.batch_size or add faces",
            )

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def permutation(self, epoch: int) -> list[int]:
        """The order of the faces in ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_items, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order: list[int] = []
        current = -1
        global_batch = self.batch_size * self.world_size
        for iteration in range(self.start, self.end):
            epoch, step = divmod(iteration, self.steps_per_epoch)
            if epoch != current:
                order, current = self.permutation(epoch), epoch
            begin = step * global_batch + self.rank * self.batch_size
            yield [(index, epoch + 1) for index in order[begin : begin + self.batch_size]]


# =============================================================================================
# networks


@dataclass
class Networks:
    """Everything with weights in a run.

    Attributes:
        generator: the restorer being trained.
        ema: exponential moving average of the generator (used for validation and export).
        discriminator: StyleGAN2 discriminator, or None when ``losses.gan`` is 0.
        components: facial-component discriminators by name (empty when switched off).
        perceptual: perceptual/style loss, or None.
        identity: identity loss, or None.
        notes: what was loaded into the generator (prior, initial weights).
    """

    generator: nn.Module
    ema: nn.Module
    discriminator: nn.Module | None
    components: nn.ModuleDict
    perceptual: L.PerceptualLoss | None
    identity: L.IdentityLoss | None
    notes: list[str] = field(default_factory=list)


def required_weights(config: Config) -> list[str]:
    """Names or paths of every weight file the config needs (checked before anything starts)."""
    from minerrestore.weights import locate

    model, losses = config.model, config.losses
    needed = [name for name in (model.prior, model.init) if name is not None]
    if losses.perceptual > 0 or losses.style > 0:
        backbone = losses.perceptual_backbone
        if backbone == "auto":
            backbone = "vgg19" if locate("vgg19.imagenet") is not None else "vgg16_lpips"
        needed.append("vgg19.imagenet" if backbone == "vgg19" else "lpips.vgg16")
    if losses.identity > 0 and losses.identity_network != "none":
        network = losses.identity_network
        if network == "auto":
            network = "arcface" if locate("identity.arcface_resnet18") is not None else "mobilefacenet"
        needed.append(f"identity.{'arcface_resnet18' if network == 'arcface' else 'mobilefacenet'}")
    return needed


def check_weights(config: Config) -> None:
    """Raise a clear error for the first weight file the config needs and that is missing.

    Raises:
        WeightsError: a registry file is missing (the message names its URL and SHA-256).
        UsageError: a file path given in the config does not exist.
    """
    from minerrestore.weights import REGISTRY, find_weight

    for name in required_weights(config):
        if name in REGISTRY:
            find_weight(name)
        elif not (path := _weight_path(name)).is_file():
            raise UsageError(f"weight file {path} (named in the config) does not exist")


def _weight_path(name: str) -> Path:
    """A weight registry name, a file, or a training run folder (its EMA export) -> the file."""
    from minerrestore.weights import REGISTRY, find_weight

    if name in REGISTRY:
        return find_weight(name)
    path = Path(name).expanduser()
    return path / EMA_EXPORT if path.is_dir() else path


def _create_generator(model: ModelConfig) -> nn.Module:
    from minerrestore.archs.restorer import create_restorer

    return create_restorer(model.scheme, out_size=model.out_size, narrow=model.narrow, **model.arch)


def build_generator(config: Config) -> tuple[nn.Module, list[str]]:
    """The restorer of ``config.model`` with its prior and initial weights loaded, decoder frozen if asked.

    Returns:
        The generator and notes on what was loaded (for the log).
    """
    from minerrestore.archs.checkpoints import init_from_checkpoint, load_prior

    model = config.model
    generator = _create_generator(model)
    notes = []
    if model.prior is not None:
        load_prior(generator, _weight_path(model.prior))
        notes.append(f"StyleGAN2 prior loaded from {_weight_path(model.prior)}")
    if model.init is not None:  # partial loading: e.g. scheme B-G initialised from a scheme-A model
        report = init_from_checkpoint(generator, _weight_path(model.init))
        counts = report.summary()
        notes.append(
            f"initialised from {_weight_path(model.init)}: {counts['loaded']} tensors loaded, "
            f"{counts['new']} new {counts['new_modules'] or ''}, {counts['mismatched']} mismatched"
        )
    if model.freeze_decoder:
        generator.stylegan_decoder.requires_grad_(False)  # modulation, SE and removal layers stay trainable
    if model.zero_constant_input:
        freeze_constant_input_at_zero(generator)
        notes.append("StyleGAN2 constant input fixed at zero")
    return generator, notes


def freeze_constant_input_at_zero(generator: nn.Module) -> None:
    """Set the restorer's StyleGAN2 4 x 4 constant input to zero and stop training it.

    Trained without a prior, the constant learns the training set's average face, which the
    decoder paints over every input (``model.zero_constant_input``, ``export --zero-constant-input``).
    """
    constant = generator.stylegan_decoder.constant_input.weight
    constant.requires_grad_(False)
    with torch.no_grad():
        constant.zero_()


def build_networks(config: Config, device: torch.device) -> Networks:
    """Generator, EMA, discriminators and loss networks of a run, on ``device``."""
    from minerrestore.archs.discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator

    model, losses = config.model, config.losses
    generator, notes = build_generator(config)
    generator = generator.to(device)
    ema = copy.deepcopy(generator).eval().requires_grad_(False)
    channel_multiplier = int(model.arch.get("channel_multiplier", 1))
    discriminator = None
    if losses.gan > 0 or losses.r1 > 0:
        discriminator = StyleGAN2Discriminator(
            model.out_size, channel_multiplier=channel_multiplier, narrow=model.discriminator_narrow
        ).to(device)
    components = nn.ModuleDict()
    if losses.component_gan > 0 or losses.component_style > 0:
        for name in L.COMPONENTS:
            components[name] = FacialComponentDiscriminator(narrow=model.discriminator_narrow).to(device)
    perceptual = None
    if losses.perceptual > 0 or losses.style > 0:
        perceptual = L.create_perceptual_loss(losses.perceptual_backbone).to(device)
    identity = None
    if losses.identity > 0 and losses.identity_network != "none":
        identity = L.create_identity_loss(losses.identity_network, model.out_size, losses.identity_distance)
        identity = identity.to(device)
    return Networks(generator, ema, discriminator, components, perceptual, identity, notes)


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for trained parameters; buffers are copied."""
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        if param.requires_grad:
            ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


# =============================================================================================
# random-number states


def _rng_state() -> dict[str, Any]:
    """This process's random states (torch CPU and CUDA, NumPy, Python) as tensors and plain values."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "gauss": float(numpy_state[4]),
        },
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np_state = ("MT19937", keys, state["numpy"]["pos"], state["numpy"]["has_gauss"], state["numpy"]["gauss"])
    np.random.set_state(np_state)
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_process(seed: int, rank: int) -> None:
    """Seed every generator of this process from (seed, rank): the ranks draw different noise."""
    from minerrestore.device import seed_everything

    seed_everything(seed * 1_000_003 + rank)


# =============================================================================================
# logging


class RunLog:
    """Rank 0's outputs: rich console lines, JSON lines and TensorBoard scalars.

    Args:
        layout: the run folder.
        enabled: False on ranks other than 0.
        quiet: no console output.
        tensorboard: write TensorBoard events when the package is installed.
    """

    def __init__(self, layout: RunLayout, enabled: bool, quiet: bool, tensorboard: bool) -> None:
        from rich.console import Console

        self.layout = layout
        self.enabled = enabled
        self.console = Console(stderr=True, quiet=quiet or not enabled)
        self.writer: Any = None
        self.tensorboard = tensorboard

    def open(self) -> None:
        """Open the TensorBoard writer (rank 0, when installed)."""
        if not (self.enabled and self.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.note("TensorBoard is not installed: logging to log.jsonl only (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(self.layout.tensorboard))

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def record(self, event: str, iteration: int, **values: Any) -> None:
        """Append one JSON record (and the numbers to TensorBoard under ``event/``)."""
        if not self.enabled:
            return
        row = {"event": event, "iteration": iteration, "time": round(time.time(), 3), **values}
        with open(self.layout.log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{event}/{key}", value, iteration)

    def note(self, message: str) -> None:
        """A line for the user (console only)."""
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a run's ``log.jsonl``; after a resume, later records of an iteration replace earlier ones."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("event", ""), int(row.get("iteration", 0)))] = row
    return sorted(latest.values(), key=lambda r: (r["iteration"], r["event"]))


def plot_loss_curves(log_path: str | Path, out_path: str | Path) -> Path | None:
    """Plot every training loss of ``log.jsonl`` against the iteration into a PNG (None without data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_log(log_path) if r["event"] == "train"]
    if not rows:
        return None
    keys = sorted({k for r in rows for k, v in r.items() if k.startswith(("g_", "d_")) and isinstance(v, float)})
    if not keys:
        return None
    columns = min(4, len(keys))
    lines = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.4 * lines), squeeze=False)
    for axis, key in zip(axes.flat, keys, strict=False):
        points = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
        if points:
            steps, values = (np.asarray(v) for v in zip(*points, strict=True))
            window = len(values) // 50  # long runs: raw values faint, a moving average on top
            marker = "." if len(values) < 30 else None
            axis.plot(steps, values, linewidth=0.8, marker=marker, alpha=0.35 if window > 1 else 1.0)
            if window > 1:
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                axis.plot(steps[window - 1 :], smooth, linewidth=1.2, color="C1")
        axis.set_title(key, fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(keys) :]:
        axis.axis("off")
    figure.tight_layout()
    out_path = Path(out_path)
    with atomic_path(out_path) as temp:
        figure.savefig(temp, format="png", dpi=100)
    plt.close(figure)
    return out_path


# =============================================================================================
# validation


def _to_uint8(images: Tensor) -> Tensor:
    """NCHW in [-1, 1] -> NCHW uint8 (rounded, clamped)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _grid(columns: Sequence[Tensor]) -> np.ndarray:
    """Rows of faces side by side: each tensor (N, 3, H, W) uint8 becomes a column -> HxWx3 uint8."""
    rows = torch.cat([torch.cat(list(column), dim=2) for column in zip(*columns, strict=True)], dim=1)
    return rows.permute(1, 2, 0).cpu().numpy()


@dataclass
class Validator:
    """Restores the fixed validation pairs with the EMA generator and measures them.

    Attributes:
        lq: (N, 3, S, S) degraded faces in [-1, 1] (CPU).
        gt: (N, 3, S, S) ground truth in [-1, 1] (CPU).
        batch_size: faces per forward.
        grid_images: faces in the PNG grid.
        lpips: LPIPS metric (restored, gt uint8 NCHW) -> (N,) or None without its weights.
        lpips_name: what the LPIPS figure is.
    """

    lq: Tensor
    gt: Tensor
    batch_size: int
    grid_images: int
    lpips: Callable[[Tensor, Tensor], Tensor] | None = None
    lpips_name: str = ""

    @torch.no_grad()
    def run(self, generator: nn.Module, device: torch.device) -> tuple[dict[str, float], np.ndarray | None]:
        """Metrics (PSNR/SSIM on RGB, no border crop; LPIPS) of input and output, and the grid."""
        from minerrestore.metrics.psnr_ssim import psnr, ssim

        if self.lq.shape[0] == 0:
            return {}, None
        was_training = generator.training
        generator.eval()
        restored = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for start in range(0, self.lq.shape[0], self.batch_size):
                batch = self.lq[start : start + self.batch_size].to(device)
                restored.append(_to_uint8(generator(batch).image).cpu())
        generator.train(was_training)
        output, gt, lq = torch.cat(restored), _to_uint8(self.gt), _to_uint8(self.lq)
        metrics = {
            "psnr": float(psnr(output, gt).mean()),
            "ssim": float(ssim(output, gt).mean()),
            "psnr_input": float(psnr(lq, gt).mean()),
            "ssim_input": float(ssim(lq, gt).mean()),
        }
        if self.lpips is not None:
            metrics[f"lpips_{self.lpips_name}"] = float(self.lpips(output, gt).mean())
            metrics[f"lpips_{self.lpips_name}_input"] = float(self.lpips(lq, gt).mean())
        count = min(self.grid_images, output.shape[0])
        grid = _grid([lq[:count], output[:count], gt[:count]]) if count else None
        return metrics, grid


def build_validator(config: Config, plan: DataPlan) -> Validator:
    """Degrade the validation faces once (epoch 0, no flip) and set up the metrics."""
    data, size = config.data, config.model.out_size
    dataset = FacePairs(plan.val, size, data.presets, config.train.seed, False, 1.0, data.degrade_scales)
    pairs = [dataset.pair(index, 0) for index in range(len(dataset))]
    from minerrestore.datasets import to_tensor

    lq = torch.stack([to_tensor(p[0]) for p in pairs]) if pairs else torch.zeros(0, 3, size, size)
    gt = torch.stack([to_tensor(p[1]) for p in pairs]) if pairs else torch.zeros(0, 3, size, size)
    lpips, name = L.create_lpips_metric()
    batch = max(1, config.data.batch_size)
    return Validator(lq, gt, batch, config.log.grid_images, lpips, name)


# =============================================================================================
# the training loop


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks to stop after the current iteration, a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Trainer:
    """One training session of a run (fresh or resumed); use :func:`train`.

    Args:
        config: the resolved config.
        layout: the run folder.
        dist: this process's place in the process group.
        device: where to train.
        quiet: no console output.
    """

    def __init__(self, config: Config, layout: RunLayout, dist: Distributed, device: torch.device, quiet: bool) -> None:
        self.config = config
        self.layout = layout
        self.dist = dist
        self.device = device
        self.quiet = quiet
        self.log = RunLog(layout, dist.is_main, quiet, config.log.tensorboard)
        self.iteration = 0
        self.rng_states: list[dict[str, Any]] | None = None  # from the checkpoint, per rank
        self.amp_dtype: torch.dtype | None = None
        if config.optim.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaling = self.amp_dtype == torch.float16
        self.nets: Networks
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=scaling) for name in ("g", "d", "components")}

    # ----------------------------------------------------------------------------- setup

    def setup(self, checkpoint: Path | None) -> None:
        """Build networks, optimisers and schedulers; load ``checkpoint`` when resuming."""
        config, optim = self.config, self.config.optim
        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        self.nets = build_networks(config, self.device)
        nets = self.nets
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "g": torch.optim.Adam(_trainable(nets.generator), lr=optim.lr_g, betas=optim.betas_g)
        }
        if nets.discriminator is not None:
            ratio = config.losses.r1_every / (config.losses.r1_every + 1)  # lazy R1 (StyleGAN2, GFP-GAN)
            betas = (optim.betas_d[0] ** ratio, optim.betas_d[1] ** ratio)
            self.optimizers["d"] = torch.optim.Adam(nets.discriminator.parameters(), lr=optim.lr_d * ratio, betas=betas)
        if len(nets.components):
            self.optimizers["components"] = torch.optim.Adam(
                nets.components.parameters(), lr=optim.lr_components, betas=optim.betas_components
            )
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(optim.milestones), gamma=optim.gamma)
            for name, opt in self.optimizers.items()
        }
        for module in self._modules().values():
            self.dist.sync_module(module)
        if checkpoint is not None:
            self._load(checkpoint)

    def _modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"generator": self.nets.generator, "generator_ema": self.nets.ema}
        if self.nets.discriminator is not None:
            modules["discriminator"] = self.nets.discriminator
        if len(self.nets.components):
            modules["components"] = self.nets.components
        return modules

    # ----------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current iteration (collective: every rank must call it)."""
        rng_states = self.dist.gather(_rng_state())
        path = self.layout.checkpoint(self.iteration)
        if self.dist.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "iteration": self.iteration,
                "config": config_to_yaml(self.config),
                "world_size": self.dist.world_size,
                "modules": {name: module.state_dict() for name, module in self._modules().items()},
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
                "sampler": {"seed": self.config.train.seed, "iteration": self.iteration},
                "rng": rng_states,
            }
            with atomic_path(path) as temp:
                torch.save(state, temp)
            for _, old in self.layout.list_checkpoints()[: -self.config.train.keep_checkpoints]:
                old.unlink(missing_ok=True)
        self.dist.barrier()
        return path

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        for name, module in self._modules().items():
            if name not in state["modules"]:
                raise UsageError(f"{path}: no {name} weights in the checkpoint", hint="the config changed the losses")
            module.load_state_dict(state["modules"][name])
        for group in ("optimizers", "schedulers", "scalers"):
            objects = {"optimizers": self.optimizers, "schedulers": self.schedulers, "scalers": self.scalers}[group]
            for name, target in objects.items():
                if name in state[group]:
                    target.load_state_dict(state[group][name])
        self.iteration = int(state["iteration"])
        self.rng_states = state["rng"]

    def _start_random_streams(self) -> None:
        """Seed (fresh run) or restore (resumed run) the random states, right before the first iteration."""
        states = self.rng_states
        if states is None:
            _seed_process(self.config.train.seed, self.dist.rank)
        elif len(states) == self.dist.world_size:
            _set_rng_state(states[self.dist.rank])
        else:
            self.log.note(
                f"[yellow]checkpoint of {len(states)} process(es) resumed with {self.dist.world_size}: "
                "random streams are re-seeded (data order and degradations are unaffected)[/yellow]"
            )
            _seed_process(self.config.train.seed + self.iteration, self.dist.rank)

    # ----------------------------------------------------------------------------- steps

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _step(self, name: str, loss: Tensor, parameters: Sequence[nn.Parameter]) -> None:
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.dist.average_gradients(parameters)
        scaler.step(optimizer)
        scaler.update()

    def generator_step(self, lq: Tensor, gt: Tensor, boxes: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One generator update; returns the (detached) restored batch and the weighted loss terms."""
        nets, weights = self.nets, self.config.losses
        for critic in (nets.discriminator, nets.components):
            if critic is not None:
                critic.requires_grad_(False)
        pyramid = weights.pyramid > 0 and self.iteration < weights.pyramid_until
        terms: dict[str, Tensor] = {}
        with self._autocast():
            result = nets.generator(lq, randomize_noise=True, return_rgb=pyramid)
            image = result.image
            if weights.l1 > 0:
                terms["l1"] = weights.l1 * F.l1_loss(image, gt)
            if pyramid:
                terms["pyramid"] = weights.pyramid * L.pyramid_l1(result.rgbs, gt)
            if nets.perceptual is not None:
                perceptual, style = nets.perceptual(image, gt, with_style=weights.style > 0)
                terms["perceptual"] = weights.perceptual * perceptual
                if weights.style > 0:
                    terms["style"] = weights.style * style
            if nets.discriminator is not None and weights.gan > 0:
                terms["gan"] = weights.gan * L.generator_gan_loss(nets.discriminator(image))
            if len(nets.components):
                terms.update(self._component_generator_terms(image, gt, boxes))
            if nets.identity is not None:
                terms["identity"] = weights.identity * nets.identity(image, gt)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        self._step("g", total, _trainable(nets.generator))
        update_ema(nets.ema, nets.generator, self.config.optim.ema_decay)
        terms["total"] = total
        return image.detach(), terms

    def _component_patches(self, image: Tensor, gt: Tensor, boxes: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        eye, mouth = L.component_patch_sizes(self.config.model.out_size)
        return L.crop_components(image, boxes, eye, mouth), L.crop_components(gt, boxes, eye, mouth)

    def _component_generator_terms(self, image: Tensor, gt: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        weights = self.config.losses
        fakes, reals = self._component_patches(image, gt, boxes)
        gan, style = image.new_zeros(()), image.new_zeros(())
        for name, fake, real in zip(L.COMPONENTS, fakes, reals, strict=True):
            critic = self.nets.components[name]
            logits, fake_features = critic(fake, return_feats=True)
            gan = gan + L.generator_gan_loss(logits)
            if weights.component_style > 0:
                _, real_features = critic(real, return_feats=True)
                style = style + L.component_style_loss(fake_features, real_features)
        terms = {}
        if weights.component_gan > 0:
            terms["component_gan"] = weights.component_gan * gan
        if weights.component_style > 0:
            terms["component_style"] = weights.component_style * style
        return terms

    def discriminator_step(self, image: Tensor, gt: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        """Updates of the StyleGAN2 discriminator (with lazy R1) and the component discriminators."""
        nets, weights = self.nets, self.config.losses
        terms: dict[str, Tensor] = {}
        if nets.discriminator is not None:
            critic = nets.discriminator.requires_grad_(True)
            with self._autocast():
                real_logits, fake_logits = critic(gt), critic(image)
                loss = L.discriminator_gan_loss(real_logits, fake_logits)
            terms["gan"] = loss
            terms["real_score"] = real_logits.detach().float().mean()
            terms["fake_score"] = fake_logits.detach().float().mean()
            loss = loss.float()
            if weights.r1 > 0 and self.iteration % weights.r1_every == 0:
                real = gt.detach().requires_grad_(True)
                penalty = L.r1_penalty(critic(real).float(), real)  # float32: second-order gradients
                terms["r1"] = penalty
                loss = loss + weights.r1 / 2 * weights.r1_every * penalty
            self._step("d", loss, list(critic.parameters()))
        if len(nets.components):
            nets.components.requires_grad_(True)
            fakes, reals = self._component_patches(image, gt, boxes)
            with self._autocast():
                losses = [
                    L.discriminator_gan_loss(nets.components[name](real)[0], nets.components[name](fake)[0])
                    for name, fake, real in zip(L.COMPONENTS, fakes, reals, strict=True)
                ]
                loss = torch.stack([x.float() for x in losses]).sum()
            terms["components"] = loss
            self._step("components", loss, list(nets.components.parameters()))
        return terms

    # ----------------------------------------------------------------------------- the loop

    def _loader(self, plan: DataPlan) -> DataLoader:
        config = self.config
        dataset = FacePairs(
            plan.train,
            config.model.out_size,
            config.data.presets,
            config.train.seed,
            config.data.hflip,
            config.losses.eye_enlarge,
            config.data.degrade_scales,
        )
        per_rank = config.data.batch_size // self.dist.world_size
        sampler = IterationSampler(
            len(dataset),
            per_rank,
            config.train.seed,
            self.iteration,
            config.train.iterations,
            self.dist.rank,
            self.dist.world_size,
        )
        workers = config.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(config.train.seed),  # keeps the global RNG untouched
        )

    def _log_step(self, g_terms: dict[str, Tensor], d_terms: dict[str, Tensor], rate: float) -> dict[str, float]:
        names = [f"g_{k}" for k in g_terms] + [f"d_{k}" for k in d_terms]
        values = torch.stack([t.detach().float().reshape(()) for t in (*g_terms.values(), *d_terms.values())])
        values = self.dist.mean(values).cpu().tolist()
        row = dict(zip(names, values, strict=True))
        lrs = {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        self.log.record("train", self.iteration, **row, **lrs, it_per_s=round(rate, 4))
        return row

    def _validate(self, validator: Validator | None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if validator is not None:
            metrics, grid = validator.run(self.nets.ema, self.device)
            if metrics:
                self.log.record("val", self.iteration, **metrics)
                shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                self.log.note(f"[cyan]validation[/cyan] iteration {self.iteration}: {shown}")
            if grid is not None:
                write_image(self.layout.val / f"iter_{self.iteration:08d}.png", grid)
        self.dist.barrier()
        return metrics

    def run(self, plan: DataPlan, validator: Validator | None) -> TrainResult:
        """Train from the current iteration to ``train.iterations``; checkpoint and stop early on a signal.

        Args:
            plan: the faces.
            validator: validation pairs and metrics (rank 0; None elsewhere).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        config, total = self.config, self.config.train.iterations
        start_time = time.perf_counter()
        checkpoint = None
        metrics: dict[str, float] = {}
        interrupted = False
        self.log.open()
        progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.log.console,
            disable=self.quiet or not self.dist.is_main,
        )
        self._start_random_streams()
        try:
            with StopRequest() as stop, progress:
                task = progress.add_task("training", total=total, completed=self.iteration, rate="")
                tick, tick_iteration = time.perf_counter(), self.iteration
                for batch in self._loader(plan):
                    self.iteration += 1
                    lq, gt = batch["lq"].to(self.device), batch["gt"].to(self.device)
                    boxes = batch["boxes"].to(self.device)
                    image, g_terms = self.generator_step(lq, gt, boxes)
                    d_terms = self.discriminator_step(image, gt, boxes)
                    for scheduler in self.schedulers.values():
                        scheduler.step()
                    last = self.iteration == total
                    if self.iteration % config.log.every == 0 or last:
                        now = time.perf_counter()
                        rate = (self.iteration - tick_iteration) / max(now - tick, 1e-9)
                        tick, tick_iteration = now, self.iteration
                        row = self._log_step(g_terms, d_terms, rate)
                        progress.update(task, rate=f"{rate:.2f} it/s")
                        shown = " ".join(f"{k[2:] if k.startswith('g_') else k} {v:.4g}" for k, v in row.items())
                        progress.console.print(f"iteration {self.iteration}: {shown}", highlight=False)
                    progress.update(task, completed=self.iteration)
                    if last or (config.log.val_every and self.iteration % config.log.val_every == 0):
                        metrics = self._validate(validator) or metrics
                    stopping = self.dist.any(stop.requested, self.device)
                    if last or stopping or self.iteration % config.train.checkpoint_every == 0:
                        checkpoint = self.save_checkpoint()
                    if stopping:
                        interrupted = True
                        self.log.record("interrupted", self.iteration)
                        self.log.note(
                            f"[yellow]stopped at iteration {self.iteration}; checkpoint {checkpoint}; "
                            "continue with --resume[/yellow]"
                        )
                        break
        finally:
            self.log.close()
        export = None
        if self.dist.is_main:
            if not interrupted and self.iteration >= total:
                export = self.export_ema()
            plot_loss_curves(self.layout.log, self.layout.loss_curves)
        self.dist.barrier()
        seconds = time.perf_counter() - start_time
        return TrainResult(self.layout.root, self.iteration, interrupted, checkpoint, export, metrics, seconds)

    def export_ema(self) -> Path:
        """Save the EMA generator for ``minerrestore restore --model RUN_DIR`` (architecture in the metadata)."""
        return _save_generator(self.layout.ema_export, self.nets.ema, self.iteration, self.config)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, loaded safely (``torch.load(weights_only=True)``) onto the CPU.

    Raises:
        WeightsError: unreadable, or carrying code.
        UsageError: not a minerrestore training checkpoint.
    """
    from minerrestore.weights import load_state_dict

    state = load_state_dict(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path}: not a minerrestore training checkpoint")
    return state


def export_checkpoint(
    source: str | Path, out: str | Path, half: bool = False, zero_constant_input: bool = False
) -> Path:
    """Save the EMA generator of a training checkpoint (or a run's latest) as a restorer file.

    The file is what ``minerrestore restore --model FILE`` loads; it records the iteration and
    the run's config in its metadata. Existing files are never overwritten.

    Args:
        source: a checkpoint ``.pt`` or a run folder (its latest checkpoint is used).
        out: the ``.safetensors`` file to write.
        half: store float16 tensors (half the size; loaded back as float32).
        zero_constant_input: set StyleGAN2's learned 4 x 4 constant input to zero (recorded in the
            metadata as ``model.zero_constant_input``). A decoder trained without a prior learns
            an average face there and paints it over every input (weights/MODEL_CARD.md).

    Raises:
        UsageError: no checkpoint at ``source``, or ``out`` exists.
    """
    import yaml

    source, out = Path(source), Path(out)
    if out.exists():
        raise UsageError(f"{out} exists: refusing to overwrite it", hint="choose another output file")
    if source.is_dir():
        layout = RunLayout(source)
        checkpoints = layout.list_checkpoints()
        if not checkpoints:
            raise UsageError(f"{source}: no checkpoint in {layout.checkpoints}")
        source = checkpoints[-1][1]
    elif not source.is_file():
        raise UsageError(
            f"{source}: no such training checkpoint or run folder",
            hint="give a run folder (train.out_dir) or one of its checkpoints/iter_*.pt",
        )
    state = load_checkpoint(source)
    config = from_dict(yaml.safe_load(state["config"]))
    generator = _create_generator(config.model)
    generator.load_state_dict(state["modules"]["generator_ema"])
    if zero_constant_input:
        freeze_constant_input_at_zero(generator)
        config = replace(config, ["model.zero_constant_input=true"])
    if half:
        generator.half()
    return _save_generator(out, generator, int(state["iteration"]), config)


def describe_export(path: str | Path) -> str:
    """Which iteration a restorer file written by :func:`export_checkpoint` holds, and whether its run had ended."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    iteration, total = int(metadata["iteration"]), int(json.loads(metadata["config"])["train"]["iterations"])
    ended = "the run's last" if iteration >= total else f"a run of {total} iterations not at its end yet"
    return f"EMA generator of iteration {iteration}, {ended}"


def _save_generator(path: Path, generator: nn.Module, iteration: int, config: Config) -> Path:
    """A restorer file with the run's iteration and config in its metadata (``restore --model`` loads it)."""
    from minerrestore.archs.checkpoints import save_restorer

    metadata = {"iteration": str(iteration), "config": json.dumps(config_to_dict(config))}
    return save_restorer(path, generator, metadata)


# =============================================================================================
# entry point


def _config_from(config: Config | str | Path, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        return replace(config, overrides) if overrides else config
    return load_config(config, overrides)


def _is_run_folder(root: Path) -> bool:
    return root.is_dir() and any((root / name).exists() for name in RUN_FILES)


def _open_run(config: Config, resume: bool, overrides: Sequence[str]) -> tuple[Config, Path | None, list[str]]:
    """Check the run folder (new, or resumable) and return the config to use, the checkpoint, notes.

    For a new run the folder must not exist or be empty. When resuming, the run's saved
    config is used with ``overrides`` applied again (e.g. ``train.iterations`` to extend it).
    """
    root = Path(config.train.out_dir).expanduser()
    layout = RunLayout(root)
    notes: list[str] = []
    if not resume:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            state = "holds a run" if _is_run_folder(root) else "is not empty"
            raise UsageError(
                f"train.out_dir {root} {state}: refusing to overwrite it",
                hint="continue it with --resume, or choose a new folder with train.out_dir=...",
            )
        return config, None, notes
    if not layout.config.is_file():
        raise UsageError(f"--resume: {root} holds no run (no config.yml)", hint="drop --resume to start a new run")
    original = load_config(layout.config)
    saved = replace(original, [*overrides, f"train.out_dir={json.dumps(str(root))}"])
    changed = _differences(config_to_dict(saved), config_to_dict(config))
    if changed:
        notes.append("resuming with the run's saved config; the given config differs in: " + ", ".join(changed))
    frozen = [
        name
        for name in _differences(config_to_dict(original.optim), config_to_dict(saved.optim), "optim.")
        if name.split(".")[-1] in RESUMED_OPTIMISER_SETTINGS
    ]
    if frozen:
        notes.append(
            f"{', '.join(frozen)} changed, but a resumed run keeps the learning rates, betas and "
            "schedule saved in its checkpoint: start a new run (model.init=...) to change them"
        )
    checkpoints = layout.list_checkpoints()
    if not checkpoints:
        notes.append(f"no checkpoint in {layout.checkpoints}: starting the run again from iteration 0")
        return saved, None, notes
    return saved, checkpoints[-1][1], notes


RESUMED_OPTIMISER_SETTINGS = frozenset(
    {"lr_g", "lr_d", "lr_components", "betas_g", "betas_d", "betas_components", "milestones", "gamma"}
)
"""``optim`` settings that live in the optimiser and scheduler states, so a resume restores them."""


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _absolute_paths(config: Config) -> Config:
    """Data and weight paths made absolute, so that a resumed run works from any folder."""
    changes = []
    for key in ("data.train_dir", "data.paired_dir", "data.val_dir", "train.out_dir"):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None:
            changes.append(f"{key}={json.dumps(str(Path(value).expanduser().resolve()))}")
    return replace(config, changes) if changes else config


def _check_data_folders(config: Config) -> None:
    """Raise a clear error for a data folder that is unset, missing or empty (fast, before any work)."""
    data = config.data
    if data.paired_dir is None and data.train_dir is None:
        raise ConfigError(
            "data.train_dir is not set",
            hint="pass data.train_dir=/path/to/faces (high-quality faces) or data.paired_dir=DEGRADE_OUT",
        )
    if data.paired_dir is not None and _paired_folders(Path(data.paired_dir).expanduser()) is None:
        raise UsageError(
            f"data.paired_dir: {data.paired_dir} has no gt/ and lq/ sub-folders",
            hint="give the --out folder of minerrestore degrade (or its train/ or test/)",
        )
    for key in ("paired_dir", "train_dir", "val_dir"):
        folder = getattr(data, key)
        if folder is not None and not (key == "train_dir" and data.paired_dir is not None):
            _list_faces(folder, f"data.{key}")


def _prepare(
    config: Config, resume: bool, overrides: Sequence[str], quiet: bool
) -> tuple[Config, Path | None, DataPlan]:
    """Rank 0's checks before training: run folder, weights, data (aligned once), config saved."""
    config, checkpoint, notes = _open_run(_absolute_paths(config), resume, overrides)
    layout = RunLayout(Path(config.train.out_dir))
    if config.data.batch_size % int(os.environ.get("WORLD_SIZE", "1")):
        raise ConfigError(
            f"data.batch_size {config.data.batch_size} is not divisible by the {os.environ['WORLD_SIZE']} processes",
            hint="data.batch_size is the total batch over all processes",
        )
    _check_data_folders(config)
    check_weights(config)
    layout.root.mkdir(parents=True, exist_ok=True)
    if not layout.config.is_file() or notes:
        atomic_write_text(layout.config, config_to_yaml(config))
    plan = plan_data(config, layout, quiet)
    log = RunLog(layout, True, quiet, False)
    for note in notes:
        log.note(f"[yellow]{note}[/yellow]")
    if plan.skipped:
        log.note(f"[yellow]{len(plan.skipped)} image(s) skipped (no face found or unreadable):[/yellow]")
        for line in plan.skipped[:20]:
            log.note(f"  {line}")
        if len(plan.skipped) > 20:
            log.note(f"  ... and {len(plan.skipped) - 20} more (see {layout.aligned}/*/index.json)")
    return config, checkpoint, plan


def train(
    config: Config | str | Path,
    resume: bool = False,
    overrides: Sequence[str] = (),
    *,
    quiet: bool = False,
) -> TrainResult:
    """Train a restorer (``minerrestore train``).

    Args:
        config: a :class:`~minerrestore.config.Config`, a YAML file, or a shipped config name
            (``tiny``, ``default128``, ``paper512_a`` ... ``paper512_g``).
        resume: continue the run in ``train.out_dir`` from its latest checkpoint (with its
            saved config); without it the folder must be new or empty.
        overrides: ``key.path=value`` settings applied on top (also when resuming).
        quiet: no progress bar or log lines on the console (log.jsonl is still written).

    Returns:
        :class:`TrainResult`.

    Raises:
        ConfigError: an invalid config or override.
        UsageError: a missing or empty data folder, an existing run folder without ``resume``,
            no usable face.
        WeightsError: a weight file the config needs is missing (before anything is trained).
    """
    config = _config_from(config, overrides)
    dist, device = init_distributed(config.train.device)
    try:
        config, checkpoint, plan = _main_first(dist, lambda: _prepare(config, resume, overrides, quiet))
        with _algorithms(config.train.deterministic, device):
            trainer = Trainer(config, RunLayout(Path(config.train.out_dir)), dist, device, quiet)
            trainer.setup(checkpoint)
            validators: list[Validator] = []  # built on rank 0 only
            _main_first(dist, lambda: validators.append(build_validator(config, plan)))
            _announce(trainer, plan, checkpoint)
            return trainer.run(plan, validators[0] if validators else None)
    finally:
        dist.close()


@contextlib.contextmanager
def _algorithms(deterministic: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels (exact resume on GPU too) or cuDNN autotuning, restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def _announce(trainer: Trainer, plan: DataPlan, checkpoint: Path | None) -> None:
    config, nets, log = trainer.config, trainer.nets, trainer.log
    trained = sum(p.numel() for p in _trainable(nets.generator)) / 1e6
    total = sum(p.numel() for p in nets.generator.parameters()) / 1e6
    parts = [
        f"run {trainer.layout.root}",
        *nets.notes,
        f"scheme {config.model.scheme} at {config.model.out_size} px ({trained:.2f} M of {total:.2f} M generator "
        "parameters trained)",
        f"{len(plan.train)} training and {len(plan.val)} validation faces: {plan.source}",
        f"perceptual loss: {nets.perceptual.name if nets.perceptual else 'off'}; "
        f"identity loss: {nets.identity.name if nets.identity else 'off'}",
        f"{trainer.dist.world_size} process(es) on {trainer.device}, batch {config.data.batch_size}",
        f"resuming from {checkpoint} (iteration {trainer.iteration})" if checkpoint else "starting at iteration 0",
    ]
    for part in parts:
        log.note(part)
    log.record(
        "start",
        trainer.iteration,
        resumed_from=str(checkpoint) if checkpoint else None,
        perceptual=nets.perceptual.name if nets.perceptual else None,
        identity=nets.identity.name if nets.identity else None,
        world_size=trainer.dist.world_size,
        train_faces=len(plan.train),
        val_faces=len(plan.val),
        skipped=len(plan.skipped),
        device=str(trainer.device),
    )


__all__ = [
    "DataPlan",
    "Distributed",
    "FaceItem",
    "FacePairs",
    "IterationSampler",
    "Networks",
    "RunLayout",
    "TrainResult",
    "Trainer",
    "build_generator",
    "build_networks",
    "check_weights",
    "init_distributed",
    "load_checkpoint",
    "plan_data",
    "plot_loss_curves",
    "read_log",
    "required_weights",
    "train",
    "update_ema",
]
