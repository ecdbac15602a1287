"""Spatial feature modulation of StyleGAN2 features: SFT, CS-SFT, SE-SFT and SE-CSSFT.

- SFT (Wang et al., "Recovering Realistic Texture in Image Super-resolution by Deep Spatial
  Feature Transform", CVPR 2018): ``F' = alpha * F + beta`` on every channel.
- CS-SFT (GFP-GAN, CVPR 2021, ``gfpgan/archs/gfpganv1_clean_arch.py`` with
  ``sft_half=True``, Apache-2.0): the first half of the channels passes unchanged, the second
  half gets ``alpha * F + beta``.
- SE-CSSFT (the miner-face paper, METHOD.md section 2 step 3): CS-SFT, then a
  squeeze-and-excitation block (Hu et al., CVPR 2018) over the concatenation.
- SE-SFT (paper scheme F): SFT on every channel, then the same SE block.

``alpha`` and ``beta`` come from the degradation-removal features through two small
convolution branches (:func:`condition_branch`; official names ``condition_scale`` and
``condition_shift``), which live in the restorer so that official checkpoints load. The code is
our own.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.stylegan2 import LEAKY_SLOPE

ModulationName = Literal["sft", "cs-sft", "se-sft", "se-cssft"]
MODULATIONS: tuple[str, ...] = get_args(ModulationName)
SE_REDUCTION = 16


def condition_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    """Map a spatial feature to ``alpha`` or ``beta``: conv3x3, leaky ReLU 0.2, conv3x3 (GFP-GAN layout)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, 1, 1),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(in_channels, out_channels, 3, 1, 1),
    )


class SqueezeExcitation(nn.Module):
    """Channel re-weighting: global average pool, FC, ReLU, FC, sigmoid, multiply.

    Args:
        channels: feature channels.
        reduction: hidden size is ``channels // reduction`` (at least 1).
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        pooled = x.float().mean(dim=(2, 3))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return x * gate[:, :, None, None].to(x.dtype)


class SFT(nn.Module):
    """``alpha * F + beta`` on all channels; no parameters of its own.

    Args:
        channels: feature channels (``alpha`` and ``beta`` have as many).
    """

    split = False

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    @classmethod
    def condition_channels(cls, channels: int) -> int:
        """Channels of ``alpha`` and ``beta`` for a feature of ``channels`` channels."""
        return channels // 2 if cls.split else channels

    def transform(self, feature: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """The affine part: (B, C, H, W) with (B, C', H, W) scale and shift -> (B, C, H, W)."""
        if not self.split:
            return feature * scale + shift
        same, modulated = torch.split(feature, feature.shape[1] // 2, dim=1)
        return torch.cat([same, modulated * scale + shift], dim=1)

    def forward(self, feature: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """Modulate ``feature`` (B, C, H, W) with ``scale``/``shift`` (B, C', H, W)."""
        return self.transform(feature, scale, shift)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class CSSFT(SFT):
    """Channel-split SFT (GFP-GAN): first half unchanged, second half ``alpha * F + beta``."""

    split = True


class SESFT(SFT):
    """SFT on all channels, then squeeze-and-excitation (paper scheme F).

    Args:
        channels: feature channels.
        reduction: SE reduction ratio.
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__(channels)
        self.se = SqueezeExcitation(channels, reduction)

    def forward(self, feature: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """Modulate, then re-weight channels: (B, C, H, W) -> (B, C, H, W)."""
        return self.se(self.transform(feature, scale, shift))


class SECSSFT(SESFT):
    """CS-SFT, then squeeze-and-excitation over the concatenation (the paper's SE-CSSFT)."""

    split = True


MODULATION_LAYERS: dict[str, type[SFT]] = {"sft": SFT, "cs-sft": CSSFT, "se-sft": SESFT, "se-cssft": SECSSFT}


def build_modulation(name: ModulationName, channels: int, se_reduction: int = SE_REDUCTION) -> SFT:
    """The modulation layer called ``name`` for features of ``channels`` channels."""
    layer = MODULATION_LAYERS[name]
    return layer(channels, se_reduction) if issubclass(layer, SESFT) else layer(channels)
