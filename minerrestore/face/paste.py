"""Paste restored faces back into the (enlarged) photo.

The scheme of the official GFP-GAN inference (``facexlib/utils/face_restoration_helper.py``,
MIT; ``gfpgan/utils.py``, Apache-2.0): each restored crop goes back through the inverse of
its alignment transform, scaled by the upscale factor, and is blended over the
Lanczos-enlarged background with a soft mask (a feathered square, or ParseNet's face
classes when the parsing model is present). Written for minerrestore, no upstream code
copied. Differences, all deliberate:

* Without ParseNet, the default mask is a feathered oval around the aligned face
  (``mask_shape="oval"``): forehead to chin and cheek to cheek, so hair, neck and background
  stay the photo's own instead of the network's guess; ``"square"`` is upstream's whole crop.

* Work happens inside each face's bounding box only, never in full-frame float buffers,
  so memory stays bounded on large photos with many faces; with ``upscale=1`` every pixel
  outside the masks is returned bit-for-bit.
* The mask's feathering is built in crop space, so it is proportional to the face size
  (upstream: ``sqrt(area) / 20`` px, the same proportion).
* The half-pixel offset of the enlargement is exact for any factor: ``(s - 1) / 2``, the
  geometry of ``cv2.resize`` (upstream adds ``s / 2``, half a pixel too much).
* Shrinking a crop into a small face area-averages first (no aliasing).
* The pasted face's LAB mean is matched to the original face under the mask (no colour
  shift or darkening at the seam), lightness by a gain rather than a shift, so a face the
  network re-lit and that is darkened back keeps its shading (a shift clipped dark eyes and
  mouths to black on dark photos); grey photos stay grey.

ParseNet (facexlib, network from PSFRGAN) is optional and loaded from the user's
``parsing_parsenet.pth`` with ``weights_only=True``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from minerrestore.baselines import gaussian_deconvolve, nlm_denoise
from minerrestore.face.align import (
    affine_scale,
    compose_affine,
    invert_affine,
    pixel_scale_affine,
    transformed_bounds,
    warp_affine,
)
from minerrestore.io import grey_rgb

ColorMatch = Literal["none", "mean", "meanstd"]
_COLOR_MATCH_MODES: tuple[ColorMatch, ...] = get_args(ColorMatch)
MaskShape = Literal["oval", "square"]
MASK_SHAPES: tuple[MaskShape, ...] = get_args(MaskShape)
DEFAULT_MASK_SHAPE: MaskShape = "oval"

_EDGE_START = 0.02  # mask is 0 within this fraction of the crop side from its border ...
_EDGE_END = 0.09  # ... and reaches 1 at this fraction (50% at ~5.5%, as upstream's size/20)
_STD_RATIO_LIMITS = (0.5, 2.0)  # "meanstd" colour matching never scales contrast beyond these
_MIN_LIGHTNESS = 1.0  # LAB L (0-100) below which a face's mean counts as black for "mean" matching
_DETAIL_SPLIT = 0.7  # low-pass of the restored face's change, in crop pixels (beyond the output's own)
_SHARPEN_SPLIT = 0.5  # Gaussian sigma of the unsharp mask, in crop pixels
_NLM_TEMPLATE, _NLM_SEARCH = 5, 15  # non-local-means patch and search window of clean_faces
_PARSENET_SIZE = 512
_PARSING_FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15)  # skin..hair, earrings; no hat, neck, cloth
_PARSING_BLUR = 0.03  # Gaussian sigma of the parsing mask, fraction of the crop side
# The oval of an FFHQ-aligned crop (fractions of its side; template eyes at y 0.47, mouth at 0.73):
_OVAL_CENTRE = (0.5, 0.56)  # x, y
_OVAL_RADII = (0.31, 0.39)  # x, y: where the mask reaches 0 (about the hairline, ears and under the chin)
_OVAL_SOLID = 0.78  # the mask is 1 inside this fraction of the radii, smoothstep down to 0 at the oval


@dataclass(frozen=True)
class Fusion:
    """How one restored face merges with the photo's own face (:func:`fuse_face`).

    Attributes:
        strength: share of the restored face, 0 (the photo's face) ... 1 (the restored one).
        sharpen: unsharp-mask amount of the result at the restored crop's pixel scale (0: none).
        detail: where the face is larger than the restored crop, the share of the photo's own
            detail finer than the crop's pixels that is kept (1: all of it; 0: the restored face
            changes the photo over the whole band, as where it is not larger).
    """

    strength: float = 1.0
    sharpen: float = 0.0
    detail: float = 1.0


_FULL = Fusion()
"""The restored face at full strength, unsharpened (upstream's paste)."""


def upscaled_size(height: int, width: int, upscale: float) -> tuple[int, int]:
    """(height, width) of an image of (height, width) enlarged by ``upscale``."""
    return max(1, round(height * upscale)), max(1, round(width * upscale))


def upscale_image(image: np.ndarray, upscale: float, interpolation: int = cv2.INTER_LANCZOS4) -> np.ndarray:
    """Enlarge an image or alpha channel by ``upscale`` (Lanczos by default).

    Args:
        image: HxW or HxWxC uint8 array (an RGB photo or its alpha channel).
        upscale: factor; 1 returns ``image`` itself.
        interpolation: OpenCV interpolation flag.

    Returns:
        Array of :func:`upscaled_size`, same dtype and channels.
    """
    height, width = image.shape[:2]
    size = upscaled_size(height, width, upscale)
    if size == (height, width):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


@functools.lru_cache(maxsize=8)
def edge_mask(size: int) -> np.ndarray:
    """Feathered square mask of a crop, (size, size) float32 in [0, 1], read-only.

    0 near the crop border (where the warp has no image), smoothstep up to 1 inside.
    """
    position = np.minimum(np.arange(size), size - 1 - np.arange(size)) / size
    ramp = np.clip((position - _EDGE_START) / (_EDGE_END - _EDGE_START), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    mask = np.outer(ramp, ramp).astype(np.float32)
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=8)
def oval_mask(size: int) -> np.ndarray:
    """Feathered oval around the face of an FFHQ-aligned crop, (size, size) float32 in [0, 1], read-only."""
    position = (np.arange(size, dtype=np.float32) + 0.5) / size
    x = (position - _OVAL_CENTRE[0]) / _OVAL_RADII[0]
    y = (position - _OVAL_CENTRE[1]) / _OVAL_RADII[1]
    radius = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    ramp = np.clip((1.0 - radius) / (1.0 - _OVAL_SOLID), 0.0, 1.0)
    mask = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=8)
def _shaped_mask(size: int, shape: MaskShape) -> np.ndarray:
    """The paste mask without a parsing mask: the feathered square, times the oval for ``"oval"``."""
    if shape == "square":
        return edge_mask(size)
    mask = edge_mask(size) * oval_mask(size)
    mask.flags.writeable = False
    return mask


def paste_faces(
    background_rgb: np.ndarray,
    restored_crops: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    *,
    upscale: float = 1,
    masks: Sequence[np.ndarray | None] | None = None,
    color_match: ColorMatch = "mean",
    grey: bool = False,
    crop_size: int | None = None,
    upscaled_background: np.ndarray | None = None,
    mask_shape: MaskShape = DEFAULT_MASK_SHAPE,
    fusions: Sequence[Fusion] | None = None,
    cleaned: np.ndarray | None = None,
) -> np.ndarray:
    """Blend restored face crops back into the photo.

    Args:
        background_rgb: HxWx3 uint8 RGB photo the faces were aligned from (not modified).
        restored_crops: (R, R, 3) uint8 RGB restored faces, one per affine.
        affines: (2, 3) image -> crop transforms of :func:`~minerrestore.face.align.align_faces`.
        upscale: output size factor; the background is enlarged with Lanczos.
        masks: optional soft face masks in crop space (any square size, float in [0, 1]),
            e.g. from :func:`face_masks`; None entries (or None) use ``mask_shape``.
        color_match: ``"mean"`` matches each pasted face's LAB mean to that of the original
            face under its mask, lightness by a gain and colour by a shift (removes colour
            casts and brightness changes, keeps shading and detail); ``"meanstd"`` also matches the spread (clamped to
            0.5-2x; it flattens a face restored from a blurred one); ``"none"``.
        grey: the photo is grey (``LoadedImage.is_grey``); faces are pasted as grey.
        crop_size: side the affines were computed for, when different from the crops' side.
        upscaled_background: the background already enlarged (e.g. by a super-resolution
            network), of size :func:`upscaled_size`; used instead of Lanczos.
        mask_shape: the mask without ``masks``: ``"oval"`` (:func:`oval_mask`, the face only)
            or ``"square"`` (the whole crop, as upstream); both feathered.
        fusions: per face, how it merges with the photo's face (:func:`fuse_face`); None: the
            restored faces at full strength, unsharpened.
        cleaned: ``background_rgb`` with noisy faces cleaned (:func:`clean_faces`): the photo's
            face that :func:`fuse_face` keeps detail from (pixels outside the masks stay
            ``background_rgb``'s); None: ``background_rgb`` itself.

    Returns:
        (H*upscale, W*upscale, 3) uint8 RGB.

    Raises:
        ValueError: mismatched lengths, an unknown ``color_match`` or ``mask_shape``, or an
            ``upscaled_background`` of the wrong size.
    """
    lengths = [len(items) for items in (masks, fusions) if items is not None]
    if len(restored_crops) != len(affines) or any(length != len(affines) for length in lengths):
        raise ValueError(f"got {len(restored_crops)} crops, {len(affines)} affines, {lengths} masks/fusions")
    if color_match not in _COLOR_MATCH_MODES:
        raise ValueError(f"color_match={color_match!r} is not one of {', '.join(_COLOR_MATCH_MODES)}")
    if mask_shape not in MASK_SHAPES:
        raise ValueError(f"mask_shape={mask_shape!r} is not one of {', '.join(MASK_SHAPES)}")
    height, width = background_rgb.shape[:2]
    out_height, out_width = upscaled_size(height, width, upscale)
    if upscaled_background is None:
        output = upscale_image(background_rgb, upscale)
        if output is background_rgb:  # upscale 1: never write into the caller's array
            output = output.copy()
    elif upscaled_background.shape[:2] != (out_height, out_width):
        raise ValueError(f"upscaled_background is {upscaled_background.shape[:2]}, expected {(out_height, out_width)}")
    else:
        output = upscaled_background.copy()
    image_to_output = pixel_scale_affine(out_width / width, out_height / height)
    for index, (crop, affine) in enumerate(zip(restored_crops, affines, strict=True)):
        side = crop.shape[0]
        crop_to_image = invert_affine(affine)
        if crop_size is not None and crop_size != side:
            crop_to_image = compose_affine(crop_to_image, pixel_scale_affine(crop_size / side, crop_size / side))
        if masks is not None and masks[index] is not None:
            mask = edge_mask(side) * _resized_mask(masks[index], side)
        else:
            mask = _shaped_mask(side, mask_shape)
        _paste_one(
            output,
            crop,
            mask,
            compose_affine(image_to_output, crop_to_image),
            color_match,
            grey,
            _FULL if fusions is None else fusions[index],
            None if cleaned is None else (cleaned, image_to_output),
        )
    return output


def _paste_one(
    output: np.ndarray,
    crop: np.ndarray,
    mask: np.ndarray,
    crop_to_output: np.ndarray,
    color_match: ColorMatch,
    grey: bool,
    fusion: Fusion,
    cleaned: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Blend one crop into ``output`` in place, touching only its bounding box and mask;
    ``cleaned`` is the cleaned photo and its image -> output transform."""
    side = crop.shape[0]
    low, high = transformed_bounds(crop_to_output, (side, side))
    x0, y0 = np.maximum(np.floor(low).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(high).astype(int) + 2, (output.shape[1], output.shape[0]))
    if x1 <= x0 or y1 <= y0:
        return
    to_box = crop_to_output - np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]])
    box_size = (x1 - x0, y1 - y0)
    weight = warp_affine(mask, to_box, box_size)
    inside = weight > 0
    if not inside.any():
        return
    face = warp_affine(crop, to_box, box_size, border_mode=cv2.BORDER_REPLICATE).astype(np.float32)
    region = output[y0:y1, x0:x1]
    original = region.astype(np.float32)
    if color_match != "none":
        face = _match_colour(face, original, weight, color_match)
    photo_face = original
    if cleaned is not None:
        cleaned_rgb, image_to_output = cleaned
        image_to_box = image_to_output - np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]])
        photo_face = cv2.warpAffine(
            cleaned_rgb, image_to_box, box_size, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
    face = fuse_face(photo_face, face, fusion, affine_scale(crop_to_output))
    if grey:
        face = grey_rgb(face)
    blended = original + weight[..., None] * (face - original)
    np.copyto(region, np.clip(np.rint(blended), 0, 255).astype(np.uint8), where=inside[..., None])


def fuse_face(original: np.ndarray, face: np.ndarray, fusion: Fusion, scale: float) -> np.ndarray:
    """The face to paste: the restored ``face`` over the photo's, keeping the photo's finer detail.

    Args:
        original: the photo's face region (cleaned by :func:`clean_faces` where it was noisy or blurred),
            HxWx3 float32 0-255.
        face: the restored face warped onto the same region, HxWx3 float32 0-255.
        fusion: the restored face's share, the sharpening and the share of the photo's finer detail kept.
        scale: output pixels per restored-crop pixel.

    Returns:
        HxWx3 float32. Where a crop pixel covers at most one output pixel, ``strength`` of
        ``face`` over ``original``. Where the face is larger than the crop, the restored face
        changes the photo only at the crop's resolution (its difference from the photo is
        low-passed at the crop's pixel size), so the photo keeps its own finer detail: a clean
        face larger than the network's output comes back as sharp as it went in. With
        ``detail`` below 1, that much less of the photo's finer detail is kept (0: the restored
        face changes the photo over the whole band).
    """
    strength = np.float32(fusion.strength)
    if scale <= 1.0:
        fused = face if fusion.strength >= 1.0 else original + strength * (face - original)
        return fused
    sigma = _DETAIL_SPLIT * float(np.sqrt(scale * scale - 1.0))
    change = face - original
    kept = cv2.GaussianBlur(change, (0, 0), sigma)
    if fusion.detail < 1.0:  # the photo's finer detail replaced by the restored face's, in part
        kept += np.float32(1.0 - fusion.detail) * (change - kept)
    fused = original + strength * kept
    if fusion.sharpen > 0.0:
        fused += np.float32(fusion.sharpen) * (fused - cv2.GaussianBlur(fused, (0, 0), _SHARPEN_SPLIT * scale))
    return fused


def clean_faces(
    rgb: np.ndarray,
    affines: Sequence[np.ndarray],
    crop_size: int,
    strengths: Sequence[float],
    deblurs: Sequence[float],
) -> np.ndarray:
    """The photo with each face's region denoised by non-local means, then deconvolved, for
    :func:`paste_faces`'s ``cleaned``.

    Args:
        rgb: HxWx3 uint8 RGB photo (not modified).
        affines: (2, 3) image -> crop transforms of the faces.
        crop_size: side of the crops the affines map to.
        strengths: non-local-means ``h`` per face (0: not denoised).
        deblurs: per face, the Gaussian blur (photo pixels) to undo
            (:func:`~minerrestore.baselines.gaussian_deconvolve`; 0: not deblurred).

    Returns:
        ``rgb`` itself when no face is cleaned, else a copy with the faces' boxes cleaned.
    """
    cleaned = rgb
    for affine, strength, deblur in zip(affines, strengths, deblurs, strict=True):
        if strength <= 0.0 and deblur <= 0.0:
            continue
        low, high = transformed_bounds(invert_affine(affine), (crop_size, crop_size))
        x0, y0 = np.maximum(np.floor(low).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(high).astype(int) + 1, (rgb.shape[1], rgb.shape[0]))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        if cleaned is rgb:
            cleaned = rgb.copy()
        region = np.ascontiguousarray(cleaned[y0:y1, x0:x1])
        denoised = nlm_denoise(region, strength, _NLM_TEMPLATE, _NLM_SEARCH)
        cleaned[y0:y1, x0:x1] = gaussian_deconvolve(denoised, deblur)
    return cleaned


def _match_colour(face: np.ndarray, original: np.ndarray, weight: np.ndarray, mode: ColorMatch) -> np.ndarray:
    """``face`` (float32 RGB 0-255) with its weighted LAB statistics matched to ``original``'s."""
    total = float(weight.sum())
    if total <= 0:
        return face
    w = weight / total
    face_lab = cv2.cvtColor(face / 255.0, cv2.COLOR_RGB2LAB)
    original_lab = cv2.cvtColor(original / 255.0, cv2.COLOR_RGB2LAB)
    face_mean = np.einsum("hw,hwc->c", w, face_lab)
    original_mean = np.einsum("hw,hwc->c", w, original_lab)
    if mode == "meanstd":
        face_std = np.sqrt(np.einsum("hw,hwc->c", w, (face_lab - face_mean) ** 2))
        original_std = np.sqrt(np.einsum("hw,hwc->c", w, (original_lab - original_mean) ** 2))
        ratio = np.clip(original_std / np.maximum(face_std, 1e-3), *_STD_RATIO_LIMITS).astype(np.float32)
        face_lab = (face_lab - face_mean) * ratio + original_mean
    else:  # lightness by a gain, so a re-lit face darkened back keeps its shading; colour by a shift
        face_lab[..., 0] *= np.float32(original_mean[0] / max(face_mean[0], _MIN_LIGHTNESS))
        face_lab[..., 1:] += (original_mean[1:] - face_mean[1:]).astype(np.float32)
    return cv2.cvtColor(face_lab, cv2.COLOR_LAB2RGB) * 255.0


def _resized_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """A soft mask as (side, side) float32 in [0, 1]."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (side, side):
        mask = cv2.resize(mask, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


def load_face_parser(path: str | Path | None = None, *, device: str = "cpu") -> object:
    """Build facexlib's ParseNet and load ``parsing_parsenet.pth`` safely.

    Args:
        path: model file; None looks up ``parsenet`` in the weight folders.
        device: torch device string.

    Returns:
        The ParseNet module in eval mode on ``device``.

    Raises:
        WeightsError: the file is missing (the message says where to get it) or invalid.
        UsageError: facexlib is not installed.
    """
    import torch

    from minerrestore.errors import WeightsError
    from minerrestore.face.detect import require_facexlib
    from minerrestore.models.catalogue import resolve_file
    from minerrestore.models.files import load_state_dict

    model_path = Path(path) if path is not None else resolve_file("parsenet")
    parsenet_class = require_facexlib("facexlib.parsing.parsenet", "ParseNet")
    net = parsenet_class(in_size=_PARSENET_SIZE, out_size=_PARSENET_SIZE, parsing_ch=19)
    try:
        net.load_state_dict(load_state_dict(model_path), strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{model_path}: not a ParseNet state dict ({exc})") from exc
    return net.eval().to(torch.device(device))


def face_masks(crops: Sequence[np.ndarray], parser: object, *, batch_size: int = 4) -> list[np.ndarray]:
    """Soft face masks of aligned crops from ParseNet, for :func:`paste_faces`.

    Args:
        crops: (S, S, 3) uint8 RGB aligned (restored) faces.
        parser: the module from :func:`load_face_parser`.
        batch_size: crops per forward pass.

    Returns:
        One (512, 512) float32 mask in [0, 1] per crop: the face classes (skin, brows,
        eyes, glasses, ears, nose, mouth, lips, hair, earrings), blurred by 3% of the side.
    """
    import torch

    device = next(parser.parameters()).device
    face_lut = torch.zeros(19, dtype=torch.float32, device=device)
    face_lut[list(_PARSING_FACE_CLASSES)] = 1.0
    masks = []
    for start in range(0, len(crops), batch_size):
        batch = np.stack(
            [
                cv2.resize(crop, (_PARSENET_SIZE, _PARSENET_SIZE), interpolation=cv2.INTER_LINEAR)
                for crop in crops[start : start + batch_size]
            ]
        )
        tensor = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        with torch.inference_mode():
            labels = parser(tensor)[0].argmax(dim=1)
        for hard in face_lut[labels].cpu().numpy():
            masks.append(cv2.GaussianBlur(hard, (0, 0), _PARSING_BLUR * _PARSENET_SIZE))
    return masks
