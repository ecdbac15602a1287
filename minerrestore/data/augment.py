"""The paper's x6 augmentation of collected faces: ``minerrestore augment``.

"A Novel Blind Restoration Method for Miner Face Images Based on Improved GFP-GAN Model"
(IEEE Access; ../shared/docs/METHOD.md §1.1) grows 270 faces to 1620: each image is kept
and gets five variants: horizontal flip, rotation by 10 degrees, translation by 20 px along
x and y, contrast factor 1 +- 0.2 and brightness factor 1 +- 0.2.

The operations are pure functions on uint8 arrays (HxW, HxWx3 or HxWx4); sizes are kept.
Directions (rotation sense, translation signs, raise or lower contrast and brightness) are
drawn per image from the seed, or fixed with ``sign="plus"`` / ``"minus"``.

Border fill for rotation and translation: mirror reflection without repeating the edge
pixel (OpenCV ``BORDER_REFLECT_101``, also the default border of OpenCV's filters). A
constant fill would put black wedges and straight edges into every rotated or shifted
face, content that no camera produced and that the restoration network would learn to
reproduce (and that blur in the later degradation would smear inwards); replicating the
edge pixel draws streaks. Reflection continues hair, clothing and background with the
local texture and colour, and leaves the face itself (in the centre) untouched.
``border="constant"`` or ``"replicate"`` remain available.

The folder helpers it shares with ``minerrestore degrade`` (per-image seeds, JSON-lines
manifests, output-folder checks) are in :mod:`minerrestore.data.folders`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from minerrestore.batch import BatchReport
from minerrestore.data.folders import check_out_dir, image_seed, opencv_threads_for, relative_name, run_with_manifest
from minerrestore.errors import UsageError
from minerrestore.io import atomic_write_bytes, check_output_ext, list_images, read_image, write_image

OPS = ("orig", "flip", "rotate", "translate", "contrast", "brightness")
"""Augmentation names, in output order; outputs are ``<stem>_<op>.<ext>``."""

GEOMETRIC_OPS = ("flip", "rotate", "translate")
"""Operations that move pixels (applied to the alpha channel too)."""

SIGNS = ("random", "plus", "minus")
BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
AUGMENT_MANIFEST = "augment_manifest.jsonl"
_DECIMALS = 4


# --------------------------------------------------------------------------- operations


def hflip(image: np.ndarray) -> np.ndarray:
    """Mirror left-right. ``image``: HxW or HxWxC uint8; same shape out."""
    return np.ascontiguousarray(image[:, ::-1])


def _warp(image: np.ndarray, matrix: np.ndarray, border: str) -> np.ndarray:
    if border not in BORDERS:
        raise UsageError(f"border {border!r} is not one of {', '.join(BORDERS)}")
    height, width = image.shape[:2]
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=BORDERS[border], borderValue=0
    )


def rotate(image: np.ndarray, angle: float, border: str = "reflect") -> np.ndarray:
    """Rotate about the image centre by ``angle`` degrees, counter-clockwise as displayed.

    Args:
        image: HxW or HxWxC uint8 (C <= 4).
        angle: degrees; positive turns the picture counter-clockwise.
        border: ``reflect`` | ``replicate`` | ``constant`` (black) fill of the uncovered corners.

    Returns:
        Same shape and dtype (bilinear interpolation).
    """
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
    return _warp(image, matrix, border)


def translate(image: np.ndarray, dx: float, dy: float, border: str = "reflect") -> np.ndarray:
    """Shift the picture ``dx`` px right and ``dy`` px down (negative: left, up); size kept.

    Integer shifts copy pixels exactly; the uncovered band is filled as in :func:`rotate`.
    """
    return _warp(image, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), border)


def _mean_luma(image: np.ndarray) -> float:
    if image.ndim == 2 or image.shape[2] == 1:
        return float(image.mean())
    rgb = image[..., :3].reshape(-1, 3).astype(np.float64)
    return float((rgb @ np.array([0.299, 0.587, 0.114])).mean())


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale contrast: ``mean + factor * (x - mean)``, mean = average luma (as Pillow's ImageEnhance).

    Args:
        image: HxW or HxWx3 uint8 RGB.
        factor: 1.2 raises contrast by 0.2, 0.8 lowers it.

    Returns:
        Same shape uint8 (rounded, clipped to 0-255).
    """
    mean = _mean_luma(image)
    return _to_uint8(mean + factor * (image.astype(np.float32) - mean))


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale brightness: ``factor * x`` (1.2 brightens by 0.2, 0.8 darkens); uint8 in and out."""
    return _to_uint8(image.astype(np.float32) * factor)


def apply_op(image: np.ndarray, op: str, params: Mapping[str, Any]) -> np.ndarray:
    """Apply one named augmentation with its drawn ``params`` (see :meth:`AugmentSettings.draw`).

    Args:
        image: HxW or HxWxC uint8.
        op: one of :data:`OPS`.
        params: ``{}`` for orig and flip; ``angle``/``border``; ``dx``/``dy``/``border``;
            ``factor``.

    Returns:
        A new array of the same shape.
    """
    if op == "orig":
        return image.copy()
    if op == "flip":
        return hflip(image)
    if op == "rotate":
        return rotate(image, params["angle"], params["border"])
    if op == "translate":
        return translate(image, params["dx"], params["dy"], params["border"])
    if op == "contrast":
        return adjust_contrast(image, params["factor"])
    if op == "brightness":
        return adjust_brightness(image, params["factor"])
    raise UsageError(f"unknown augmentation {op!r}", hint=f"use {', '.join(OPS)}")


@dataclass(frozen=True)
class AugmentSettings:
    """Which augmentations to make and how strong (the defaults are the paper's).

    Attributes:
        ops: subset of :data:`OPS`, written in this order.
        angle: rotation in degrees.
        shift: translation in pixels, along x and along y.
        contrast: contrast change, factor 1 +- contrast.
        brightness: brightness change, factor 1 +- brightness.
        sign: ``random`` (drawn per image and operation from the seed), ``plus`` or ``minus``.
        border: fill of rotation and translation, ``reflect`` | ``replicate`` | ``constant``.
    """

    ops: tuple[str, ...] = OPS
    angle: float = 10.0
    shift: int = 20
    contrast: float = 0.2
    brightness: float = 0.2
    sign: str = "random"
    border: str = "reflect"

    def __post_init__(self) -> None:
        unknown = [op for op in self.ops if op not in OPS]
        if unknown or not self.ops:
            raise UsageError(
                f"ops {','.join(self.ops)!r}: unknown or empty", hint=f"choose from {','.join(OPS)}", settings=("ops",)
            )
        if len(set(self.ops)) != len(self.ops):
            raise UsageError(f"ops {','.join(self.ops)!r} repeats an operation", settings=("ops",))
        if self.sign not in SIGNS:
            raise UsageError(f"sign {self.sign!r} is not one of {', '.join(SIGNS)}", settings=("sign",))
        if self.border not in BORDERS:
            raise UsageError(f"border {self.border!r} is not one of {', '.join(BORDERS)}", settings=("border",))
        if not 0 <= self.angle <= 180:  # also refuses NaN
            raise UsageError(
                f"angle {self.angle} must be from 0 to 180 degrees",
                hint="sign sets the direction",
                settings=("angle", "sign"),
            )
        if self.shift < 0:
            raise UsageError(
                f"shift {self.shift} must not be negative", hint="sign sets the direction", settings=("shift", "sign")
            )
        if not (0 <= self.contrast < 1 and 0 <= self.brightness < 1):
            raise UsageError(
                "contrast and brightness must be in [0, 1)",
                hint="the paper uses 0.2",
                settings=("contrast", "brightness"),
            )

    def draw(self, rng: np.random.Generator) -> list[tuple[str, dict[str, Any]]]:
        """The (op, params) list for one image; directions come from ``rng`` unless ``sign`` fixes them.

        Five signs are always drawn (rotation, x, y, contrast, brightness), so choosing
        other ``ops`` does not change the directions of the remaining ones.
        """
        drawn = rng.choice((-1, 1), size=5)
        signs = {"random": drawn, "plus": np.ones(5, int), "minus": -np.ones(5, int)}[self.sign]
        rot, sx, sy, con, bri = (int(s) for s in signs)
        every = {
            "orig": {},
            "flip": {},
            "rotate": {"angle": rot * float(self.angle), "border": self.border},
            "translate": {"dx": sx * int(self.shift), "dy": sy * int(self.shift), "border": self.border},
            "contrast": {"factor": round(1.0 + con * self.contrast, _DECIMALS)},
            "brightness": {"factor": round(1.0 + bri * self.brightness, _DECIMALS)},
        }
        return [(op, every[op]) for op in self.ops]


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class AugmentJob:
    """One source image and its manifest rows (``output`` paths relative to ``out_dir``)."""

    source: Path
    out_dir: Path
    rows: tuple[dict[str, Any], ...]

    def __str__(self) -> str:
        return str(self.source)

    @property
    def outputs(self) -> list[Path]:
        """Every file this job writes."""
        return [self.out_dir / row["output"] for row in self.rows]


def augment_image(
    rgb: np.ndarray, alpha: np.ndarray | None, op: str, params: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``op`` to the colour pixels and, for geometric operations, to the alpha channel."""
    if alpha is not None and op in GEOMETRIC_OPS:
        alpha = apply_op(alpha, op, params)
    return apply_op(rgb, op, params), alpha


def _augment_one(job: AugmentJob, workers: int = 1) -> dict[str, Any]:
    """Worker: write every variant of one image (module level so worker processes can unpickle it)."""
    opencv_threads_for(workers)
    loaded = read_image(job.source)
    for row, path in zip(job.rows, job.outputs, strict=True):
        if row["op"] == "orig" and path.suffix.lower() == job.source.suffix.lower():
            atomic_write_bytes(path, job.source.read_bytes(), protect=[job.source])  # exact copy, no re-encoding
            continue
        rgb, alpha = augment_image(loaded.rgb, loaded.alpha, row["op"], row["params"])
        write_image(path, rgb, alpha=alpha, grey=loaded.is_grey, protect=[job.source])
    return {"outputs": len(job.rows)}


def plan_augmentation(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: AugmentSettings,
    *,
    seed: int = 0,
    ext: str | None = None,
    recursive: bool = False,
) -> list[AugmentJob]:
    """Draw every image's augmentation parameters and output names, without touching any pixel."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    chosen = None if ext is None else check_output_ext(ext)
    jobs = []
    for path in list_images(input_dir, recursive):
        name = relative_name(path, input_dir)
        per_image = image_seed(seed, name)
        suffix = chosen or path.suffix
        stem = str(PurePosixPath(name).with_suffix(""))
        rows = tuple(
            {"source": name, "output": f"{stem}_{op}{suffix}", "op": op, "params": params, "seed": per_image}
            for op, params in settings.draw(np.random.default_rng(per_image))
        )
        jobs.append(AugmentJob(path, out_dir, rows))
    return jobs


def augment_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: AugmentSettings | None = None,
    *,
    seed: int = 0,
    ext: str | None = None,
    workers: int = 1,
    skip_existing: bool = False,
    overwrite: bool = False,
    recursive: bool = False,
    quiet: bool = False,
) -> BatchReport:
    """Write the original and its variants for every image: ``minerrestore augment``.

    Outputs are ``out_dir/<stem>_<op>.<ext>`` (sub-folders kept with ``recursive``) and
    ``out_dir/augment_manifest.jsonl``: one JSON object per output with ``source``,
    ``output``, ``op``, ``params`` and the image's ``seed``. The original is copied byte for
    byte when the extension is unchanged.

    Args:
        input_dir: folder of face images (or one image).
        out_dir: output folder (not the input folder).
        settings: operations and magnitudes; the paper's x6 by default.
        seed: global seed; the same seed gives identical bytes.
        ext: output format (``png``, ``jpg`` ...); None keeps each source's extension.
        workers: processes; results do not depend on it.
        skip_existing: skip images whose outputs all exist (same settings only: a folder whose
            manifest records other settings is refused either way).
        overwrite: first remove the outputs and manifest of a different earlier run in ``out_dir``.
        recursive: descend into sub-folders.
        quiet: no progress bar.

    Returns:
        The batch report; the manifest lists the outputs of done and skipped images.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    check_out_dir(input_dir, out_dir, recursive)
    jobs = plan_augmentation(input_dir, out_dir, settings or AugmentSettings(), seed=seed, ext=ext, recursive=recursive)
    return run_with_manifest(
        jobs,
        _augment_one,
        out_dir / AUGMENT_MANIFEST,
        lambda job: job.rows,
        fields=("output",),
        workers=workers,
        description="augment",
        quiet=quiet,
        skip_existing=skip_existing,
        overwrite=overwrite,
    )


def preview_augment(
    input_dir: str | Path,
    png: str | Path,
    settings: AugmentSettings | None = None,
    *,
    seed: int = 0,
    count: int = 4,
    recursive: bool = False,
) -> Path:
    """Contact sheet of the first ``count`` inputs and their variants; nothing else is written."""
    from minerrestore.preview import write_contact_sheet

    jobs = plan_augmentation(input_dir, png, settings or AugmentSettings(), seed=seed, recursive=recursive)
    if not jobs:
        raise UsageError(f"{input_dir}: no images to preview")
    rows = []
    for job in jobs[:count]:
        loaded = read_image(job.source)
        rows.append([(_label(row), apply_op(loaded.rgb, row["op"], row["params"])) for row in job.rows])
    return write_contact_sheet(png, rows, protect=[job.source for job in jobs])


def _label(row: Mapping[str, Any]) -> str:
    values = [
        f"x{value:g}" if key == "factor" else f"{value:+g}"
        for key, value in row["params"].items()
        if isinstance(value, (int, float))
    ]
    return " ".join([row["op"], *values])


__all__ = [
    "AUGMENT_MANIFEST",
    "GEOMETRIC_OPS",
    "OPS",
    "AugmentJob",
    "AugmentSettings",
    "adjust_brightness",
    "adjust_contrast",
    "apply_op",
    "augment_folder",
    "augment_image",
    "hflip",
    "plan_augmentation",
    "preview_augment",
    "rotate",
    "translate",
]
