"""RRDBNet: the Real-ESRGAN background upsampler (x2plus and x4plus layouts).

The network of ESRGAN / Real-ESRGAN (Wang et al., 2018 and 2021): residual-in-residual dense
blocks on features at the input resolution, then two nearest-neighbour x2 enlargements. The x2
model first folds each 2x2 pixel block into channels (pixel unshuffle), so both models share
the same trunk. Parameter names follow the official ``RealESRGAN_x2plus.pth`` and
``RealESRGAN_x4plus.pth`` files (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), which load strictly; the sizes are
read from a file's shapes (:func:`load_rrdbnet`). Written for minerrestore (MIT); checked
against basicsr's ``RRDBNet`` in the tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from minerrestore.errors import WeightsError

_RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling of dense blocks and of RRDBs


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing every earlier output; residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for index in range(1, 6):
            out = num_feat if index == 5 else num_grow_ch
            setattr(self, f"conv{index}", nn.Conv2d(num_feat + (index - 1) * num_grow_ch, out, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for index in range(1, 5):
            features.append(self.lrelu(getattr(self, f"conv{index}")(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * _RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """Real-ESRGAN's generator: RGB in [0, 1] -> RGB enlarged ``scale`` times (2 or 4).

    Args:
        scale: 4 (x4plus) or 2 (x2plus: pixel-unshuffled input, sides must be even).
        num_feat: trunk channels (64 in the official files).
        num_block: RRDBs (23).
        num_grow_ch: dense-block growth channels (32).
    """

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"RRDBNet scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (16 // scale**2), num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, 2) if self.scale == 2 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def rrdbnet_from_state_dict(state: Mapping[str, torch.Tensor]) -> RRDBNet:
    """An :class:`RRDBNet` sized from a state dict's shapes, its weights loaded strictly.

    Raises:
        WeightsError: not an RRDBNet state dict (missing or mismatched tensors).
    """
    try:
        in_channels = state["conv_first.weight"].shape[1]
        num_feat = state["conv_first.weight"].shape[0]
        num_grow_ch = state["body.0.rdb1.conv1.weight"].shape[0]
    except (KeyError, AttributeError, IndexError) as exc:
        raise WeightsError(f"not a Real-ESRGAN RRDBNet state dict (no {exc})") from exc
    scales = {3: 4, 12: 2}
    if in_channels not in scales:
        raise WeightsError(f"RRDBNet with {in_channels} input channels: neither x4plus (3) nor x2plus (12)")
    num_block = len({match[1] for key in state if (match := re.match(r"body\.(\d+)\.", key))})
    net = RRDBNet(scales[in_channels], num_feat, num_block, num_grow_ch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"RRDBNet state dict does not load: {str(exc).splitlines()[0]}") from exc
    return net


def load_rrdbnet(path: str | Path) -> RRDBNet:
    """Load an official Real-ESRGAN file (``params_ema``, else ``params``, else the top level), eval mode.

    Raises:
        WeightsError: unreadable file or not an RRDBNet.
    """
    from minerrestore.models.files import load_state_dict

    loaded = load_state_dict(path)
    state = next((loaded[key] for key in ("params_ema", "params") if isinstance(loaded.get(key), Mapping)), loaded)
    try:
        net = rrdbnet_from_state_dict(state)  # type: ignore[arg-type]
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc.message}", hint=exc.hint) from exc
    return net.eval().requires_grad_(False)


__all__ = ["RRDB", "RRDBNet", "ResidualDenseBlock", "load_rrdbnet", "rrdbnet_from_state_dict"]
