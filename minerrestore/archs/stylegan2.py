"""StyleGAN2 generator in plain PyTorch (no compiled ops): the facial prior of GFP-GAN.

Paper: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020);
used as the generative facial prior by Wang et al., "Towards Real-World Blind Face
Restoration with Generative Facial Prior" (GFP-GAN, CVPR 2021) and by the miner-face paper
(METHOD.md section 2, channel multiplier 1, style dimension 512, output 512).

Layout and parameter names follow the "clean" generator of GFP-GAN
(``gfpgan/archs/stylegan2_clean_arch.py``, Apache-2.0, TencentARC), so official GFP-GAN
checkpoints load with ``strict=True``: ``style_mlp``, ``constant_input``, ``style_conv1``,
``to_rgb1``, ``style_convs``, ``to_rgbs``, ``noises``. The code is our own. Differences in
how it computes (same function, up to float rounding):

- modulated convolutions never use grouped convolutions: for a batch of one the style is
  folded into the weight, for larger batches it scales the input channels and the
  demodulation scales the output channels, so the whole batch goes through one ordinary
  convolution;
- the per-layer noise is the stored ``noises`` buffer unless ``randomize_noise=True``
  (official GFP-GAN inference draws fresh noise on every call, so its output is not
  reproducible; ours is).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.precision import float32_region

SQRT2 = math.sqrt(2.0)
LEAKY_SLOPE = 0.2
DEMOD_EPS = 1e-8

LevelModulation = Callable[[int, Tensor], Tensor]
"""``modulate(level, feature) -> feature``: called once per resolution level (0 = 8 px)."""


def stylegan2_channels(channel_multiplier: int = 1, narrow: float = 1.0) -> dict[int, int]:
    """Feature channels per resolution of StyleGAN2 (and of GFP-GAN's U-Net with ``narrow / 2``).

    Returns:
        ``{4: ..., 8: ..., ..., 1024: ...}``: 512 channels up to 32 px, then halving per level,
        scaled by ``channel_multiplier`` above 32 px and by ``narrow`` everywhere.
    """
    channels = {}
    for log_res in range(2, 11):
        res = 2**log_res
        base = 512 if res <= 32 else (2 ** (14 - log_res)) * channel_multiplier
        channels[res] = int(base * narrow)
    return channels


def upsample2x(x: Tensor) -> Tensor:
    """Bilinear x2 upsampling (``align_corners=False``), as GFP-GAN's clean networks do."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class NormStyleCode(nn.Module):
    """Normalise each style code to unit root-mean-square (first layer of the mapping MLP)."""

    def forward(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, D)."""
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + DEMOD_EPS)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution, without bias.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd; zero padding keeps the size).
        num_style_feat: dimension of the style code.
        demodulate: normalise each output channel's effective weight to unit norm.
        upsample: bilinear x2 upsampling of the input before the convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2
        self.modulation = nn.Linear(num_style_feat, in_channels)
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        nn.init.ones_(self.modulation.bias)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )

    def forward(self, x: Tensor, style: Tensor, gain: float = 1.0, bias: Tensor | None = None) -> Tensor:
        """Convolve ``x`` with the weight modulated by ``style``.

        Args:
            x: (B, in_channels, H, W).
            style: (B, num_style_feat).
            gain: constant output factor (folded into the weight or the demodulation).
            bias: (out_channels,) added to the output (fused into the convolution when B = 1).

        Returns:
            (B, out_channels, H', W'), H' = 2H when upsampling, else H; the dtype of ``x``
            (or autocast's).
        """
        batch = x.shape[0]
        weight = self.weight[0]  # (out, in, k, k)
        with float32_region(x.device):  # styles and demodulation stay float32 under autocast
            scales = self.modulation(style.float())  # (B, in)
            if batch == 1:  # fold the style into the weight: one plain convolution
                weight = weight * scales.view(1, -1, 1, 1)
                if self.demodulate:
                    weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + DEMOD_EPS)
                weight = weight * gain if gain != 1.0 else weight
            elif self.demodulate:  # |w * s|^2 summed over (in, k, k) = s^2 @ (sum_k w^2)^T
                energy = scales.square() @ weight.square().sum(dim=(2, 3)).t()  # (B, out)
                coefficient = torch.rsqrt(energy + DEMOD_EPS) * gain
            else:
                coefficient = torch.full((batch, self.out_channels), gain, device=x.device)
        if batch == 1:
            return F.conv2d(upsample2x(x) if self.upsample else x, weight, bias, padding=self.padding)
        # batch > 1: scale input channels, one batched convolution, scale output channels
        x = x * scales.view(batch, -1, 1, 1).to(x.dtype)
        out = F.conv2d(upsample2x(x) if self.upsample else x, weight, padding=self.padding)
        coefficient = coefficient.view(batch, -1, 1, 1).to(out.dtype)
        if bias is None:
            return out * coefficient
        return torch.addcmul(bias.view(1, -1, 1, 1).to(out.dtype), out, coefficient)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"demodulate={self.demodulate}, upsample={self.upsample}"
        )


class StyleConv(nn.Module):
    """Modulated 3x3 convolution, noise injection, bias and leaky ReLU (one StyleGAN2 layer).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        num_style_feat: dimension of the style code.
        upsample: bilinear x2 upsampling before the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, num_style_feat: int, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, 3, num_style_feat, demodulate=True, upsample=upsample
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor, style: Tensor, noise: Tensor) -> Tensor:
        """(B, in, H, W), (B, D), noise (1 or B, 1, H', W') -> (B, out, H', W')."""
        # the sqrt(2) gain is the clean generator's stand-in for StyleGAN2's scaled activation
        out = self.modulated_conv(x, style, gain=SQRT2, bias=self.bias.view(-1))
        # in place on the fresh convolution output: no autograd node saved it
        out = out.add_((self.weight * noise).to(out.dtype))
        return F.leaky_relu_(out, LEAKY_SLOPE)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB, plus the upsampled RGB of the previous level.

    Args:
        in_channels: input channels.
        num_style_feat: dimension of the style code.
        upsample: upsample the skip RGB x2 before adding it.
    """

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        """(B, C, H, W), (B, D), skip (B, 3, H/2, W/2) or None -> float32 RGB (B, 3, H, W)."""
        # float32 even under autocast: the image accumulates over levels, bfloat16 would band it
        out = self.modulated_conv(x, style, bias=self.bias.view(-1)).float()
        if skip is not None:
            out = out + (upsample2x(skip) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network.

    Args:
        num_channel: channels.
        size: spatial size.
    """

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> Tensor:
        """-> (batch, C, size, size), channels-last (the layout every layer below keeps)."""
        return self.weight.expand(batch, -1, -1, -1).contiguous(memory_format=torch.channels_last)


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator (mapping MLP + synthesis network), clean PyTorch version.

    Build the paper's prior with ``StyleGAN2Generator(512, channel_multiplier=1)`` and the
    official GFP-GAN v1.3/v1.4 decoder with ``channel_multiplier=2``; tiny test models with
    ``out_size=32`` and ``narrow`` < 1.

    Args:
        out_size: output resolution, a power of two from 8 to 1024.
        num_style_feat: dimension of style codes (z, w).
        num_mlp: linear layers of the mapping MLP.
        channel_multiplier: widens the layers above 32 px.
        narrow: scales every layer's channels.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 1,
        narrow: float = 1.0,
    ) -> None:
        super().__init__()
        if out_size < 8 or out_size > 1024 or out_size & (out_size - 1):
            raise ValueError(f"out_size must be a power of two in [8, 1024], got {out_size}")
        self.out_size = out_size
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log2(out_size))
        self.num_levels = self.log_size - 2  # upsampling levels: 8 px ... out_size
        self.num_layers = 2 * self.num_levels + 1  # style convolutions (one noise each)
        self.num_latent = 2 * self.log_size - 2  # style codes consumed (W+)
        self.channels = stylegan2_channels(channel_multiplier, narrow)

        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            linear = nn.Linear(num_style_feat, num_style_feat)
            nn.init.kaiming_normal_(linear.weight, a=LEAKY_SLOPE, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)
            mlp += [linear, nn.LeakyReLU(LEAKY_SLOPE)]
        self.style_mlp = nn.Sequential(*mlp)

        channels = self.channels
        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = StyleConv(channels[4], channels[4], num_style_feat)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = channels[4]
        for log_res in range(3, self.log_size + 1):
            out_channels = channels[2**log_res]
            self.style_convs.append(StyleConv(in_channels, out_channels, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_channels, out_channels, num_style_feat))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat, upsample=True))
            in_channels = out_channels
        self.noises = nn.Module()
        for layer in range(self.num_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise{layer}", torch.randn(1, 1, res, res))

    @torch.no_grad()
    def zero_rgb_layers(self) -> None:
        """Zero every RGB layer's weight and bias, so the generator's image starts at zero."""
        for to_rgb in (self.to_rgb1, *self.to_rgbs):
            to_rgb.modulated_conv.weight.zero_()
            to_rgb.bias.zero_()

    def noise_maps(self, batch: int, randomize: bool) -> list[Tensor]:
        """One noise map per style convolution: the stored buffers, or fresh (B, 1, H, W) draws."""
        stored = [getattr(self.noises, f"noise{layer}") for layer in range(self.num_layers)]
        if not randomize:
            return stored
        return [torch.randn(batch, 1, *n.shape[2:], device=n.device, dtype=n.dtype) for n in stored]

    @torch.no_grad()
    def mean_latent(self, num_samples: int = 4096) -> Tensor:
        """Average w of ``num_samples`` random codes: (1, num_style_feat), for truncation."""
        z = torch.randn(num_samples, self.num_style_feat, device=self.constant_input.weight.device)
        return self.style_mlp(z).mean(0, keepdim=True)

    def forward(
        self,
        styles: Tensor,
        input_is_latent: bool = False,
        randomize_noise: bool = False,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        modulate: LevelModulation | None = None,
    ) -> Tensor:
        """Synthesise images.

        Args:
            styles: (B, D) one code for every layer, or (B, num_latent, D) one per layer (W+).
            input_is_latent: ``styles`` are already w (skip the mapping MLP).
            randomize_noise: fresh noise per call (training); default: the stored buffers.
            truncation: truncation psi in [0, 1]; 1 disables it.
            truncation_latent: (1, D) mean w, needed when ``truncation`` < 1.
            modulate: ``modulate(level, feature)`` applied after the first (upsampling)
                convolution of each level, level 0 being 8 px (GFP-GAN's SFT hook).

        Returns:
            RGB images (B, 3, out_size, out_size), roughly in [-1, 1].
        """
        if not input_is_latent:
            styles = (
                self.style_mlp(styles) if styles.ndim == 2 else self.style_mlp(styles.flatten(0, 1)).view_as(styles)
            )
        if truncation < 1.0:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (see mean_latent)")
            styles = truncation_latent + truncation * (styles - truncation_latent)
        latent = styles.unsqueeze(1).expand(-1, self.num_latent, -1) if styles.ndim == 2 else styles
        if latent.shape[1] != self.num_latent:
            raise ValueError(f"expected {self.num_latent} style codes per image, got {latent.shape[1]}")
        batch = latent.shape[0]
        noise = self.noise_maps(batch, randomize_noise)

        out = self.style_conv1(self.constant_input(batch), latent[:, 0], noise[0])
        image = self.to_rgb1(out, latent[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            index = 2 * level + 1
            out = self.style_convs[index - 1](out, latent[:, index], noise[index])
            if modulate is not None:
                out = modulate(level, out)
            out = self.style_convs[index](out, latent[:, index + 1], noise[index + 1])
            image = to_rgb(out, latent[:, index + 2], image)
        return image
