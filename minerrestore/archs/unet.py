"""Degradation-removal U-Net of GFP-GAN (scheme A and B of the miner-face paper).

Layout of the official ``GFPGANv1Clean`` (``gfpgan/archs/gfpganv1_clean_arch.py``,
Apache-2.0, TencentARC; METHOD.md "Compatibility with official GFP-GAN"), with the same
parameter names: a 1x1 ``conv_body_first``, one down ResBlock per level to 4 px
(``conv_body_down``), ``final_conv``; a decoder that adds the encoder skip and applies an up
ResBlock per level (``conv_body_up``), one ``toRGB`` per level, and ``final_linear`` mapping the
4x4 bottleneck to one style code per StyleGAN2 layer (``different_w``). The code is our own.

:class:`DegradationRemoval` holds what U-Net and UNet++ (:mod:`minerrestore.archs.unetpp`)
share: the encoder, ``toRGB`` and ``final_linear``; subclasses only define the decoder.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.stylegan2 import LEAKY_SLOPE, stylegan2_channels

UNET_NARROW = 0.5  # GFP-GAN's U-Net has half the channels of its StyleGAN2 decoder


class RemovalOutput(NamedTuple):
    """What a degradation-removal network gives the restorer.

    Attributes:
        latent: (B, num_latent, num_style_feat) style codes, one per StyleGAN2 layer (W+).
        features: spatial features, one per decoder level, 8 px first, then 16 px ... out_size.
        rgbs: intermediate RGB images, one per level in the same order (empty when not asked).
    """

    latent: Tensor
    features: list[Tensor]
    rgbs: list[Tensor]


def resample(x: Tensor, scale_factor: float) -> Tensor:
    """Bilinear resampling by 2 or 0.5 (``align_corners=False``)."""
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """GFP-GAN residual block: conv3x3, leaky ReLU, bilinear resample, conv3x3, leaky ReLU + 1x1 skip.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        scale_factor: 0.5 (down) or 2 (up).
    """

    def __init__(self, in_channels: int, out_channels: int, scale_factor: float) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) -> (B, out, H * scale_factor, W * scale_factor)."""
        out = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        out = F.leaky_relu(self.conv2(resample(out, self.scale_factor)), LEAKY_SLOPE)
        # a 1x1 convolution commutes with bilinear resampling: run it at the lower resolution
        if self.scale_factor > 1:
            skip = resample(self.skip(x), self.scale_factor)
        else:
            skip = self.skip(resample(x, self.scale_factor))
        return out + skip


class DegradationRemoval(nn.Module):
    """Encoder, per-level RGB heads and latent mapping shared by U-Net and UNet++.

    Args:
        out_size: input/output resolution, a power of two from 8 to 1024.
        num_style_feat: dimension of the style codes.
        channel_multiplier: StyleGAN2 channel multiplier (the U-Net uses half its channels).
        narrow: scales every channel count.
    """

    def __init__(self, out_size: int, num_style_feat: int, channel_multiplier: int, narrow: float) -> None:
        super().__init__()
        self.out_size = out_size
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log2(out_size))
        self.num_levels = self.log_size - 2
        self.num_latent = 2 * self.log_size - 2
        self.channels = stylegan2_channels(channel_multiplier, narrow * UNET_NARROW)
        channels = self.channels

        self.conv_body_first = nn.Conv2d(3, channels[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(channels[2**log_res], channels[2 ** (log_res - 1)], 0.5) for log_res in range(self.log_size, 2, -1)
        )
        self.final_conv = nn.Conv2d(channels[4], channels[4], 3, 1, 1)
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[res], 3, 1) for res in self.level_resolutions)
        self.final_linear = nn.Linear(channels[4] * 4 * 4, self.num_latent * num_style_feat)

    @property
    def level_resolutions(self) -> list[int]:
        """Resolutions of the decoder levels: 8, 16, ..., out_size."""
        return [2**log_res for log_res in range(3, self.log_size + 1)]

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Encoder.

        Returns:
            The 4x4 bottleneck after ``final_conv`` and the encoder features from out_size
            (after ``conv_body_first``) down to 4 px.
        """
        feat = F.leaky_relu(self.conv_body_first(x), LEAKY_SLOPE)
        encoder = [feat]
        for block in self.conv_body_down:
            feat = block(feat)
            encoder.append(feat)
        bottleneck = F.leaky_relu(self.final_conv(feat), LEAKY_SLOPE)
        return bottleneck, encoder

    def decode(self, bottleneck: Tensor, encoder: list[Tensor]) -> list[Tensor]:
        """Spatial features per level, 8 px first (defined by subclasses)."""
        raise NotImplementedError

    def forward(self, x: Tensor, return_rgb: bool = True) -> RemovalOutput:
        """Remove degradations and map to the prior's latent space.

        Args:
            x: degraded faces (B, 3, out_size, out_size) in [-1, 1].
            return_rgb: also compute the intermediate RGB images (for the pyramid loss).

        Returns:
            :class:`RemovalOutput` (latent codes, per-level features, per-level RGB images).
        """
        if x.shape[-2:] != (self.out_size, self.out_size):
            raise ValueError(f"expected {self.out_size}x{self.out_size} input, got {tuple(x.shape[-2:])}")
        bottleneck, encoder = self.encode(x)
        latent = self.final_linear(bottleneck.flatten(1)).view(x.shape[0], self.num_latent, self.num_style_feat)
        features = self.decode(bottleneck, encoder)
        rgbs = [to_rgb(feat) for to_rgb, feat in zip(self.toRGB, features, strict=True)] if return_rgb else []
        return RemovalOutput(latent, features, rgbs)


class UNet(DegradationRemoval):
    """GFP-GAN's U-Net: each decoder level adds the encoder skip, then an up ResBlock.

    Args:
        out_size: input/output resolution, a power of two from 8 to 1024.
        num_style_feat: dimension of the style codes.
        channel_multiplier: StyleGAN2 channel multiplier (the U-Net uses half its channels).
        narrow: scales every channel count.
    """

    def __init__(
        self, out_size: int, num_style_feat: int = 512, channel_multiplier: int = 1, narrow: float = 1.0
    ) -> None:
        super().__init__(out_size, num_style_feat, channel_multiplier, narrow)
        channels = self.channels
        self.conv_body_up = nn.ModuleList(
            ResBlock(channels[res // 2], channels[res], 2.0) for res in self.level_resolutions
        )

    def decode(self, bottleneck: Tensor, encoder: list[Tensor]) -> list[Tensor]:
        """Features at 8 px ... out_size; the encoder feature at out_size is not used as a skip."""
        feat = bottleneck
        features = []
        for block, skip in zip(self.conv_body_up, reversed(encoder[1:]), strict=True):
            feat = block(feat + skip)
            features.append(feat)
        return features
