"""The background upsampler of ``restore --bg-upsampler realesrgan``: Real-ESRGAN, tiled.

The photo is enlarged by Real-ESRGAN (:mod:`minerrestore.archs.rrdbnet`; ``realesrgan-x2plus``
for ``upscale`` up to 2, ``realesrgan-x4plus`` above, resized to the exact output size) before
the restored faces are pasted over it. The network runs on tiles of at most ``tile`` pixels a
side, each read with ``overlap`` pixels of the photo around it and cropped back to its own
area, so memory stays bounded on a 6000x4000 frame on a CPU or a GPU and the tiles meet without
seams; only the uint8 output holds the whole photo. Written for minerrestore (MIT).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from minerrestore.errors import UsageError

if TYPE_CHECKING:
    import torch

BgUpsampler = Literal["none", "realesrgan"]
BG_UPSAMPLERS: tuple[BgUpsampler, ...] = get_args(BgUpsampler)
DEFAULT_TILE = 400
DEFAULT_OVERLAP = 16


def model_for_upscale(upscale: float) -> str:
    """The catalogue name of the Real-ESRGAN model for ``upscale``: x2plus up to 2, x4plus above."""
    return "realesrgan-x2plus" if upscale <= 2 else "realesrgan-x4plus"


def tiles(height: int, width: int, tile: int, align: int = 1) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the tiles covering a (height, width) image, row by row.

    Tile corners fall on multiples of ``align`` (2 for pixel-unshuffled networks).
    """
    step = max(align, tile - tile % align)
    for top in range(0, height, step):
        for left in range(0, width, step):
            yield top, left, min(top + step, height), min(left + step, width)


def tiled_upscale(
    net: torch.nn.Module,
    rgb: np.ndarray,
    scale: int,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    device: str | torch.device = "cpu",
    align: int = 1,
) -> np.ndarray:
    """Run an image-to-image network that enlarges ``scale`` times over tiles.

    Args:
        net: maps (1, 3, h, w) RGB in [0, 1] to (1, 3, h*scale, w*scale).
        rgb: (H, W, 3) uint8 RGB; H and W multiples of ``align``.
        scale: the network's factor.
        tile: tile side in input pixels (0: the whole image at once).
        overlap: photo pixels read around each tile and dropped from its output.
        device: where the network runs.
        align: tile corners and sizes are multiples of this (the network's pixel unshuffle).

    Returns:
        (H*scale, W*scale, 3) uint8 RGB.
    """
    import torch

    height, width = rgb.shape[:2]
    if height % align or width % align:
        raise ValueError(f"image sides {height}x{width} must be multiples of {align}")
    overlap += -overlap % align
    output = np.empty((height * scale, width * scale, 3), np.uint8)
    for top, left, bottom, right in tiles(height, width, tile or max(height, width), align):
        y0, x0 = max(0, top - overlap), max(0, left - overlap)
        y1, x1 = min(height, bottom + overlap), min(width, right + overlap)
        patch = torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1])).to(device)
        with torch.inference_mode():
            x = patch.permute(2, 0, 1)[None].float().div_(255.0)
            y = net(x)[0].clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0)
        crop = y[(top - y0) * scale : (bottom - y0) * scale, (left - x0) * scale : (right - x0) * scale]
        output[top * scale : bottom * scale, left * scale : right * scale] = crop.cpu().numpy()
    return output


@dataclass(eq=False)
class BackgroundUpsampler:
    """Real-ESRGAN for the background of restored photos (the network loads on first use).

    Args:
        device: where the network runs.
        tile: tile side in input pixels (0: untiled).
        overlap: photo pixels of context around each tile.
    """

    device: str | Any = "cpu"
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    _nets: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tile < 0 or self.overlap < 0:
            raise UsageError(f"bg tile and overlap must not be negative, got {self.tile} and {self.overlap}")

    def network(self, upscale: float) -> Any:
        """The loaded network for ``upscale`` (raises WeightsError when its file is missing)."""
        name = model_for_upscale(upscale)
        if name not in self._nets:
            from minerrestore.archs.rrdbnet import load_rrdbnet
            from minerrestore.models.catalogue import resolve_file

            self._nets[name] = load_rrdbnet(resolve_file(name)).to(self.device)
        return self._nets[name]

    def upsample(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``rgb`` (H, W, 3 uint8) enlarged by Real-ESRGAN to ``size`` (height, width)."""
        net = self.network(size[0] / rgb.shape[0])
        height, width = rgb.shape[:2]
        align = 2 if net.scale == 2 else 1
        padded = np.pad(rgb, ((0, height % align), (0, width % align), (0, 0)), mode="edge")
        enlarged = tiled_upscale(
            net, padded, net.scale, tile=self.tile, overlap=self.overlap, device=self.device, align=align
        )[: height * net.scale, : width * net.scale]
        from minerrestore.restore import resize_to

        return resize_to(enlarged, size)


__all__ = [
    "BG_UPSAMPLERS",
    "BackgroundUpsampler",
    "BgUpsampler",
    "model_for_upscale",
    "tiled_upscale",
    "tiles",
]
