"""Image batches for the metrics: layout conversion and the MATLAB-compatible Y channel.

The Y channel reproduces MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio range 16-235)
exactly as BasicSR's ``to_y_channel`` (Apache-2.0) computes it, including its float32
rounding, so PSNR, SSIM and NIQE on Y equal BasicSR's values.
"""

from __future__ import annotations

import numpy as np
import torch

# BT.601 luma of RGB in [0, 1] scaled to [16, 235] (MATLAB rgb2ycbcr), and its offset
_Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def as_nchw(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Bring images to an N x C x H x W tensor with values in [0, 255] (dtype kept).

    Args:
        images: a numpy H x W x C or N x H x W x C array (or H x W grey), or a torch
            C x H x W or N x C x H x W tensor; uint8 or float, range [0, 255].
        device: where the tensor should live (default: where it is; CPU for numpy).

    Returns:
        N x C x H x W tensor (a view of a torch input; a planar copy of a numpy input).
    """
    if isinstance(images, np.ndarray):
        array = images[..., None] if images.ndim == 2 else images
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor.unsqueeze(0) if tensor.ndim == 3 else tensor
        tensor = tensor.permute(0, 3, 1, 2).contiguous()  # planar: channel slices stay contiguous
    else:
        tensor = images.unsqueeze(0) if images.ndim == 3 else images
    if tensor.ndim != 4:
        raise ValueError(f"expected an image or a batch of images, got shape {tuple(images.shape)}")
    return tensor if device is None else tensor.to(device)


def crop(images: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels on each side of N x C x H x W images (0 keeps them)."""
    if border < 0:
        raise ValueError(f"crop border must be >= 0, got {border}")
    if border == 0:
        return images
    if 2 * border >= min(images.shape[-2:]):
        raise ValueError(f"crop border {border} leaves nothing of a {images.shape[-1]}x{images.shape[-2]} image")
    return images[..., border:-border, border:-border]


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """MATLAB-compatible Y (of YCbCr) of RGB images, as BasicSR computes it.

    Args:
        images: N x 3 x H x W RGB in [0, 255] (uint8 or float).

    Returns:
        N x 1 x H x W float64 holding float32-rounded values in [16, 235], equal to
        ``basicsr.metrics.metric_util.to_y_channel`` of the same (BGR) image.
    """
    unit = images.to(torch.float32) / 255.0
    red, green, blue = (unit[:, c : c + 1].to(torch.float64) for c in range(3))
    w_red, w_green, w_blue = _Y_WEIGHTS_RGB
    luma = blue * w_blue + green * w_green + red * w_red + _Y_OFFSET
    return ((luma / 255.0).to(torch.float32) * 255.0).to(torch.float64)
