"""PSNR and SSIM, MATLAB-compatible, batched in torch (float64).

PSNR uses MAX = 255. SSIM follows Wang et al. 2004 and their MATLAB release: an 11x11
Gaussian window (sigma 1.5), constants C1 = (0.01 * 255)^2 and C2 = (0.03 * 255)^2,
"valid" filtering, the map averaged, and on RGB the mean over the three channels. Both
run on RGB or on the MATLAB Y channel, after dropping ``crop_border`` pixels per side.
The values equal ``basicsr.metrics.calculate_psnr`` / ``calculate_ssim`` (BasicSR,
Apache-2.0) on the same images; this is our own batched implementation.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

from minerrestore.metrics._images import as_nchw, crop, rgb_to_y

PSNR_MAX = 255.0
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_SSIM_CHUNK_VALUES = 1 << 22  # values per batched SSIM pass, so the float64 moment maps stay ~170 MB

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _prepare(
    restored: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batches as N x C x H x W on the same device, cropped, Y (float64) if asked."""
    first, second = as_nchw(restored), as_nchw(target)
    if first.shape != second.shape:
        raise ValueError(f"image shapes differ: {tuple(first.shape)} vs {tuple(second.shape)}")
    first, second = crop(first, crop_border), crop(second.to(first.device), crop_border)
    if y_channel:
        return rgb_to_y(first), rgb_to_y(second)
    return first, second


def psnr(
    restored: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image (``inf`` for identical images).

    Args:
        restored: image(s) in [0, 255]: numpy (N x) H x W x 3 or torch (N x) 3 x H x W.
        target: ground truth, same shape.
        crop_border: pixels dropped on each side before measuring.
        y_channel: measure on the MATLAB Y channel instead of RGB.

    Returns:
        float64 tensor of shape (N,).
    """
    first, second = _prepare(restored, target, crop_border, y_channel)
    if first.dtype == torch.uint8:  # exact integer sum of squares, as float64 sums it
        squared = (first.to(torch.int32) - second.to(torch.int32)).square().sum(dim=(1, 2, 3))
        mse = squared.to(torch.float64) / math.prod(first.shape[1:])
    else:
        mse = (first.to(torch.float64) - second.to(torch.float64)).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(PSNR_MAX**2 / mse)  # mse == 0 gives inf, as basicsr


def gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> list[float]:
    """Normalised 1-D Gaussian: the separable factor of the SSIM window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).tolist()


def _ssim_map(mu1: Array, mu2: Array, e11: Array, e22: Array, e12: Array) -> Array:
    """SSIM map from local means and second moments (numpy arrays or torch tensors)."""
    c1 = (SSIM_K1 * PSNR_MAX) ** 2
    c2 = (SSIM_K2 * PSNR_MAX) ** 2
    mu12, mu1_sq, mu2_sq = mu1 * mu2, mu1 * mu1, mu2 * mu2
    numerator = (2 * mu12 + c1) * (2 * (e12 - mu12) + c2)
    denominator = (mu1_sq + mu2_sq + c1) * ((e11 - mu1_sq) + (e22 - mu2_sq) + c2)
    return numerator / denominator


def _ssim_opencv(first: torch.Tensor, second: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """SSIM on the CPU, image by image, with OpenCV's SIMD separable filter (float64)."""
    import cv2

    kernel = np.asarray(taps, dtype=np.float64)
    margin = len(taps) // 2
    values = []
    for restored, target in zip(first, second, strict=True):
        x, y = restored.permute(1, 2, 0).numpy(), target.permute(1, 2, 0).numpy()
        moments = np.concatenate([x, y, x * x, y * y, x * y], axis=2)
        filtered = cv2.sepFilter2D(moments, cv2.CV_64F, kernel, kernel).reshape(moments.shape)
        filtered = filtered[margin:-margin, margin:-margin]
        values.append(_ssim_map(*np.split(filtered, 5, axis=2)).mean())
    return torch.tensor(values, dtype=torch.float64)


def _valid_filter_shifted(maps: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable "valid" filtering of N x C x H x W maps by 2 x len(taps) multiply-adds.

    Float64 depthwise convolutions have no fast kernels; shifted sums are several times
    faster and keep the batch on the GPU.
    """
    rows = maps.shape[2] - len(taps) + 1
    vertical = maps[:, :, :rows] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        vertical.add_(maps[:, :, offset : offset + rows], alpha=weight)
    cols = maps.shape[3] - len(taps) + 1
    result = vertical[..., :cols] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        result.add_(vertical[..., offset : offset + cols], alpha=weight)
    return result


def _ssim_batched(first: torch.Tensor, second: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """SSIM of a whole N x C x H x W float64 batch in torch (GPU)."""
    per_pass = max(1, _SSIM_CHUNK_VALUES // math.prod(first.shape[1:]))
    values = []
    for start in range(0, first.shape[0], per_pass):
        x, y = first[start : start + per_pass], second[start : start + per_pass]
        moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        filtered = _valid_filter_shifted(moments, taps)
        values.append(_ssim_map(*filtered.chunk(5, dim=1)).mean(dim=(1, 2, 3)))
    return torch.cat(values)


def ssim(
    restored: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Structural similarity (MATLAB-compatible), one value per image.

    Args:
        restored: image(s) in [0, 255]: numpy (N x) H x W x 3 or torch (N x) 3 x H x W.
        target: ground truth, same shape.
        crop_border: pixels dropped on each side before measuring.
        y_channel: measure on the MATLAB Y channel instead of RGB (mean of 3 channels).

    Returns:
        float64 tensor of shape (N,), values in [-1, 1].
    """
    first, second = _prepare(restored, target, crop_border, y_channel)
    if min(first.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    first, second = first.to(torch.float64), second.to(torch.float64)
    if first.device.type == "cpu":
        return _ssim_opencv(first, second, gaussian_taps())
    return _ssim_batched(first, second, gaussian_taps()).cpu()
