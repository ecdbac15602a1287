"""Paste back: untouched pixels outside the masks, grey stays grey, colour matching, geometry, memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from minerrestore.face import (
    align_faces,
    detect_faces,
    face_masks,
    invert_affine,
    load_face_parser,
    paste_faces,
    template_for,
    upscale_image,
    upscaled_size,
)
from minerrestore.face.align import compose_affine, pixel_scale_affine
from minerrestore.face.paste import edge_mask, oval_mask
from minerrestore.io import read_image
from tests.conftest import SHARED

SOLVAY = SHARED / "data" / "examples" / "Solvay_conference_1927.png"
PORTRAIT = SHARED / "data" / "faces" / "A000014.jpg"

needs_shared = pytest.mark.skipif(not SOLVAY.is_file() or not PORTRAIT.is_file(), reason="../shared data absent")


def _noise_crops(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _mask_union(shape: tuple[int, ...], affines: list[np.ndarray], size: int, upscale: float = 1) -> np.ndarray:
    """Where any face mask can reach, computed independently (full frame, dilated by 3 px)."""
    height, width = shape[:2]
    to_output = pixel_scale_affine(upscale, upscale)
    union = np.zeros(upscaled_size(height, width, upscale), bool)
    for affine in affines:
        to_frame = compose_affine(to_output, invert_affine(affine))
        union |= cv2.warpAffine(np.ascontiguousarray(edge_mask(size)), to_frame, union.shape[::-1]) > 0
    return cv2.dilate(union.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0


@needs_shared
@pytest.mark.parametrize("path", [SOLVAY, PORTRAIT], ids=["solvay-29-small-faces", "portrait"])
def test_upscale_1_leaves_every_pixel_outside_the_masks_unchanged(path: Path) -> None:
    rgb = read_image(path).rgb
    aligned = align_faces(rgb, detect_faces(rgb), 512)
    affines = [a.affine for a in aligned]
    before = rgb.copy()
    out = paste_faces(rgb, _noise_crops(len(aligned), 512), affines, upscale=1, mask_shape="square")
    np.testing.assert_array_equal(rgb, before)  # input untouched
    assert out.shape == rgb.shape and out.dtype == np.uint8
    outside = ~_mask_union(rgb.shape, affines, 512)
    assert outside.mean() > 0.1
    np.testing.assert_array_equal(out[outside], rgb[outside])
    assert (out != rgb).any(axis=2).sum() > 0.5 * (~outside).sum()  # and the faces did change


@needs_shared
@pytest.mark.parametrize("upscale", [1, 2])
def test_grey_photo_stays_grey(upscale: int) -> None:
    loaded = read_image(SOLVAY)
    assert loaded.is_grey
    aligned = align_faces(loaded.rgb, detect_faces(loaded.rgb), 512)
    out = paste_faces(
        loaded.rgb, _noise_crops(len(aligned), 512), [a.affine for a in aligned], upscale=upscale, grey=True
    )
    assert out.shape[:2] == upscaled_size(*loaded.rgb.shape[:2], upscale)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


@needs_shared
def test_colour_match_removes_a_colour_cast() -> None:
    rgb = read_image(PORTRAIT).rgb
    (aligned,) = align_faces(rgb, detect_faces(rgb), 512)
    cast = np.clip(aligned.crop.astype(np.int16) * [0.8, 0.9, 1.0] + [0, 10, 45], 0, 255).astype(np.uint8)
    inside = _mask_union(rgb.shape, [aligned.affine], 512)
    errors = {}
    for mode in ("none", "mean", "meanstd"):
        out = paste_faces(rgb, [cast], [aligned.affine], color_match=mode)
        errors[mode] = np.abs(out[inside].astype(np.float64).mean(axis=0) - rgb[inside].mean(axis=0)).max()
    assert errors["none"] > 15
    assert errors["mean"] < 3 and errors["meanstd"] < 3


@needs_shared
def test_upscale_geometry_matches_the_lanczos_background() -> None:
    rgb = read_image(PORTRAIT).rgb
    (aligned,) = align_faces(rgb, detect_faces(rgb), 512)
    out = paste_faces(rgb, [aligned.crop], [aligned.affine], upscale=2, color_match="none")
    reference = upscale_image(rgb, 2)
    assert out.shape == reference.shape
    inside = _mask_union(rgb.shape, [aligned.affine], 512, upscale=2)
    # exact half-pixel handling; upstream's extra 0.5 px offset measures 1.5 here
    assert np.abs(out.astype(np.int16) - reference)[inside].mean() < 1.2
    np.testing.assert_array_equal(out[~inside], reference[~inside])


@needs_shared
def test_smaller_restored_crops_and_zero_masks() -> None:
    rgb = read_image(PORTRAIT).rgb
    (aligned,) = align_faces(rgb, detect_faces(rgb), 512)
    half = cv2.resize(aligned.crop, (256, 256), interpolation=cv2.INTER_AREA)
    full = paste_faces(rgb, [aligned.crop], [aligned.affine], color_match="none")
    from_half = paste_faces(rgb, [half], [aligned.affine], crop_size=512, color_match="none")
    assert np.abs(full.astype(np.int16) - from_half).mean() < 1.0
    nothing = paste_faces(rgb, _noise_crops(1, 512), [aligned.affine], masks=[np.zeros((64, 64), np.float32)])
    np.testing.assert_array_equal(nothing, rgb)


def test_oval_mask_pastes_the_face_and_keeps_hair_and_background() -> None:
    mask = oval_mask(512)
    assert mask.shape == (512, 512) and mask.dtype == np.float32 and not mask.flags.writeable
    for x, y in template_for(512):  # eyes, nose and mouth corners fully inside
        assert mask[int(y), int(x)] == 1.0
    assert mask[:50].max() == 0 and mask[:, :80].max() == 0 and mask[:, -80:].max() == 0  # top of head, sides
    background = np.zeros((200, 200, 3), np.uint8)
    affine = np.array([[1.0, 0.0, -50.0], [0.0, 1.0, -50.0]])  # the 64 px crop covers pixels 50-113
    white = [np.full((64, 64, 3), 255, np.uint8)]
    oval = paste_faces(background, white, [affine], color_match="none")
    square = paste_faces(background, white, [affine], color_match="none", mask_shape="square")
    assert oval[50 + 36, 50 + 32].min() == 255 and square[50 + 36, 50 + 32].min() == 255  # the face
    assert oval[50 + 8, 50 + 8].max() == 0 and square[50 + 8, 50 + 8].min() == 255  # a crop corner: hair
    assert (oval > 0).sum() < 0.75 * (square > 0).sum()
    with pytest.raises(ValueError, match="mask_shape"):
        paste_faces(background, white, [affine], mask_shape="circle")


def test_argument_errors_and_alpha_upscaling() -> None:
    background = np.zeros((40, 30, 3), np.uint8)
    affine = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    with pytest.raises(ValueError, match="crops"):
        paste_faces(background, _noise_crops(2, 64), [affine])
    with pytest.raises(ValueError, match="upscaled_background"):
        paste_faces(background, [], [], upscale=2, upscaled_background=np.zeros((40, 30, 3), np.uint8))
    with pytest.raises(ValueError, match="color_match"):
        paste_faces(background, [], [], color_match="lab")
    alpha = np.full((40, 30), 200, np.uint8)
    assert upscale_image(alpha, 2.5).shape == (100, 75)
    assert upscale_image(alpha, 1) is alpha


def test_memory_stays_within_the_face_box_on_a_large_photo() -> None:
    background = np.full((3000, 4000, 3), 90, np.uint8)
    affine = np.array([[2.0, 0.0, -2000.0], [0.0, 2.0, -3000.0]])  # a 256 px face at (1000, 1500)
    tracemalloc.start()
    out = paste_faces(background, _noise_crops(1, 512), [affine], upscale=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < background.nbytes + 20_000_000  # the output plus face-box buffers, no full-frame floats
    assert (out[1400:1700, 900:1200] != 90).any() and (out[:1300] == 90).all()


def test_parsing_masks_from_a_local_parsenet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    import minerrestore.compat  # noqa: F401

    parsenet = pytest.importorskip("facexlib.parsing.parsenet")
    import minerrestore.face.paste as paste

    monkeypatch.setattr(paste, "_PARSENET_SIZE", 64)  # a 64 px ParseNet keeps the test fast
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(parsenet.ParseNet(in_size=64, out_size=64, parsing_ch=19).state_dict(), path)
    parser = load_face_parser(path)
    masks = face_masks(_noise_crops(3, 96), parser, batch_size=2)
    assert len(masks) == 3
    assert all(m.shape == (64, 64) and m.dtype == np.float32 and 0 <= m.min() <= m.max() <= 1 for m in masks)
    background = np.full((100, 100, 3), 50, np.uint8)
    affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = paste_faces(background, _noise_crops(1, 96), [affine], masks=masks[:1])
    assert out.shape == background.shape
