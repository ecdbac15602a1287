"""UNet++ degradation removal (schemes C-G of the miner-face paper).

Zhou et al., "UNet++: A Nested U-Net Architecture for Medical Image Segmentation" (DLMIA 2018),
as the miner-face paper uses it (METHOD.md section 2 step 1): nested dense skips

    x(j, 0) = encoder feature at level j (level 0 = out_size, level L = 4 px)
    x(j, k) = H([x(j, 0), ..., x(j, k-1), Up(x(j + 1, k - 1))])      for k >= 1

The last node of each level, x(j, L - j), is that level's spatial feature for the modulation;
the 4x4 bottleneck gives the latent codes. The paper does not give H; ours is a 1x1 fusion
convolution of the concatenation followed by a residual 3x3 convolution (leaky ReLU 0.2), and Up
is bilinear x2, GFP-GAN's resampling. The encoder, ``toRGB`` and ``final_linear`` are GFP-GAN's
(same names and shapes as scheme A, :mod:`minerrestore.archs.unet`) so an official checkpoint
initialises them. The code is our own (MIT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.stylegan2 import LEAKY_SLOPE, upsample2x
from minerrestore.archs.unet import DegradationRemoval


class NestedNode(nn.Module):
    """H of UNet++: fuse the concatenated inputs (1x1), then a residual 3x3 convolution.

    ``fuse`` acts on ``[same-level inputs..., Up(input from below)]``. A 1x1 convolution
    commutes with bilinear upsampling, so the part of ``fuse`` that reads the upsampled input
    runs at the lower resolution and its (narrower) result is upsampled: same function, less work.

    Args:
        in_channels: channels of the concatenated inputs.
        out_channels: channels of the node.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(in_channels, out_channels, 1)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, 1, 1)

    def forward(self, same_level: list[Tensor], below: Tensor) -> Tensor:
        """Nodes (B, C_i, H, W) of this level and one (B, C_b, H/2, W/2) from below -> (B, out, H, W)."""
        split = self.fuse.in_channels - below.shape[1]
        weight = self.fuse.weight
        fused = F.conv2d(torch.cat(same_level, dim=1), weight[:, :split], self.fuse.bias)
        fused = F.leaky_relu_(fused + upsample2x(F.conv2d(below, weight[:, split:])), LEAKY_SLOPE)
        return fused + F.leaky_relu(self.conv(fused), LEAKY_SLOPE)


class UNetPlusPlus(DegradationRemoval):
    """UNet++ with nested dense skip nodes ``nested_nodes["x{j}_{k}"]``.

    Args:
        out_size: input/output resolution, a power of two from 8 to 1024.
        num_style_feat: dimension of the style codes.
        channel_multiplier: StyleGAN2 channel multiplier (the network uses half its channels).
        narrow: scales every channel count.
    """

    def __init__(
        self, out_size: int, num_style_feat: int = 512, channel_multiplier: int = 1, narrow: float = 1.0
    ) -> None:
        super().__init__(out_size, num_style_feat, channel_multiplier, narrow)
        deepest = self.num_levels
        self.nested_nodes = nn.ModuleDict()
        for column in range(1, deepest + 1):
            for level in range(deepest - column + 1):
                own = self.channels[self.level_resolution(level)]
                below = self.channels[self.level_resolution(level + 1)]
                self.nested_nodes[f"x{level}_{column}"] = NestedNode(column * own + below, own)

    def level_resolution(self, level: int) -> int:
        """Resolution of UNet++ level ``level`` (0 = out_size)."""
        return self.out_size >> level

    def decode(self, bottleneck: Tensor, encoder: list[Tensor]) -> list[Tensor]:
        """Features at 8 px ... out_size: the last nested node of each level."""
        deepest = self.num_levels
        # nodes[level] = [x(level, 0), x(level, 1), ...]; the bottleneck stands for x(L, 0)
        nodes = [[feat] for feat in encoder[:deepest]] + [[bottleneck]]
        for column in range(1, deepest + 1):
            for level in range(deepest - column + 1):
                node = self.nested_nodes[f"x{level}_{column}"]
                nodes[level].append(node(nodes[level], nodes[level + 1][column - 1]))
        return [nodes[level][-1] for level in range(deepest - 1, -1, -1)]
