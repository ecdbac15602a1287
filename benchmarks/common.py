"""Helpers the benchmarks share: held-out validation photos, seeded degradation, dlib identity, HF ratio.

Imported by the scripts next to it (``from common import ...``; a script's own folder is on
``sys.path`` when it runs as ``python benchmarks/<script>.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from minerrestore.data.datasets import split_folders
from minerrestore.data.degradation import apply_degradation
from minerrestore.errors import UsageError
from minerrestore.io import atomic_write_text, list_images
from minerrestore.metrics.identity import DlibIdentity
from minerrestore.train.config import load_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIDE = 640
WARM = [1.0, 0.85, 0.65]  # a warm cap lamp: gains of the cast stage

CAMERA = {  # a pit camera: blur 1.5, 2x down, Gaussian noise 4, JPEG 75, warm lamp
    "cast": {"gains": WARM},
    "blur": {"kernel_size": 21, "sigma_x": 1.5, "sigma_y": 1.5, "theta": 0.0},
    "downsample": {"factor": 2.0},
    "noise": {"sigma": 4.0},
    "jpeg": {"quality": 75},
}


def grid_row(exposure: float, gamma: float, shot: float, camera: bool = False) -> tuple[str, dict]:
    """A low-light grid row: its label and degradation parameters (seeds added per image)."""
    label = f"{exposure}, {gamma}, {shot}" + (" + blur 1.5, 2x down, noise 4, JPEG 75, warm" if camera else "")
    lowlight = {"lowlight": {"exposure": exposure, "gamma": gamma, "shot": shot}}
    return label, {**CAMERA, **lowlight} if camera else lowlight


def _held_out_people() -> tuple[list[Path], list[Path], list[Path]]:
    """The photos of faces/, those of faces_hires/ (both recursive, sorted) and the held-out ones of both.

    The held-out people are those the training split holds out (``data.split: identity`` of the
    ``default256`` config, :func:`minerrestore.data.datasets.split_folders`, faces/ first).
    """
    faces, hires = SHARED / "faces", SHARED / "faces_hires"
    folders = [(faces, list_images(faces, recursive=True)), (hires, list_images(hires, recursive=True))]
    splits = split_folders(folders, "identity", load_config("default256").data.val_fraction)
    return folders[0][1], folders[1][1], [path for _, held_out in splits for path in held_out]


def validation_portraits(count: int) -> list[Path]:
    """Congress portraits of held-out people of faces/ (the last 88 names), sorted.

    The people are those the training split holds out (:func:`_held_out_people`). The
    congress people it holds out by hash (not in faces/) are left out, so the benchmarks keep
    their 37 portraits.
    """
    in_faces, _, held_out = _held_out_people()
    stems = {path.stem for path in in_faces}
    return [p for p in held_out if p.parent.name == "congress" and p.stem in stems][:count]


def held_out_hires_photos(limit: int | None = None) -> list[Path]:
    """The photos of faces_hires/ (congress, cc0_avatars, flickr_pd) of the people training holds out.

    The held-out people are :func:`_held_out_people`'s (the split of ``default256``); the photos
    are sorted by path, and only the first ``limit`` kept when given.
    """
    _, hires, held_out = _held_out_people()
    held = set(held_out)
    return [path for path in hires if path in held][:limit]


def training_hires_photos(count: int) -> list[Path]:
    """``count`` photos of faces_hires/ of the people training keeps, evenly spaced through the
    sorted list (from its fourth photo: the tuning set of ``tune_input_cleaning.py``'s figures)."""
    _, hires, held_out = _held_out_people()
    held = set(held_out)
    kept = [path for path in hires if path not in held]
    return kept[3 :: max(len(kept) // count, 1)][:count]


def shrink(rgb: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Area-shrink so the longer side is ``side``."""
    scale = side / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def degrade_seeded(rgb: np.ndarray, params: Mapping[str, Mapping[str, Any]], seed: int) -> np.ndarray:
    """:func:`~minerrestore.data.degradation.apply_degradation` with per-image noise seeds.

    The low-light sensor noise draws from ``seed`` and the Gaussian noise from ``seed + 1``.
    """
    staged = {stage: dict(values) for stage, values in params.items()}
    if "lowlight" in staged:
        staged["lowlight"]["seed"] = seed
    if "noise" in staged:
        staged["noise"]["seed"] = seed + 1
    return apply_degradation(rgb, staged)


def dlib_identity() -> DlibIdentity | None:
    """The independent identity check (:class:`minerrestore.metrics.identity.DlibIdentity`), or
    None (with a hint) when dlib is not installed (``pip install -e ".[bench]"``)."""
    try:
        return DlibIdentity()
    except UsageError as exc:
        print(f"dlib column skipped: {exc.hint}", flush=True)
        return None


HF_SIGMA = 1.5  # px: the Gaussian blur whose residual is the high-frequency band


def hf_energy(rgb: np.ndarray, sigma: float = HF_SIGMA) -> float:
    """Mean square of the grey image's high-frequency band: the image minus its Gaussian blur of ``sigma`` px."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) if rgb.ndim == 3 else rgb.astype(np.float64)
    band = grey - cv2.GaussianBlur(grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return float(np.mean(band**2))


def hf_ratio(rgb: np.ndarray, truth: np.ndarray, sigma: float = HF_SIGMA) -> float:
    """:func:`hf_energy` of ``rgb`` over the ground truth's (same size): 1.0 is as much fine detail
    as the truth, below is blurrier, above is noisier or oversharpened."""
    return hf_energy(rgb, sigma) / max(hf_energy(truth, sigma), 1e-12)


def update_card_section(card: Path, section: str, lines: list[str]) -> None:
    """Replace the lines between ``<!-- section: begin -->`` and ``<!-- section: end -->`` of ``card``.

    The model card's prose is written by hand; its measured tables are written by the benchmark
    scripts (``--card weights/MODEL_CARD.md``), so a rerun regenerates every figure in place.

    Raises:
        SystemExit: the card has no such markers (the message names them).
    """
    begin, end = f"<!-- {section}: begin -->", f"<!-- {section}: end -->"
    text = card.read_text(encoding="utf-8").splitlines()
    if begin not in text or end not in text:
        raise SystemExit(f"{card}: no lines {begin!r} and {end!r} to write the {section} table between")
    first, last = text.index(begin), text.index(end)
    atomic_write_text(card, "\n".join([*text[: first + 1], *lines, *text[last:]]) + "\n")
