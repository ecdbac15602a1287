"""Training losses of the improved GFP-GAN (paper Eq. 9-13, weights in Table 2; METHOD.md section 3).

- reconstruction: L1 on pixels, and :class:`PerceptualLoss`: L1 between backbone features with
  GFP-GAN's layer weights plus a Gram-matrix style term. The backbone is VGG-19 (the paper's,
  torchvision's ImageNet file, supplied by the user) or, offline, the VGG-16 backbone of the
  shipped LPIPS weights.
- adversarial: the non-saturating softplus loss of StyleGAN2 (:func:`generator_gan_loss`,
  :func:`discriminator_gan_loss`) with lazy R1 regularisation (:func:`r1_penalty`). GFP-GAN's
  "vanilla" component-discriminator loss (BCE with logits) is the same function.
- facial components: eye and mouth boxes derived from the 5 landmarks
  (:func:`component_boxes`), cropped with ``roi_align`` (:func:`crop_components`), and a Gram
  style loss on the component discriminators' features (:func:`component_style_loss`).
- identity: :class:`IdentityLoss`, L1 (GFP-GAN) or 1 - cosine between face embeddings (ArcFace
  ResNet-18 as GFP-GAN, or the shipped MobileFaceNet on the face warped to its ArcFace-template
  crop, as the identity metric does).
- pyramid: :func:`pyramid_l1` on the removal network's intermediate RGB images.

Follows the official GFP-GAN training (``gfpgan/models/gfpgan_model.py``,
``basicsr/losses/basic_loss.py`` and ``gan_loss.py``, Apache-2.0); written for minerrestore
(MIT), no upstream code copied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minerrestore.archs.discriminators import COMPONENTS  # facial components, in box order
from minerrestore.errors import WeightsError
from minerrestore.models.catalogue import is_present, resolve_file
from minerrestore.models.files import load_state_dict
from minerrestore.train.config import IdentityDistance

EYE_HALF_SIZE = 0.24
"""Half side of an eye box as a fraction of the distance between the eyes (an eye is about
half as wide as the inter-ocular distance); enlarged further by ``eye_enlarge``."""

MOUTH_HALF_SIZE = 0.5
"""Half side of the mouth box as a fraction of the distance between the mouth corners."""

EYE_PATCH_512 = 80
MOUTH_PATCH_512 = 120
"""GFP-GAN's ``roi_align`` output sizes at 512 px; scaled with the face size."""

VGG19_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
"""GFP-GAN's perceptual and style layer weights (features before the ReLU)."""

VGG16_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_3": 1.0, "conv4_3": 1.0, "conv5_3": 1.0}
"""The same weights on the last convolution of each VGG-16 stage (the offline backbone)."""

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision VGG-19 ``features`` layout: channels per conv, "M" for max-pooling
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)


# ---------------------------------------------------------------------------------------------
# pixel, pyramid and Gram losses


def pyramid_l1(rgbs: Sequence[Tensor], target: Tensor) -> Tensor:
    """L1 between each intermediate RGB image and the target resized to its size (GFP-GAN's pyramid loss).

    Args:
        rgbs: intermediate images (B, 3, h, w), any sizes, RGB in [-1, 1].
        target: ground truth (B, 3, H, W) in [-1, 1].

    Returns:
        Sum over the levels of the mean absolute error (a scalar).
    """
    total = target.new_zeros(())
    for rgb in rgbs:
        size = rgb.shape[-2:]
        scaled = target if size == target.shape[-2:] else F.interpolate(
            target, size=size, mode="bilinear", align_corners=False
        )
        total = total + F.l1_loss(rgb, scaled)
    return total


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of feature maps, normalised by their size.

    Args:
        features: (B, C, H, W).

    Returns:
        (B, C, C) float32 with entries sum_hw F_c F_c' / (C H W).
    """
    batch, channels, height, width = features.shape
    # float32 even under autocast: a float16 sum over H W products overflows
    flat = features.float().reshape(batch, channels, height * width) / math.sqrt(channels * height * width)
    with torch.autocast(device_type=features.device.type, enabled=False):
        return flat @ flat.transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# adversarial losses


def grey(image: Tensor) -> Tensor:
    """The channel mean of an ``(N, C, H, W)`` batch, repeated over its ``C`` channels."""
    return image.mean(1, keepdim=True).expand_as(image)


def generator_gan_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``softplus(-D(G(x)))``, averaged (scalar)."""
    return F.softplus(-fake_logits).mean()


def discriminator_gan_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss ``softplus(-D(y)) + softplus(D(G(x)))``, averaged (scalar)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """R1 regularisation: mean over the batch of the squared gradient norm of D at real images.

    Args:
        real_logits: D's outputs for ``real_images`` (any shape, summed).
        real_images: the inputs, with ``requires_grad=True``.

    Returns:
        A scalar, differentiable (``create_graph=True``).
    """
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradient.pow(2).flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# facial components


def component_boxes(landmarks: np.ndarray, eye_enlarge: float = 1.4) -> np.ndarray:
    """Square boxes around the left eye, right eye and mouth from 5 landmarks.

    Args:
        landmarks: (5, 2) (x, y) in OpenCV pixel coordinates (centre of pixel ``(i, j)`` at
            ``x = j, y = i``): left eye, right eye, nose, left and right mouth corner.
        eye_enlarge: factor applied to the eye boxes (GFP-GAN: 1.4).

    Returns:
        (3, 4) float32 boxes ``x0, y0, x1, y1`` in continuous coordinates (pixel ``j`` spans
        ``[j, j + 1]``), ready for ``roi_align(aligned=True)``, in :data:`COMPONENTS` order.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2) + 0.5  # to continuous coordinates
    eye_half = EYE_HALF_SIZE * float(np.linalg.norm(points[1] - points[0])) * eye_enlarge
    mouth_half = MOUTH_HALF_SIZE * float(np.linalg.norm(points[4] - points[3]))
    centres = (points[0], points[1], (points[3] + points[4]) / 2)
    halves = (eye_half, eye_half, mouth_half)
    boxes = [(cx - h, cy - h, cx + h, cy + h) for (cx, cy), h in zip(centres, halves, strict=True)]
    return np.asarray(boxes, dtype=np.float32)


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image, in template order (left and right swap).

    Args:
        landmarks: (5, 2) (x, y) OpenCV pixel coordinates.
        width: image width in pixels.

    Returns:
        (5, 2) float32.
    """
    mirrored = np.asarray(landmarks, dtype=np.float32).reshape(5, 2).copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    return mirrored[[1, 0, 2, 4, 3]]


def component_patch_sizes(out_size: int) -> tuple[int, int]:
    """(eye, mouth) patch sides in pixels for faces of ``out_size`` (GFP-GAN's 80 and 120 at 512)."""
    scale = out_size / 512
    return max(8, round(EYE_PATCH_512 * scale)), max(8, round(MOUTH_PATCH_512 * scale))


def crop_components(images: Tensor, boxes: Tensor, eye_size: int, mouth_size: int) -> list[Tensor]:
    """Cut the eye and mouth patches out of a batch with ``roi_align``.

    Args:
        images: (B, 3, H, W).
        boxes: (B, 3, 4) boxes from :func:`component_boxes`, one row per component.
        eye_size: side of the eye patches.
        mouth_size: side of the mouth patches.

    Returns:
        Three tensors in :data:`COMPONENTS` order: (B, 3, eye_size, eye_size) twice and
        (B, 3, mouth_size, mouth_size).
    """
    from torchvision.ops import roi_align

    batch = images.shape[0]
    index = torch.arange(batch, device=images.device, dtype=images.dtype).unsqueeze(1)
    patches = []
    for part, size in enumerate((eye_size, eye_size, mouth_size)):
        rois = torch.cat([index, boxes[:, part].to(images)], dim=1)
        patches.append(roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True))
    return patches


def component_style_loss(fake_features: Sequence[Tensor], real_features: Sequence[Tensor]) -> Tensor:
    """Gram style loss between a component discriminator's features of output and ground truth.

    GFP-GAN weights the features 0.5 (shallower) and 1 (deepest); here every feature but the
    deepest has weight 0.5 (the same for two features). Real features are detached.

    Args:
        fake_features: features of the restored patches, shallow to deep, (B, C, H, W) each.
        real_features: the same for the ground-truth patches.

    Returns:
        A scalar.
    """
    total = fake_features[0].new_zeros(())
    last = len(fake_features) - 1
    for index, (fake, real) in enumerate(zip(fake_features, real_features, strict=True)):
        weight = 1.0 if index == last else 0.5
        total = total + weight * F.l1_loss(gram_matrix(fake), gram_matrix(real.detach()))
    return total


# ---------------------------------------------------------------------------------------------
# perceptual loss


class VGG19Features(nn.Module):
    """The convolutional part of torchvision's VGG-19, returning the pre-ReLU outputs of chosen layers.

    The counterpart of :class:`minerrestore.metrics.lpips.VGG16Features` (same input and output
    conventions, same parameter names ``features.<torchvision index>.*``).

    Args:
        layers: layer names ``convS_K`` (stage S, convolution K) to return, e.g. ``conv3_4``.

    Input: (B, 3, H, W) RGB in [-1, 1] (brought to ImageNet normalisation inside).
    Output: list of (B, C, h, w) maps in the order of ``layers``.
    """

    def __init__(self, layers: Sequence[str] = tuple(VGG19_LAYER_WEIGHTS)) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        names: dict[int, str] = {}
        in_channels, stage, conv = 3, 1, 0
        for item in _VGG19_LAYOUT:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
                stage, conv = stage + 1, 0
                continue
            conv += 1
            names[len(modules)] = f"conv{stage}_{conv}"
            modules.append(nn.Conv2d(in_channels, int(item), 3, padding=1))
            modules.append(nn.ReLU())
            in_channels = int(item)
        unknown = sorted(set(layers) - set(names.values()))
        if unknown:
            raise ValueError(f"unknown VGG-19 layer(s) {', '.join(unknown)}")
        self.layers = tuple(layers)
        self.taps = {index: name for index, name in names.items() if name in layers}
        self.features = nn.Sequential(*modules[: max(self.taps) + 1])
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        found = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.taps:
                found[self.taps[index]] = x
        return [found[name] for name in self.layers]


def load_vgg19_features(path: str | Path | None = None) -> VGG19Features:
    """:class:`VGG19Features` with torchvision's ImageNet weights, frozen, in eval mode.

    Args:
        path: ``vgg19-dcbb9e9d.pth``; default: the catalogue file ``vgg19``.

    Raises:
        WeightsError: missing file (the message names its URL) or unexpected content.
    """
    source = Path(path) if path is not None else resolve_file("vgg19")
    model = VGG19Features()
    wanted = model.features.state_dict()
    state = {key.removeprefix("features."): value for key, value in load_state_dict(source).items()}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise WeightsError(f"{source}: not a torchvision VGG-19 file (missing {', '.join(missing[:3])} ...)")
    try:
        model.features.load_state_dict({key: state[key] for key in wanted}, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{source}: does not match VGG-19 ({str(exc).splitlines()[0]})") from exc
    return model.eval().requires_grad_(False)


def reduce_faces(faces: Tensor, side: int) -> Tensor:
    """``faces`` (B, C, H, W) resized to ``side`` x ``side`` with antialiased bilinear interpolation
    (differentiable; what the perceptual and identity losses see of faces larger than they need)."""
    return F.interpolate(faces, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


class PerceptualLoss(nn.Module):
    """Weighted L1 between backbone features (perceptual) and between their Gram matrices (style).

    Args:
        backbone: a frozen module mapping (B, 3, H, W) RGB in [-1, 1] to a list of feature maps,
            one per entry of ``layer_weights``, in that order.
        layer_weights: weight of each returned map, by layer name.
        name: what the backbone is (shown in logs), e.g. ``vgg19`` or ``vgg16_lpips``.
        size: faces larger than this side are reduced to it (antialiased) before the backbone;
            None: full size.
    """

    def __init__(
        self, backbone: nn.Module, layer_weights: Mapping[str, float], name: str, size: int | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.layer_weights = dict(layer_weights)
        self.name = name
        self.size = size

    def forward(self, output: Tensor, target: Tensor, with_style: bool = True) -> tuple[Tensor, Tensor]:
        """(perceptual, style) losses, unweighted by the config; the style term is 0 when not asked.

        Args:
            output: restored faces (B, 3, H, W) in [-1, 1].
            target: ground truth, same shape (no gradient flows to it).
            with_style: compute the Gram style term.
        """
        if self.size is not None and output.shape[-1] > self.size:
            output, target = reduce_faces(output, self.size), reduce_faces(target, self.size)
        fake = self.backbone(output)
        with torch.no_grad():
            real = self.backbone(target.detach())
        perceptual = output.new_zeros(())
        style = output.new_zeros(())
        for weight, fake_map, real_map in zip(self.layer_weights.values(), fake, real, strict=True):
            perceptual = perceptual + weight * F.l1_loss(fake_map, real_map)
            if with_style:
                style = style + weight * F.l1_loss(gram_matrix(fake_map), gram_matrix(real_map))
        return perceptual, style

    def extra_repr(self) -> str:
        return f"name={self.name}, size={self.size}"


# ---------------------------------------------------------------------------------------------
# identity loss


def affine_grid_for(affine: np.ndarray, in_size: int, out_size: int) -> Tensor:
    """``F.affine_grid`` theta (1, 2, 3) warping an ``in_size`` square image by a pixel affine.

    Args:
        affine: (2, 3) OpenCV affine mapping input pixel coordinates to output pixel coordinates.
        in_size: side of the input image.
        out_size: side of the output image.

    Returns:
        float32 theta for ``F.affine_grid(..., align_corners=False)``.
    """
    forward = np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])

    def to_pixels(size: int) -> np.ndarray:  # normalised [-1, 1] -> OpenCV pixel coordinates
        return np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])

    theta = np.linalg.inv(to_pixels(in_size)) @ np.linalg.inv(forward) @ to_pixels(out_size)
    return torch.from_numpy(theta[:2].astype(np.float32)).unsqueeze(0)


class IdentityLoss(nn.Module):
    """Distance between identity embeddings of restored and ground-truth faces.

    ``l1`` is GFP-GAN's identity loss (mean absolute difference of the raw embeddings);
    ``cosine`` is 1 - cosine similarity, the quantity the identity metric reports.

    Args:
        network: frozen embedding network.
        preprocess: maps (B, 3, S, S) FFHQ-aligned RGB in [-1, 1] to the network's input.
        name: which network (shown in logs).
        distance: ``l1`` or ``cosine``.
    """

    def __init__(
        self,
        network: nn.Module,
        preprocess: Callable[[Tensor], Tensor],
        name: str,
        distance: IdentityDistance = "l1",
    ) -> None:
        super().__init__()
        if distance not in get_args(IdentityDistance):
            raise ValueError(f"identity distance must be {' or '.join(get_args(IdentityDistance))}, not {distance!r}")
        self.network = network
        self.preprocess = preprocess
        self.name = name
        self.distance = distance

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """The batch-mean distance (a scalar); no gradient flows to ``target``."""
        with torch.no_grad():
            real = self.network(self.preprocess(target.detach()))
        fake = self.network(self.preprocess(output))
        if self.distance == "cosine":
            return 1 - F.cosine_similarity(fake, real, dim=1).mean()
        return F.l1_loss(fake, real)

    def extra_repr(self) -> str:
        return f"name={self.name}, distance={self.distance}"


class ArcFaceCrop(nn.Module):
    """Warp FFHQ-aligned faces to MobileFaceNet's 112 x 112 ArcFace-template crop (differentiable).

    The transform is :func:`minerrestore.metrics.identity.ffhq_to_arcface` (the one the identity
    metric uses); faces that the warp would shrink are first reduced with antialiasing.

    Args:
        face_size: side of the FFHQ-aligned input faces.
    """

    def __init__(self, face_size: int) -> None:
        super().__init__()
        from minerrestore.archs.identity import MOBILEFACENET_INPUT_SIZE
        from minerrestore.metrics.identity import ffhq_to_arcface

        affine = ffhq_to_arcface(face_size, face_size)
        scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
        self.reduced_size = round(face_size * scale) if scale < 1 else None  # normalised coordinates are kept
        self.crop = MOBILEFACENET_INPUT_SIZE
        self.register_buffer("theta", affine_grid_for(affine, face_size, self.crop), persistent=False)

    def forward(self, faces: Tensor) -> Tensor:
        if self.reduced_size is not None:
            faces = reduce_faces(faces, self.reduced_size)
        theta = self.theta.to(faces.dtype).expand(faces.shape[0], 2, 3)
        grid = F.affine_grid(theta, [faces.shape[0], 3, self.crop, self.crop], align_corners=False)
        return F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---------------------------------------------------------------------------------------------
# factories (choose the networks the user has)


def create_perceptual_loss(backbone: str = "auto", size: int | None = None) -> PerceptualLoss:
    """The perceptual/style loss on the chosen backbone.

    Args:
        backbone: ``vgg19`` (the paper's; torchvision file, catalogue name ``vgg19``), ``vgg16_lpips``
            (the shipped LPIPS VGG-16 backbone) or ``auto`` (VGG-19 when its file is present).
        size: side the faces are reduced to before the backbone (see :class:`PerceptualLoss`).

    Raises:
        WeightsError: the chosen backbone's file is missing.
    """
    if backbone == "vgg19" or (backbone == "auto" and is_present("vgg19")):
        return PerceptualLoss(load_vgg19_features(), VGG19_LAYER_WEIGHTS, "vgg19", size)
    from minerrestore.metrics.lpips import load_vgg16_features

    return PerceptualLoss(load_vgg16_features(tuple(VGG16_LAYER_WEIGHTS)), VGG16_LAYER_WEIGHTS, "vgg16_lpips", size)


def create_identity_loss(network: str, face_size: int, distance: IdentityDistance = "l1") -> IdentityLoss:
    """The identity loss with ``arcface`` (user file), ``mobilefacenet`` (shipped) or ``auto``.

    Args:
        network: which embedding network.
        face_size: side of the FFHQ-aligned faces the loss sees.
        distance: ``l1`` (GFP-GAN) or ``cosine`` (see :class:`IdentityLoss`).

    Raises:
        WeightsError: the chosen network's file is missing.
    """
    from minerrestore.archs.identity import arcface_input, load_arcface_resnet18, load_mobilefacenet

    if network == "arcface" or (network == "auto" and is_present("arcface-resnet18")):
        return IdentityLoss(load_arcface_resnet18(), arcface_input, "arcface_resnet18", distance)
    return IdentityLoss(load_mobilefacenet(), ArcFaceCrop(face_size), "mobilefacenet", distance)


def create_lpips_metric(device: torch.device | str = "cpu") -> tuple[Callable[[Tensor, Tensor], Tensor] | None, str]:
    """LPIPS for validation (VGG variant, as GFP-GAN's scripts) and its name; (None, "") without weights.

    The returned function takes uint8 (N, 3, H, W) restored and ground-truth batches and
    returns (N,) distances.
    """
    from minerrestore.metrics.lpips import load_lpips, lpips_distance

    try:
        model = load_lpips("vgg", device)
    except WeightsError:
        return None, ""
    return partial(lpips_distance, model=model), "vgg"


__all__ = [
    "COMPONENTS",
    "VGG16_LAYER_WEIGHTS",
    "VGG19_LAYER_WEIGHTS",
    "ArcFaceCrop",
    "IdentityLoss",
    "PerceptualLoss",
    "VGG19Features",
    "component_boxes",
    "component_patch_sizes",
    "component_style_loss",
    "create_identity_loss",
    "create_lpips_metric",
    "create_perceptual_loss",
    "crop_components",
    "discriminator_gan_loss",
    "flip_landmarks",
    "generator_gan_loss",
    "gram_matrix",
    "load_vgg19_features",
    "pyramid_l1",
    "r1_penalty",
]
