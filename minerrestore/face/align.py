"""Face alignment: similarity transform of 5 landmarks onto the FFHQ template, and warping.

Follows the alignment of the official GFP-GAN inference (``facexlib/utils/
face_restoration_helper.py``, MIT, and ``gfpgan/utils.py``, Apache-2.0): the five detected
points (left eye, right eye, nose tip, left and right mouth corner, as seen in the image)
are mapped onto the FFHQ 512 template by a similarity transform estimated with
``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)``, and the face is cut out with
``cv2.warpAffine`` over a grey border. Written for minerrestore, no upstream code copied.

One improvement over upstream: when a transform shrinks by more than 2x (a large face
into a 512 crop, or a 512 restored face back into a 30 px face), the source is first
reduced with area averaging, so the result is not aliased.

Coordinates follow OpenCV: pixel ``(i, j)`` has its centre at ``x = j, y = i``. An
``affine`` is a 2x3 float64 matrix mapping image coordinates to crop coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from minerrestore.face.detect import Face

FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],  # left eye (as seen in the image)
        [318.90277, 240.19360],  # right eye
        [256.63416, 314.01935],  # nose tip
        [201.26117, 371.41043],  # left mouth corner
        [313.08905, 371.15118],  # right mouth corner
    ],
    dtype=np.float32,
)
"""Where the five landmarks of an FFHQ-aligned 512x512 face lie, (5, 2) (x, y) float32."""

FFHQ_BORDER_RGB = (132, 133, 135)
"""Grey filling the crop outside the image: upstream's (135, 133, 132) given to a BGR image."""

_SHRINK_LIMIT = 0.5  # transforms shrinking more than this are pre-reduced with INTER_AREA


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """One aligned face crop.

    Attributes:
        crop: (size, size, 3) uint8 RGB, the face in FFHQ alignment.
        affine: (2, 3) float64, maps image coordinates to crop coordinates.
        face: the detection it came from; None for an input that already was an aligned face.
    """

    crop: np.ndarray
    affine: np.ndarray
    face: Face | None


def template_for(size: int) -> np.ndarray:
    """The FFHQ 5-point template for a square crop of ``size`` pixels, (5, 2) float32."""
    return FFHQ_TEMPLATE_512 * np.float32(size / 512.0)


def estimate_affine(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Similarity transform taking the 5 landmarks onto the template of ``size``.

    Args:
        landmarks: (5, 2) points in image coordinates, in template order.
        size: side of the aligned crop in pixels.

    Returns:
        (2, 3) float64 affine (rotation, uniform scale, translation), image -> crop.

    Raises:
        ValueError: the points are degenerate (e.g. all equal) and no transform exists.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    affine, _ = cv2.estimateAffinePartial2D(points, template_for(size).astype(np.float64), method=cv2.LMEDS)
    if affine is None or abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise ValueError(f"cannot align a face with degenerate landmarks {points.tolist()}")
    return affine


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine transform, (2, 3) float64."""
    return cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64))


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine applying ``inner`` first, then ``outer``."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.concatenate([linear, (outer[:, :2] @ inner[:, 2:]) + outer[:, 2:]], axis=1)


def pixel_scale_affine(scale_x: float, scale_y: float) -> np.ndarray:
    """The affine of a resize by (scale_x, scale_y) in pixel-centre convention (as cv2.resize)."""
    return np.array([[scale_x, 0.0, 0.5 * (scale_x - 1.0)], [0.0, scale_y, 0.5 * (scale_y - 1.0)]], dtype=np.float64)


def affine_scale(affine: np.ndarray) -> float:
    """Geometric mean scale factor of an affine transform (sqrt of its Jacobian)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2]))))


def transformed_bounds(affine: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of a (width, height) pixel grid's outer edges after ``affine``: (x, y) min and max."""
    width, height = size
    corners = np.array(
        [[-0.5, -0.5, 1.0], [width - 0.5, -0.5, 1.0], [-0.5, height - 0.5, 1.0], [width - 0.5, height - 0.5, 1.0]]
    )
    points = corners @ np.asarray(affine, dtype=np.float64).T
    return points.min(axis=0), points.max(axis=0)


def warp_affine(
    src: np.ndarray,
    affine: np.ndarray,
    out_size: tuple[int, int],
    *,
    border_mode: int = cv2.BORDER_CONSTANT,
    border_value: float | tuple[float, ...] = 0,
) -> np.ndarray:
    """``cv2.warpAffine`` (bilinear) that area-averages first when it would shrink by over 2x.

    Args:
        src: HxW or HxWxC array (uint8 or float32).
        affine: (2, 3) transform, src coordinates -> output coordinates.
        out_size: (width, height) of the output.
        border_mode: OpenCV border mode for points outside ``src``.
        border_value: fill value for ``cv2.BORDER_CONSTANT``.

    Returns:
        The warped array, (height, width[, C]), dtype of ``src``.
    """
    affine = np.asarray(affine, dtype=np.float64)
    scale = affine_scale(affine)
    if scale < _SHRINK_LIMIT:
        src, affine = _shrink_source(src, affine, out_size, scale)
    return cv2.warpAffine(
        src, affine, out_size, flags=cv2.INTER_LINEAR, borderMode=border_mode, borderValue=border_value
    )


def _shrink_source(
    src: np.ndarray, affine: np.ndarray, out_size: tuple[int, int], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``src`` that lands in the output, area-reduced by ``scale``, and its affine."""
    pad = 2.0 / scale
    low, high = transformed_bounds(invert_affine(affine), out_size)
    x0, y0 = np.floor(low - pad).astype(int)
    x1, y1 = np.ceil(high + pad).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, src.shape[1]), min(y1, src.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return src, affine
    region = src[y0:y1, x0:x1]
    small_w = max(1, round((x1 - x0) * scale))
    small_h = max(1, round((y1 - y0) * scale))
    small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
    # small pixel -> src pixel: undo the resize, then shift by the region's origin
    small_to_region = invert_affine(pixel_scale_affine(small_w / (x1 - x0), small_h / (y1 - y0)))
    small_to_src = small_to_region + np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]])
    return small, compose_affine(affine, small_to_src)


def warp_face(
    rgb: np.ndarray, affine: np.ndarray, size: int, border_value: tuple[int, int, int] = FFHQ_BORDER_RGB
) -> np.ndarray:
    """Cut out an aligned face.

    Args:
        rgb: HxWx3 uint8 RGB image.
        affine: (2, 3) image -> crop transform from :func:`estimate_affine`.
        size: side of the crop.
        border_value: RGB colour for crop pixels outside the image.

    Returns:
        (size, size, 3) uint8 RGB crop.
    """
    return warp_affine(rgb, affine, (size, size), border_value=tuple(float(v) for v in border_value))


def align_faces(
    rgb: np.ndarray,
    faces: Sequence[Face],
    size: int,
    *,
    border_value: tuple[int, int, int] = FFHQ_BORDER_RGB,
) -> list[AlignedFace]:
    """Align every detected face of an image onto the FFHQ template.

    Args:
        rgb: HxWx3 uint8 RGB image the faces were detected in.
        faces: detections with 5 landmarks each.
        size: side of the square crops (the restoration network's input size).
        border_value: RGB colour for crop pixels outside the image.

    Returns:
        One :class:`AlignedFace` per face, in the order of ``faces``.
    """
    aligned = []
    for face in faces:
        affine = estimate_affine(face.landmarks, size)
        aligned.append(AlignedFace(warp_face(rgb, affine, size, border_value), affine, face))
    return aligned


def aligned_input(rgb: np.ndarray, size: int) -> AlignedFace:
    """Wrap an image that already is an FFHQ-aligned face (``--aligned``) as an :class:`AlignedFace`.

    Args:
        rgb: HxWx3 uint8 RGB aligned face of any size (resized to ``size``).
        size: side of the crop.

    Returns:
        The crop, with the affine of the resize and ``face=None``.
    """
    height, width = rgb.shape[:2]
    if (height, width) == (size, size):
        crop = rgb
    else:
        shrinking = width * height > size * size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        crop = cv2.resize(rgb, (size, size), interpolation=interpolation)
    return AlignedFace(crop, pixel_scale_affine(size / width, size / height), None)
