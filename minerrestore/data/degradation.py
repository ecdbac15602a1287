"""Degradation model: training pairs (ground truth, low quality) for blind face restoration.

Implements Eq. 14 of "A Novel Blind Restoration Method for Miner Face Images Based on
Improved GFP-GAN Model" (IEEE Access; ../shared/docs/METHOD.md §1.2)::

    x = [ (y (*) k_sigma) downsample_r + n_delta ] JPEG_q   (then resized back to y's size)

in the stage order of GFP-GAN's ``gfpgan/data/ffhq_degradation_dataset.py`` (Apache-2.0):
blur, bilinear downsampling by ``int(size // r)``, noise, JPEG, bilinear resize back. The
``miner`` preset adds seeded pit-camera conditions before (coal dust, lamp colour cast, low
light) and inside it (motion blur, greyscale sensor, signal-dependent sensor noise); see
:mod:`minerrestore.data.presets`.

Everything random is drawn up front by :func:`sample_params` into a JSON-ready dict (stage
values plus a seed for each stage that needs per-pixel randomness), and
:func:`apply_degradation` is a pure function of the image and that dict. A manifest of the
drawn dicts therefore replays bit for bit (same library versions). Per-image seeds come
from the global seed and the file name (:func:`~minerrestore.data.folders.image_seed`), so
results do not depend on worker count or order. :class:`DegradationSettings` holds what the
``degrade`` command, its preview and the on-the-fly dataset share (preset, size, fit, seed);
the folder work of ``minerrestore degrade`` is in :mod:`minerrestore.data.pairs`.

basicsr (Apache-2.0, ``basicsr/data/degradations.py``) is the reference the tests hold us
to: our kernels equal its ``bivariate_Gaussian`` and our JPEG round trip matches its
``add_jpg_compression``; the benchmark races a loop over its functions. It is not
called at run time: importing it costs 3-4 s per worker process (torch, torchvision,
scipy: more than degrading a hundred faces), its noise functions draw from NumPy's global
random state, which cannot be recorded or replayed, and its JPEG helper expects float
BGR and makes OpenCV print a warning in every process.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from minerrestore.data.presets import BUILTIN_PRESETS, Preset, load_preset
from minerrestore.errors import ConfigError, UsageError

DEFAULT_SIZE = 512
"""Ground-truth side length in pixels (the paper trains at 512 x 512)."""

FITS = ("crop", "stretch")
"""How a non-square source becomes a square ground truth: centre crop, or plain resize."""

_COAL_RGB = np.array([0.05, 0.05, 0.055], dtype=np.float32)  # colour of coal dust on skin (0-1)
_FACE_CENTRE = (0.5, 0.55)  # where specks cluster: centre of an aligned face crop (fraction of w, h)
_FACE_SPREAD = (0.18, 0.2)  # std of the speck positions (fraction of w, h)
_SPECK_SOFTNESS = 0.7  # px, Gaussian sigma softening the speck edges
_DRAW_SHIFT = 4  # sub-pixel bits for cv2 drawing (1/16 px)
_SUPERSAMPLE = 8  # motion kernels: samples per pixel of length


# --------------------------------------------------------------------------- parameters


def sample_params(preset: Preset | str | Path, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one image's degradation parameters.

    Args:
        preset: a :class:`~minerrestore.data.presets.Preset`, a built-in name or a YAML path.
        rng: the image's generator, e.g. ``np.random.default_rng(image_seed(seed, name))``
            (:func:`~minerrestore.data.folders.image_seed`).

    Returns:
        A JSON-ready dict with one entry per applied stage, in application order, e.g.
        ``{"blur": {...}, "downsample": {"factor": 3.2}, "noise": {...}, "jpeg": {...}}``.
    """
    params: dict[str, Any] = {}
    for section, spec in load_preset(preset).stages:
        if rng.random() < spec.prob:
            params[section] = spec.sample(rng)
    return params


def describe_params(params: Mapping[str, Any]) -> str:
    """A short ASCII summary of drawn parameters for labels, e.g. ``blur 3.1 x4.2 n7.0 q77``."""
    parts = []
    if "dust" in params:
        parts.append("dust")
    if "cast" in params:
        parts.append("cast")
    if "lowlight" in params:
        parts.append(f"dark {params['lowlight']['exposure']:.2f}")
    if "blur" in params:
        parts.append(f"blur {params['blur']['sigma_x']:.1f}")
    if "motion" in params:
        parts.append(f"motion {params['motion']['length']:.0f}")
    if "downsample" in params:
        parts.append(f"x{params['downsample']['factor']:.1f}")
    if "grey" in params:
        parts.append("grey")
    if "noise" in params:
        parts.append(f"n{params['noise']['sigma']:.1f}")
    if "jpeg" in params:
        parts.append(f"q{params['jpeg']['quality']}")
    return " ".join(parts)


# --------------------------------------------------------------------------- kernels


def gaussian_taps(kernel_size: int, sigma: float) -> np.ndarray:
    """1-D normalised Gaussian of ``kernel_size`` (odd) taps; its outer product is the isotropic kernel."""
    axis = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    taps = np.exp(-0.5 * (axis / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def gaussian_kernel(kernel_size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Normalised (an)isotropic Gaussian blur kernel (the one of basicsr's ``bivariate_Gaussian``).

    ``exp(-(u^2 / sigma_x^2 + v^2 / sigma_y^2) / 2)`` where (u, v) are the pixel offsets
    rotated by ``theta``.

    Args:
        kernel_size: odd number of taps K.
        sigma_x, sigma_y: standard deviations in pixels along the rotated axes.
        theta: rotation in radians.

    Returns:
        KxK float32 kernel summing to 1.
    """
    axis = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    xx, yy = np.meshgrid(axis, axis)
    cos, sin = np.cos(theta), np.sin(theta)
    u, v = cos * xx + sin * yy, -sin * xx + cos * yy
    kernel = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised linear motion-blur kernel: a segment of ``length`` px at ``angle`` degrees.

    The segment is cut into pieces of 1/8 px whose midpoints are splatted bilinearly onto
    the pixel grid, so sub-pixel lengths and any angle are rendered without bias.

    Returns:
        KxK float32 kernel summing to 1, K odd and at least ``length``.
    """
    size = 2 * int(np.ceil(length / 2)) + 1
    centre = size // 2
    pieces = max(2, int(np.ceil(length * _SUPERSAMPLE)))
    offsets = ((np.arange(pieces) + 0.5) / pieces - 0.5) * length
    xs = centre + offsets * np.cos(np.radians(angle))
    ys = centre - offsets * np.sin(np.radians(angle))  # image rows grow downwards
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    kernel = np.zeros((size + 1, size + 1), np.float64)  # one spare row/column for the right neighbours
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    kernel = kernel[:size, :size]
    return (kernel / kernel.sum()).astype(np.float32)


# --------------------------------------------------------------------------- stages (float RGB 0-1)


def _dust(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    rng = np.random.default_rng(p["seed"])
    height, width = image.shape[:2]
    count = p["specks"]
    xs = rng.normal(_FACE_CENTRE[0], _FACE_SPREAD[0], count) * width
    ys = rng.normal(_FACE_CENTRE[1], _FACE_SPREAD[1], count) * height
    radii = rng.uniform(0.3, 1.0, count) * p["radius"]
    opacities = rng.uniform(0.4, 1.0, count) * p["darkness"]
    mask = np.zeros((height, width), np.uint8)
    scale = 1 << _DRAW_SHIFT
    for x, y, radius, opacity in zip(xs, ys, radii, opacities, strict=True):
        centre = (round(x * scale), round(y * scale))
        cv2.circle(mask, centre, max(1, round(radius * scale)), round(opacity * 255), -1, cv2.LINE_AA, _DRAW_SHIFT)
    mask = cv2.GaussianBlur(mask, (0, 0), _SPECK_SOFTNESS)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    image = image * (1.0 - alpha) + alpha * _COAL_RGB
    return image * (1.0 - p["haze"]) + p["haze"] * p["haze_level"]


def _cast(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return image * np.asarray(p["gains"], dtype=np.float32)


def _lowlight(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return p["exposure"] * np.power(image, p["gamma"])


def _blur(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    if p["sigma_x"] == p["sigma_y"]:  # isotropic: separable, the same result at a fraction of the cost
        taps = gaussian_taps(p["kernel_size"], p["sigma_x"])
        return cv2.sepFilter2D(image, -1, taps, taps, borderType=cv2.BORDER_REFLECT_101)
    kernel = gaussian_kernel(p["kernel_size"], p["sigma_x"], p["sigma_y"], p["theta"])
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def _motion(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    return cv2.filter2D(image, -1, motion_kernel(p["length"], p["angle"]), borderType=cv2.BORDER_REFLECT_101)


def _downsample(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, int(width // p["factor"])), max(1, int(height // p["factor"])))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _grey(image: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    luma = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(luma, cv2.COLOR_GRAY2RGB)


def _standard_normal(seed: int, shape: tuple[int, ...], grey: bool) -> np.ndarray:
    """Per-pixel N(0, 1) noise from ``seed``; one value shared by the channels when ``grey``."""
    rng = np.random.default_rng(seed)
    if grey:
        return rng.standard_normal(shape[:2], dtype=np.float32)[..., None]
    return rng.standard_normal(shape, dtype=np.float32)


def _sensor_noise(image: np.ndarray, p: Mapping[str, Any], grey: bool) -> np.ndarray:
    """Signal-dependent noise of a dim sensor: std = sqrt(shot * signal) on the 0-255 scale."""
    signal = np.clip(image, 0.0, 1.0) * 255.0
    std = np.sqrt(p["shot"] * signal) / 255.0
    return image + std * _standard_normal(p["seed"], image.shape, grey)


def _gaussian_noise(image: np.ndarray, p: Mapping[str, Any], grey: bool) -> np.ndarray:
    return image + (p["sigma"] / 255.0) * _standard_normal(p["seed"], image.shape, grey)


def jpeg_roundtrip(image: np.ndarray, quality: int, grey: bool = False) -> np.ndarray:
    """Encode to JPEG at ``quality`` (1-100, 4:2:0 chroma) and decode, in memory.

    Args:
        image: HxWx3 uint8 RGB.
        grey: encode one luma channel, as a monochrome camera does.

    Returns:
        HxWx3 uint8 RGB.
    """
    picture = Image.fromarray(image[..., 0] if grey else image)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(quality))
    with Image.open(buffer) as decoded:
        pixels = np.asarray(decoded)
    return np.repeat(pixels[..., None], 3, axis=2) if grey else pixels


_BEFORE_NOISE: dict[str, Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]] = {
    "dust": _dust,
    "cast": _cast,
    "lowlight": _lowlight,
    "blur": _blur,
    "motion": _motion,
    "downsample": _downsample,
    "grey": _grey,
}
KNOWN_STAGES = (*_BEFORE_NOISE, "noise", "jpeg")
"""Every stage :func:`apply_degradation` implements (the sections of a preset)."""


def apply_degradation(image: np.ndarray, params: Mapping[str, Any], resize_back: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Degrade ``image`` with the drawn ``params`` (a pure, deterministic function).

    Stage order: dust, cast, low-light exposure, blur, motion blur, downsample, greyscale,
    low-light sensor noise, Gaussian noise, JPEG, resize back to the input size (bilinear).

    Args:
        image: HxWx3 (or HxW grey) uint8 RGB ground truth, usually from :func:`prepare_gt`.
        params: a dict from :func:`sample_params` (or a manifest row's ``params``).
        resize_back: OpenCV interpolation of the final resize back (bilinear, as GFP-GAN's
            data loader; the model card's plain-resize baseline uses bicubic).

    Returns:
        HxWx3 uint8 RGB low-quality image of the same size.

    Raises:
        ConfigError: ``params`` names a stage that does not exist.
    """
    unknown = sorted(set(params) - set(KNOWN_STAGES))
    if unknown:
        raise ConfigError(f"unknown degradation stage(s) {unknown}", hint=f"known: {', '.join(KNOWN_STAGES)}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    work = np.multiply(image, np.float32(1.0 / 255.0), dtype=np.float32)
    for stage, function in _BEFORE_NOISE.items():
        if stage in params:
            work = function(work, params[stage])
            np.clip(work, 0.0, 1.0, out=work)
    grey = "grey" in params
    if "lowlight" in params:
        work = _sensor_noise(work, params["lowlight"], grey)
    if "noise" in params:
        work = _gaussian_noise(work, params["noise"], grey)
    low = np.clip(np.rint(work * 255.0), 0, 255).astype(np.uint8)
    if "jpeg" in params:
        low = jpeg_roundtrip(low, params["jpeg"]["quality"], grey)
    if low.shape[:2] != (height, width):
        low = cv2.resize(low, (width, height), interpolation=resize_back)
    return low


def apply_degradation_at_scale(image: np.ndarray, params: Mapping[str, Any], scale: int) -> np.ndarray:
    """Degrade ``image`` as a face ``scale`` times larger would be: enlarge, degrade, shrink back.

    Enlarging is bicubic and shrinking area averaging, as the restore pipeline shrinks a large
    face to the network's size; the same ``params`` are relatively milder at a larger scale
    (training option ``data.degrade_scales``). ``scale`` 1 is :func:`apply_degradation`.
    """
    if scale == 1:
        return apply_degradation(image, params)
    height, width = image.shape[:2]
    large = cv2.resize(image, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(apply_degradation(large, params), (width, height), interpolation=cv2.INTER_AREA)


def prepare_gt(rgb: np.ndarray, size: int = DEFAULT_SIZE, fit: str = "crop") -> np.ndarray:
    """Square ground truth of ``size`` px: centre-crop (``fit="crop"``) or stretch, then resize.

    Shrinking uses area averaging, enlarging bicubic interpolation.

    Args:
        rgb: HxWx3 uint8 RGB.

    Returns:
        size x size x 3 uint8 RGB.
    """
    if fit not in FITS:
        raise UsageError(f"fit {fit!r} is not one of {', '.join(FITS)}", settings=("fit",))
    if size < 8:
        raise UsageError(f"size {size} is too small", hint="use at least 8 px (the paper uses 512)", settings=("size",))
    height, width = rgb.shape[:2]
    if fit == "crop" and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] * rgb.shape[1] > size * size
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DegradationSettings:
    """How ground truths are made and degraded: ``degrade``'s ``--preset``, ``--size``, ``--fit``, ``--seed``.

    One object for :func:`~minerrestore.data.pairs.degrade_folder`, its preview and
    :class:`~minerrestore.data.datasets.DegradedFaceDataset`: an image's pair depends only on these
    and the image's relative name (and the dataset's epoch). They are checked where they are
    used, before any work (a replay takes them from its manifest instead).

    Attributes:
        preset: ``paper``, ``miner``, a YAML path or a loaded :class:`~minerrestore.data.presets.Preset`.
        size: side of the square ground truth in pixels.
        fit: ``crop`` (centre square) or ``stretch`` for non-square sources (see :data:`FITS`).
        seed: global seed; per-image seeds derive from it and the file name.
    """

    preset: str | Path | Preset = BUILTIN_PRESETS[0]
    size: int = DEFAULT_SIZE
    fit: str = FITS[0]
    seed: int = 0


__all__ = [
    "DEFAULT_SIZE",
    "FITS",
    "KNOWN_STAGES",
    "DegradationSettings",
    "apply_degradation",
    "apply_degradation_at_scale",
    "describe_params",
    "gaussian_kernel",
    "jpeg_roundtrip",
    "motion_kernel",
    "prepare_gt",
    "sample_params",
]
