"""Torch datasets of (low-quality, ground-truth) face pairs for training and evaluation.

Two sources of pairs, one sample format:

- :class:`DegradedFaceDataset` degrades a folder of high-quality faces on the fly with a
  preset (the paper's Eq. 14, ../shared/docs/METHOD.md §1.2, or ``miner``), like GFP-GAN's
  ``FFHQDegradationDataset`` (``gfpgan/data/ffhq_degradation_dataset.py``, Apache-2.0) but
  deterministic: a sample depends only on (seed, epoch, file name). At epoch 0 it is
  exactly the pair ``minerrestore degrade`` writes with the same seed, size and fit.
- :class:`PairedFaceDataset` reads pairs that ``minerrestore degrade`` wrote:
  ``ROOT/gt/<name>`` and ``ROOT/lq/<name>`` (use ``OUT/train`` or ``OUT/test`` after
  ``--split``).

Each sample is a dict::

    {"lq": Tensor 3xHxW, "gt": Tensor 3xHxW, "path": str}

float32 RGB in [-1, 1], so ``torch.utils.data.DataLoader`` batches them to NCHW tensors
(and ``path`` to a list of strings). Typical training loop::

    dataset = DegradedFaceDataset("faces/", preset="paper", size=512, seed=0)
    loader = DataLoader(dataset, batch_size=12, shuffle=True, num_workers=4, drop_last=True)
    for epoch in range(epochs):
        dataset.set_epoch(epoch)  # fresh degradations each epoch; set it before iterating
        for batch in loader:
            restored = net(batch["lq"])  # NCHW in [-1, 1]
            loss = criterion(restored, batch["gt"])

Datasets are plain picklable objects (file list, preset, seed), so loader workers work
with any start method. Loader workers get a copy of the dataset when an epoch's iteration
starts, so call ``set_epoch`` before iterating, and do not combine it with
``persistent_workers=True`` (the workers would keep epoch 0). No random flip or crop is
applied: add them in the training loop if wanted. Inputs that are grey are replicated to three channels and alpha is
ignored, as in the folder commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from minerrestore.augment import image_seed, relative_name
from minerrestore.degrade import DEFAULT_SIZE, apply_degradation, prepare_gt, sample_params
from minerrestore.errors import UsageError
from minerrestore.io import list_images, read_image
from minerrestore.presets import Preset, load_preset


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float32 tensor in [-1, 1]."""
    channels_first = image.transpose(2, 0, 1).astype(np.float32)  # one contiguous, writable copy
    return torch.from_numpy(channels_first).div_(127.5).sub_(1.0)


def _require_images(paths: list[Path], root: Path) -> list[Path]:
    if not paths:
        raise UsageError(f"{root}: no images found", hint="point the dataset at a folder of face images")
    return paths


class DegradedFaceDataset(Dataset):
    """High-quality faces degraded on the fly: ``dataset[i] -> {"lq", "gt", "path"}``.

    Args:
        root: folder of high-quality face images.
        preset: ``"paper"``, ``"miner"``, a YAML path or a loaded :class:`~minerrestore.presets.Preset`.
        size: side of the square ground truth in pixels.
        fit: ``"crop"`` (centre square) or ``"stretch"``.
        seed: global seed; the same (seed, epoch, index) always gives the same pair.
        recursive: include sub-folders.

    Raises:
        UsageError: ``root`` has no images.
        ConfigError: the preset is invalid.
    """

    def __init__(
        self,
        root: str | Path,
        preset: str | Path | Preset = "paper",
        size: int = DEFAULT_SIZE,
        fit: str = "crop",
        seed: int = 0,
        recursive: bool = False,
    ) -> None:
        self.root = Path(root)
        self.paths = _require_images(list_images(self.root, recursive), self.root)
        self.preset = load_preset(preset)
        self.size = size
        self.fit = fit
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different degradations for every image from now on (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def params(self, index: int) -> dict[str, Any]:
        """The degradation parameters of sample ``index`` at the current epoch (a manifest ``params`` dict)."""
        name = relative_name(self.paths[index], self.root)
        return sample_params(self.preset, np.random.default_rng(image_seed(self.seed, name, self.epoch)))

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(lq, gt) of sample ``index`` as HxWx3 uint8 RGB arrays (for inspection)."""
        gt = prepare_gt(read_image(self.paths[index]).rgb, self.size, self.fit)
        return apply_degradation(gt, self.params(index)), gt

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq, gt = self.pair(index)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "path": str(self.paths[index])}


class PairedFaceDataset(Dataset):
    """Pairs written by ``minerrestore degrade``: ``root/gt/<name>`` with ``root/lq/<name>``.

    Args:
        root: a folder holding ``gt/`` and ``lq/`` (``OUT``, ``OUT/train`` or ``OUT/test``).
        recursive: include sub-folders of ``gt/``.

    Raises:
        UsageError: ``gt/`` is empty, or a ground truth has no low-quality twin.
    """

    def __init__(self, root: str | Path, recursive: bool = False) -> None:
        self.root = Path(root)
        gt_dir, lq_dir = self.root / "gt", self.root / "lq"
        if not gt_dir.is_dir() or not lq_dir.is_dir():
            raise UsageError(
                f"{self.root}: expected sub-folders gt/ and lq/",
                hint="give the --out folder of minerrestore degrade (or its train/ or test/)",
            )
        self.gt_paths = _require_images(list_images(gt_dir, recursive), gt_dir)
        self.lq_paths = [lq_dir / path.relative_to(gt_dir) for path in self.gt_paths]
        missing = [str(path) for path in self.lq_paths if not path.is_file()]
        if missing:
            raise UsageError(f"{len(missing)} ground truth(s) without a low-quality twin, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.gt_paths)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(lq, gt) of sample ``index`` as HxWx3 uint8 RGB arrays."""
        lq, gt = read_image(self.lq_paths[index]).rgb, read_image(self.gt_paths[index]).rgb
        if lq.shape != gt.shape:
            raise UsageError(f"{self.lq_paths[index]}: size {lq.shape[:2]} differs from its gt {gt.shape[:2]}")
        return lq, gt

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq, gt = self.pair(index)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "path": str(self.gt_paths[index])}


__all__ = ["DegradedFaceDataset", "PairedFaceDataset", "to_tensor"]
