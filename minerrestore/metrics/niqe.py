"""NIQE (Natural Image Quality Evaluator), no-reference, on the MATLAB Y channel.

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer",
IEEE SPL 2013. The image (Y, rounded) is cut into 96x96 blocks at two scales (the second
a MATLAB-style bicubic half-size resize); each block gives 18 natural-scene statistics
(generalised-Gaussian fits of the normalised luminance and of its products with four
neighbours); a Gaussian fitted to all blocks is compared with the pristine model of the
MATLAB release. Lower is better.

The pristine parameters are those BasicSR 1.4.2 ships (``basicsr/metrics/niqe_pris_params.npz``,
Apache-2.0), shipped unchanged in ``weights/`` (provenance in ``weights/README.md``), so that
basicsr is not a run-time dependency. The values equal
``basicsr.metrics.calculate_niqe`` (which matches MATLAB to 1e-6); this is our own
vectorised implementation: all blocks of an image are fitted at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import convolve
from scipy.special import gamma

from minerrestore.errors import WeightsError
from minerrestore.metrics._images import as_nchw, crop, rgb_to_y
from minerrestore.models.catalogue import resolve_file

NIQE_BLOCK = 96
NIQE_MIN_BLOCKS = 2  # the distorted-image covariance needs at least two blocks
# AGGD shape search grid of the MATLAB release: 0.2, 0.201, ..., 10
_AGGD_SHAPES = np.arange(0.2, 10.001, 0.001)
_AGGD_RATIOS = gamma(2 / _AGGD_SHAPES) ** 2 / (gamma(1 / _AGGD_SHAPES) * gamma(3 / _AGGD_SHAPES))
# neighbour offsets (rows, columns) for the paired products: horizontal, vertical, two diagonals
_NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class PristineModel:
    """The multivariate Gaussian of pristine-image features and the local smoothing window."""

    mean: np.ndarray  # (36,)
    covariance: np.ndarray  # (36, 36)
    window: np.ndarray  # (7, 7)


@lru_cache(maxsize=1)
def load_pristine_model() -> PristineModel:
    """The MATLAB-release pristine parameters (``weights/niqe_pris_params.npz``, as BasicSR ships them).

    Raises:
        WeightsError: the file is missing or not a NIQE parameter file.
    """
    path = resolve_file("niqe-pristine")
    try:
        with np.load(path, allow_pickle=False) as params:
            return PristineModel(
                mean=params["mu_pris_param"].reshape(-1).astype(np.float64),
                covariance=params["cov_pris_param"].astype(np.float64),
                window=params["gaussian_window"].astype(np.float64),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise WeightsError(
            f"{path}: not a NIQE parameter file ({exc})", hint="reinstall minerrestore (the file ships in weights/)"
        ) from exc


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel (a = -0.5), as MATLAB's imresize."""
    ax = torch.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1).to(ax.dtype)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)).to(ax.dtype)
    return near + far


def _resize_taps(in_length: int, scale: float) -> tuple[torch.Tensor, list[int], int, int]:
    """Taps of MATLAB ``imresize(..., 'bicubic')`` with antialiasing along one axis (float32).

    Returns:
        weights (out x taps), the first padded input index of each output, and the
        number of mirrored pixels needed before and after the input.
    """
    out_length = math.ceil(in_length * scale)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    centres = torch.linspace(1, out_length, out_length) / scale + 0.5 * (1 - 1 / scale)  # 1-based
    left = torch.floor(centres - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float32)[None, :]
    distance = centres[:, None] - indices
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    nonzero = (weights != 0).any(dim=0).nonzero().flatten()  # drop all-zero edge taps
    first, last = int(nonzero[0]), int(nonzero[-1]) + 1
    weights, indices = weights[:, first:last].contiguous(), indices[:, first:last]
    pad_before = max(0, 1 - int(indices.min()))
    pad_after = max(0, int(indices.max()) - in_length)
    starts = (indices[:, 0].long() - 1 + pad_before).tolist()
    return weights, starts, pad_before, pad_after


def _half_size(image: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(image / 255, 0.5) * 255`` (bicubic, antialiased, mirrored edges).

    Computed in float32 with one matrix-vector product per output row and column, the
    arithmetic of BasicSR's ``imresize``: NIQE's 0.001-step shape grid turns last-bit
    differences of this resize into visible score differences, so we match it exactly.
    """
    unit = torch.from_numpy(image / np.float32(255.0))
    weights, starts, before, after = _resize_taps(unit.shape[0], 0.5)
    padded = torch.from_numpy(np.pad(unit.numpy(), ((before, after), (0, 0)), mode="symmetric"))
    taps = weights.shape[1]
    rows = torch.stack([padded[s : s + taps].T.mv(w) for s, w in zip(starts, weights, strict=True)])
    weights, starts, before, after = _resize_taps(unit.shape[1], 0.5)
    padded = torch.from_numpy(np.pad(rows.numpy(), ((0, 0), (before, after)), mode="symmetric"))
    taps = weights.shape[1]
    resized = torch.stack([padded[:, s : s + taps].mv(w) for s, w in zip(starts, weights, strict=True)], dim=1)
    return resized.numpy() * np.float32(255.0)


def _aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit asymmetric generalised Gaussians to each row (moment matching on the MATLAB grid).

    Args:
        samples: (B, K) float64, one block per row.

    Returns:
        shape alpha, left scale, right scale; each (B,). A block without negative or
        positive values gets NaN scales, as in the MATLAB release.
    """
    squares = samples * samples
    negative, positive = samples < 0, samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((squares * negative).sum(1) / negative.sum(1))
        right_std = np.sqrt((squares * positive).sum(1) / positive.sum(1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(samples).mean(1) ** 2 / squares.mean(1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # nearest grid ratio (the ratios increase with alpha); NaN picks the first, as argmin does
    upper = np.clip(np.searchsorted(_AGGD_RATIOS, r_norm), 1, len(_AGGD_RATIOS) - 1)
    lower = upper - 1
    take_lower = (_AGGD_RATIOS[lower] - r_norm) ** 2 <= (_AGGD_RATIOS[upper] - r_norm) ** 2
    index = np.where(np.isnan(r_norm), 0, np.where(take_lower, lower, upper))
    alpha = _AGGD_SHAPES[index]
    spread = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * spread, right_std * spread


def _block_features(normalised: np.ndarray, block: int, rows: int, cols: int) -> np.ndarray:
    """The 18 NIQE features of every block: (rows * cols, 18)."""
    blocks = normalised[: rows * block, : cols * block].astype(np.float64)
    blocks = blocks.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, left, right = _aggd_fit(blocks.reshape(len(blocks), -1))
    features = [alpha, (left + right) / 2]
    for shift in _NEIGHBOUR_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, left, right = _aggd_fit(products.reshape(len(blocks), -1))
        features += [alpha, (right - left) * gamma(2 / alpha) / gamma(1 / alpha), left, right]
    return np.stack(features, axis=1)


def _normalised_luminance(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised luminance (paper Eq. 1), float32 like the reference."""
    mu = convolve(image, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(np.square(image), window, mode="nearest") - np.square(mu)))
    return (image - mu) / (sigma + 1)


def niqe_of_y(luma: np.ndarray, model: PristineModel | None = None) -> float:
    """NIQE of one rounded Y (or grey) image.

    Args:
        luma: H x W float32 in [0, 255], integer-valued (rounded), H and W >= 96 and at
            least two 96x96 blocks.
        model: pristine parameters (default: :func:`load_pristine_model`).

    Returns:
        The NIQE score (lower is better).
    """
    model = model or load_pristine_model()
    rows, cols = luma.shape[0] // NIQE_BLOCK, luma.shape[1] // NIQE_BLOCK
    if rows * cols < NIQE_MIN_BLOCKS:
        raise ValueError(
            f"NIQE needs at least {NIQE_MIN_BLOCKS} blocks of {NIQE_BLOCK}x{NIQE_BLOCK} pixels, "
            f"got a {luma.shape[1]}x{luma.shape[0]} image"
        )
    image = luma[: rows * NIQE_BLOCK, : cols * NIQE_BLOCK].astype(np.float32)
    scales = []
    for scale in (1, 2):
        normalised = _normalised_luminance(image, model.window)
        scales.append(_block_features(normalised, NIQE_BLOCK // scale, rows, cols))
        if scale == 1:
            image = _half_size(image)
    features = np.concatenate(scales, axis=1)
    mean = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    covariance = np.cov(complete, rowvar=False)
    difference = model.mean - mean
    inverse = np.linalg.pinv((model.covariance + covariance) / 2)
    return float(np.sqrt(difference @ inverse @ difference))


def niqe_score(images: np.ndarray | torch.Tensor, crop_border: int = 0) -> np.ndarray:
    """NIQE on the MATLAB Y channel, one value per image (equal to basicsr's ``calculate_niqe``).

    Args:
        images: RGB image(s) in [0, 255]: numpy (N x) H x W x 3 or torch (N x) 3 x H x W;
            each at least 192 x 96 pixels (two 96x96 blocks) after cropping.
        crop_border: pixels dropped on each side first.

    Returns:
        float64 array of shape (N,); lower is better.
    """
    model = load_pristine_model()
    batch = crop(as_nchw(images), crop_border)
    lumas = rgb_to_y(batch).round().to(torch.float32).cpu().numpy()[:, 0]
    return np.array([niqe_of_y(luma, model) for luma in lumas])
