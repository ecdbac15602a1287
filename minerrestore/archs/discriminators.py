"""Discriminators for training: StyleGAN2's (whole face) and GFP-GAN's facial-component ones.

- :class:`StyleGAN2Discriminator`: Karras et al. (CVPR 2020), residual, equalised learning
  rate, minibatch standard deviation; the adversarial loss of GFP-GAN and of the miner-face
  paper (METHOD.md section 3).
- :class:`FacialComponentDiscriminator`: GFP-GAN's VGG-style local discriminator for the left
  eye, right eye and mouth; it also returns two feature maps for the Gram-matrix style loss.

Parameter names and computation follow basicsr's ``StyleGAN2Discriminator``
(``basicsr/archs/stylegan2_arch.py``) and gfpgan's ``FacialComponentDiscriminator``
(``gfpgan/archs/gfpganv1_arch.py``), both Apache-2.0, so the official GFP-GAN discriminator
checkpoints load with ``strict=True``. Their compiled ``upfirdn2d`` and fused leaky ReLU are
replaced by plain PyTorch (a depthwise blur convolution; leaky ReLU times sqrt(2)). The code is
our own. Inputs are NCHW RGB in [-1, 1].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.stylegan2 import LEAKY_SLOPE, SQRT2, stylegan2_channels

BLUR_KERNEL = (1, 3, 3, 1)
COMPONENTS = ("left_eye", "right_eye", "mouth")


class Blur(nn.Module):
    """FIR low-pass filter (StyleGAN2's [1, 3, 3, 1] outer product), depthwise, with padding.

    Args:
        pad: (before, after) zero padding on each spatial axis.
        kernel: 1-D taps; the 2-D kernel is their outer product, normalised to sum 1.
    """

    def __init__(self, pad: tuple[int, int], kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        taps = torch.tensor(kernel, dtype=torch.float32)
        kernel_2d = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel_2d / kernel_2d.sum())[None, None], persistent=False)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H + sum(pad) - k + 1, ...)."""
        channels = x.shape[1]
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        weight = self.kernel.to(x.dtype).expand(channels, 1, -1, -1)
        return F.conv2d(x, weight, groups=channels)


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate: unit-variance weights scaled by 1/sqrt(fan_in) at run time.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride.
        padding: zero padding.
        bias: learn an additive bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) -> (B, out, H', W')."""
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate, optionally followed by the scaled leaky ReLU.

    Args:
        in_features: input size.
        out_features: output size.
        activate: apply ``sqrt(2) * leaky_relu(x + bias)``.
        lr_mul: learning-rate multiplier.
    """

    def __init__(self, in_features: int, out_features: int, activate: bool = False, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        """(B, in) -> (B, out)."""
        bias = self.bias * self.lr_mul
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + bias, LEAKY_SLOPE) * SQRT2
        return F.linear(x, self.weight * self.scale, bias)


class BiasLeakyReLU(nn.Module):
    """``sqrt(2) * leaky_relu(x + bias)`` with a learned per-channel bias (StyleGAN2's fused activation).

    Args:
        channels: channels of the input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), LEAKY_SLOPE) * SQRT2


class ScaledLeakyReLU(nn.Module):
    """``sqrt(2) * leaky_relu(x)``."""

    def forward(self, x: Tensor) -> Tensor:
        """Element-wise."""
        return F.leaky_relu(x, LEAKY_SLOPE) * SQRT2


class ConvLayer(nn.Sequential):
    """[blur,] equalised convolution [, activation]: StyleGAN2's discriminator layer.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        downsample: blur, then stride 2.
        bias: learn a bias (in the activation when there is one).
        activate: scaled leaky ReLU after the convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            pad = len(BLUR_KERNEL) - 2 + kernel_size - 1
            layers.append(Blur(((pad + 1) // 2, pad // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(BiasLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Downsampling residual block of the StyleGAN2 discriminator.

    Args:
        in_channels: input channels.
        out_channels: output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) -> (B, out, H/2, W/2)."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 discriminator: one realness logit per image.

    Args:
        out_size: input resolution, a power of two from 8 to 1024.
        channel_multiplier: widens the layers above 32 px (GFP-GAN trains with 1 at 512 px).
        stddev_group: group size of the minibatch standard-deviation feature.
        narrow: scales every channel count.
    """

    def __init__(self, out_size: int, channel_multiplier: int = 1, stddev_group: int = 4, narrow: float = 1.0) -> None:
        super().__init__()
        if out_size < 8 or out_size > 1024 or out_size & (out_size - 1):
            raise ValueError(f"out_size must be a power of two in [8, 1024], got {out_size}")
        channels = stylegan2_channels(channel_multiplier, narrow)
        log_size = int(math.log2(out_size))
        body: list[nn.Module] = [ConvLayer(3, channels[out_size], 1)]
        for log_res in range(log_size, 2, -1):
            body.append(ResBlock(channels[2**log_res], channels[2 ** (log_res - 1)]))
        self.conv_body = nn.Sequential(*body)
        self.final_conv = ConvLayer(channels[4] + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, channels[4], activate=True),
            EqualLinear(channels[4], 1),
        )
        self.stddev_group = stddev_group

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, out_size, out_size) in [-1, 1] -> logits (B, 1)."""
        out = self.conv_body(x)
        batch, channels, height, width = out.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            group = math.gcd(batch, self.stddev_group)
        # standard deviation over each group, averaged over features and pixels: one extra channel
        grouped = out.view(group, -1, 1, channels, height, width)
        stddev = torch.sqrt(grouped.var(0, unbiased=False) + 1e-8).mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        out = torch.cat([out, stddev.repeat(group, 1, height, width)], dim=1)
        out = self.final_conv(out)
        return self.final_linear(out.flatten(1))


class ComponentDiscriminatorOutput(NamedTuple):
    """Output of :class:`FacialComponentDiscriminator`.

    Attributes:
        logits: patch realness map (B, 1, H/4, W/4).
        features: two feature maps for the Gram style loss, (B, 128, H/2, W/2) and
            (B, 256, H/4, W/4) at ``narrow=1`` (empty when not asked).
    """

    logits: Tensor
    features: list[Tensor]


class FacialComponentDiscriminator(nn.Module):
    """GFP-GAN's local discriminator for one facial component (VGG-style, fully convolutional).

    Args:
        narrow: scales the channel counts (64, 128, 256); 1 is GFP-GAN's network.
    """

    def __init__(self, narrow: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256 = (max(1, int(channels * narrow)) for channels in (64, 128, 256))
        self.conv1 = ConvLayer(3, c64, 3)
        self.conv2 = ConvLayer(c64, c128, 3, downsample=True)
        self.conv3 = ConvLayer(c128, c128, 3)
        self.conv4 = ConvLayer(c128, c256, 3, downsample=True)
        self.conv5 = ConvLayer(c256, c256, 3)
        self.final_conv = ConvLayer(c256, 1, 3, activate=False)

    def forward(self, x: Tensor, return_feats: bool = True) -> ComponentDiscriminatorOutput:
        """Score component crops.

        Args:
            x: crops (B, 3, H, W) in [-1, 1] (GFP-GAN uses 80 px eyes and 120 px mouths at 512 px).
            return_feats: also return the two feature maps for the Gram style loss.

        Returns:
            :class:`ComponentDiscriminatorOutput` (``features`` empty unless asked).
        """
        middle = self.conv3(self.conv2(self.conv1(x)))
        deep = self.conv5(self.conv4(middle))
        return ComponentDiscriminatorOutput(self.final_conv(deep), [middle, deep] if return_feats else [])


def build_component_discriminators() -> nn.ModuleDict:
    """One :class:`FacialComponentDiscriminator` each for ``left_eye``, ``right_eye`` and ``mouth``."""
    return nn.ModuleDict({name: FacialComponentDiscriminator() for name in COMPONENTS})
