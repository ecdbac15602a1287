"""Face-identity networks: MobileFaceNet (evaluation) and ArcFace ResNet-18 (GFP-GAN's identity loss).

- :class:`MobileFaceNet` follows the layout of foamliu/MobileFaceNet (Apache-2.0), whose
  trained weights we ship as ``weights/mobilefacenet.safetensors`` (converted from the
  state dict in ``../shared/weights/mobilefacenet/``): 112x112 RGB faces aligned to the
  ArcFace 5-point template, normalised to [-1, 1], give a 128-D embedding.
  Chen et al., "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face
  Verification on Mobile Devices", 2018.
- :class:`ResNetArcFace` is the ArcFace ResNet-18 ("IRBlock", [2, 2, 2, 2], no SE)
  that GFP-GAN's identity loss uses (``gfpgan/archs/arcface_arch.py``, Apache-2.0, after
  ronghuaiyang/arcface-pytorch): one grey 128x128 face in [-1, 1] gives a 512-D
  embedding. Its weights (``arcface_resnet18.pth``) are supplied by the user.

Our own code, written from the published architectures; the parameter names match the
upstream checkpoints so they load with ``strict=True``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minerrestore.errors import WeightsError
from minerrestore.models.catalogue import resolve_file
from minerrestore.models.files import load_state_dict

MOBILEFACENET_INPUT_SIZE = 112
ARCFACE_INPUT_SIZE = 128
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
"""Left eye, right eye, nose, left and right mouth corner (as seen) in the 112x112 crops that
ArcFace-family recognisers (insightface; MobileFaceNet here) are trained on."""
_GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R 601 luma, as GFP-GAN's identity loss


# ---------------------------------------------------------------------------------------------
# MobileFaceNet blocks


class ConvBNReLU(nn.Sequential):
    """Convolution without bias, batch norm, ReLU6 (keys ``0.weight``, ``1.*``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size; padding keeps the size at stride 1.
        stride: convolution stride.
        groups: convolution groups (``in_channels`` for a depthwise convolution).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class DepthwiseSeparableConv(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, each followed by batch norm and ReLU.

    Args:
        channels: input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.depthwise(x)))
        return F.relu(self.bn2(self.pointwise(x)))


class GlobalDepthwiseConv(nn.Module):
    """Global depthwise convolution (7x7, no padding) and batch norm: the embedding pooling.

    Args:
        channels: input and output channels.
        kernel_size: spatial size of the input feature map.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.depthwise(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expansion, 3x3 depthwise, linear 1x1 projection (+ skip).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise convolution.
        expansion: hidden channels = ``in_channels * expansion``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_skip = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            ConvBNReLU(in_channels, hidden, kernel_size=1),
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_skip else out


# (expansion, output channels, repeats, stride of the first repeat)
_MOBILEFACENET_STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class MobileFaceNet(nn.Module):
    """MobileFaceNet face-embedding network (0.99 M parameters).

    Args:
        embedding_size: length of the output embedding.

    Input: N x 3 x 112 x 112 RGB in [-1, 1], aligned to the ArcFace template.
    Output: N x ``embedding_size`` embedding (not normalised).
    """

    def __init__(self, embedding_size: int = 128) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(3, 64, stride=2)
        self.dw_conv = DepthwiseSeparableConv(64)
        blocks = []
        channels = 64
        for expansion, out_channels, repeats, stride in _MOBILEFACENET_STAGES:
            for index in range(repeats):
                blocks.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.conv2 = ConvBNReLU(channels, 512, kernel_size=1)
        self.gdconv = GlobalDepthwiseConv(512, MOBILEFACENET_INPUT_SIZE // 16)
        self.conv3 = nn.Conv2d(512, embedding_size, 1)
        self.bn = nn.BatchNorm2d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.dw_conv(self.conv1(x)))
        x = self.bn(self.conv3(self.gdconv(self.conv2(x))))
        return x.flatten(1)


# ---------------------------------------------------------------------------------------------
# ArcFace ResNet-18 blocks


class IRBlock(nn.Module):
    """Improved residual block: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN, + shortcut, PReLU.

    The same single-parameter PReLU is applied inside the block and after the sum, as in
    the upstream network.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the second convolution (and of the shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + shortcut)


class ResNetArcFace(nn.Module):
    """ArcFace ResNet with IR blocks, as used by GFP-GAN's identity loss (ResNet-18 by default).

    Args:
        layers: number of IR blocks in each of the four stages.
        embedding_size: length of the output embedding.

    Input: N x 1 x 128 x 128 grey faces in [-1, 1] (see :func:`arcface_input`).
    Output: N x ``embedding_size`` embedding (not normalised).
    """

    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), embedding_size: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        stages = []
        channels = 64
        for index, (width, repeats) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = [IRBlock(channels, width, stride=1 if index == 0 else 2)]
            blocks += [IRBlock(width, width) for _ in range(1, repeats)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        spatial = ARCFACE_INPUT_SIZE // 16
        self.fc5 = nn.Linear(512 * spatial * spatial, embedding_size)
        self.bn5 = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


def arcface_input(images: torch.Tensor) -> torch.Tensor:
    """RGB faces -> the grey 128x128 input of :class:`ResNetArcFace` (GFP-GAN's identity-loss recipe).

    Args:
        images: N x 3 x H x W RGB in [-1, 1] (aligned FFHQ-style face crops).

    Returns:
        N x 1 x 128 x 128 grey in [-1, 1] (luma 0.2989/0.5870/0.1140, bilinear resize).
    """
    weights = images.new_tensor(_GREY_WEIGHTS).view(1, 3, 1, 1)
    grey = (images * weights).sum(dim=1, keepdim=True)
    size = (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE)
    return F.interpolate(grey, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# checkpoints


def arcface_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ``arcface_resnet18.pth`` -> our keys: unwrap ``params``/``params_ema``, drop ``module.``."""
    for key in ("params_ema", "params"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def _load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> nn.Module:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{source}: does not match {type(model).__name__} ({str(exc).splitlines()[0]})",
            hint="use the official file named in `minerrestore weights`",
        ) from exc
    return model.eval().requires_grad_(False)


def load_mobilefacenet(path: str | Path | None = None) -> MobileFaceNet:
    """MobileFaceNet with its pretrained weights, in eval mode and frozen.

    Args:
        path: weight file; default: ``mobilefacenet.safetensors`` from the weight folders.

    Raises:
        WeightsError: the file is missing or does not match the network.
    """
    source = path or resolve_file("mobilefacenet")
    return _load_into(MobileFaceNet(), load_state_dict(source), str(source))


def load_arcface_resnet18(path: str | Path | None = None) -> ResNetArcFace:
    """GFP-GAN's ArcFace ResNet-18 with the user's ``arcface_resnet18.pth``, in eval mode and frozen.

    Args:
        path: weight file; default: ``arcface_resnet18.pth`` from the weight folders.

    Raises:
        WeightsError: the file is missing (the message gives its official URL), unsafe,
            or does not match the network.
    """
    source = path or resolve_file("arcface-resnet18")
    state = arcface_checkpoint_filter_fn(load_state_dict(source))
    return _load_into(ResNetArcFace(), state, str(source))
