"""Alignment: template, similarity estimate, warping (official crop, no aliasing), round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from minerrestore.face import (
    FFHQ_TEMPLATE_512,
    align_faces,
    aligned_input,
    detect_faces,
    estimate_affine,
    invert_affine,
    paste_faces,
    template_for,
    warp_face,
)
from minerrestore.face.align import warp_affine
from minerrestore.face.paste import edge_mask
from minerrestore.io import read_image
from tests.conftest import SHARED

PORTRAIT = SHARED / "data" / "faces" / "A000014.jpg"

needs_shared = pytest.mark.skipif(not PORTRAIT.is_file(), reason="../shared data absent")


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def test_template_scales_with_crop_size() -> None:
    assert FFHQ_TEMPLATE_512[0, 0] < FFHQ_TEMPLATE_512[1, 0]  # left eye as seen comes first
    np.testing.assert_allclose(template_for(512), FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(template_for(256), FFHQ_TEMPLATE_512 / 2, rtol=1e-6)


def test_estimate_affine_recovers_a_known_similarity() -> None:
    angle, scale, shift = np.deg2rad(17.0), 0.23, np.array([311.0, 95.5])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    image_to_crop_true = np.linalg.inv(rotation)
    landmarks = template_for(512).astype(np.float64) @ rotation.T + shift  # where the face is in the image
    affine = estimate_affine(landmarks, 512)
    assert affine.shape == (2, 3) and affine.dtype == np.float64
    np.testing.assert_allclose(affine[:, :2], image_to_crop_true, atol=1e-6)
    np.testing.assert_allclose(_apply(affine, landmarks), template_for(512), atol=1e-3)
    np.testing.assert_allclose(_apply(invert_affine(affine), template_for(512)), landmarks, atol=1e-3)


def test_degenerate_landmarks_raise() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        estimate_affine(np.full((5, 2), 7.0), 512)


@needs_shared
def test_warp_face_matches_the_official_bgr_crop() -> None:
    rgb = read_image(PORTRAIT).rgb
    affine = estimate_affine(detect_faces(rgb)[0].landmarks, 512)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    official = cv2.warpAffine(bgr, affine, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
    np.testing.assert_array_equal(warp_face(rgb, affine, 512), official[..., ::-1])


def test_shrinking_warp_is_not_aliased() -> None:
    checker = ((np.indices((800, 800)).sum(axis=0) % 2) * 255).astype(np.uint8)  # 1 px checkerboard
    affine = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])  # 800 px -> 200 px
    ours = warp_affine(checker, affine, (200, 200))
    plain = cv2.warpAffine(checker, affine, (200, 200), flags=cv2.INTER_LINEAR)
    assert abs(float(ours[2:-2, 2:-2].mean()) - 127.5) < 2 and ours[2:-2, 2:-2].std() < 2
    assert abs(float(plain.mean()) - 127.5) > 50  # upstream's plain warp turns it black


@needs_shared
@pytest.mark.parametrize("size", [512, 128])
def test_align_then_inverse_warp_returns_the_face_region(size: int) -> None:
    rgb = read_image(PORTRAIT).rgb
    faces = detect_faces(rgb)
    (aligned,) = align_faces(rgb, faces, size)
    assert aligned.crop.shape == (size, size, 3) and aligned.face is faces[0]
    # the landmarks land on the template
    np.testing.assert_allclose(_apply(aligned.affine, faces[0].landmarks), template_for(size), atol=0.04 * size)
    # and the crop pasted straight back reproduces the face region
    back = paste_faces(rgb, [aligned.crop], [aligned.affine], color_match="none")
    weight = cv2.warpAffine(np.ascontiguousarray(edge_mask(size)), invert_affine(aligned.affine), rgb.shape[1::-1])
    inside = weight > 0.5
    assert inside.sum() > 0.3 * rgb.shape[0] * rgb.shape[1]
    error = np.abs(back.astype(np.int16) - rgb)[inside]
    assert error.mean() < (3.0 if size == 512 else 4.0)  # a 1 px misplacement gives 6.4


def test_aligned_input_wraps_an_already_aligned_face() -> None:
    face = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    aligned = aligned_input(face, 512)
    assert aligned.crop.shape == (512, 512, 3) and aligned.face is None
    np.testing.assert_allclose(
        _apply(aligned.affine, np.array([[-0.5, -0.5], [1023.5, 1023.5]])), [[-0.5, -0.5], [511.5, 511.5]]
    )
    same = aligned_input(face[:512, :512], 512)
    assert same.crop is not None and np.array_equal(same.crop, face[:512, :512])
