"""The blind degradation estimate: monotone in each degradation, cheap, and what it drives."""

from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from minerrestore.data.degradation import apply_degradation
from minerrestore.face.align import estimate_affine, invert_affine, warp_affine
from minerrestore.face.paste import Fusion, clean_faces, fuse_face, paste_faces
from minerrestore.io import read_image
from minerrestore.severity import DegradationEstimate, blockiness, edge_blur, estimate_degradation, input_cleaning
from tests.conftest import SHARED

PHOTO = SHARED / "data" / "faces_hires" / "congress" / "A000055.jpg"
needs_photo = pytest.mark.skipif(not PHOTO.is_file(), reason="../shared data absent")


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, np.ndarray]:
    """A clean studio portrait (face about 250 px) and its 128 px alignment."""
    from minerrestore.face import detect_faces

    rgb = read_image(PHOTO).rgb
    face = detect_faces(rgb)[0]
    return rgb, estimate_affine(face.landmarks, 128)


def _estimate(photo: tuple[np.ndarray, np.ndarray], params: dict) -> DegradationEstimate:
    rgb, affine = photo
    return estimate_degradation(apply_degradation(rgb, params) if params else rgb, affine, 128)


def _blur(sigma: float) -> dict:
    return {"blur": {"kernel_size": 41, "sigma_x": sigma, "sigma_y": sigma, "theta": 0.0}}


@needs_photo
@pytest.mark.parametrize("params", [{}, _blur(2.0), {"noise": {"sigma": 8.0, "seed": 0}}])
def test_the_settings_do_not_depend_on_the_network_size(photo: tuple[np.ndarray, np.ndarray], params: dict) -> None:
    rgb, affine = photo
    rgb = apply_degradation(rgb, params) if params else rgb
    small = estimate_degradation(rgb, affine, 128)
    large = estimate_degradation(rgb, affine * 2.0, 256)  # the same face for a 256 px network
    assert large.scale == pytest.approx(small.scale / 2.0) and large.size == 256
    assert large.crop_noise == pytest.approx(small.crop_noise, rel=0.1)  # resampled by another path
    for key in ("blur", "severity", "artefacts", "denoise", "sharpen"):
        assert getattr(large, key) == pytest.approx(getattr(small, key), rel=0.02, abs=0.02), key


@needs_photo
@pytest.mark.parametrize(
    ("field", "levels"),
    [
        ("blur", [_blur(s) for s in (1.0, 2.0, 3.0, 5.0)]),
        ("blur", [{"downsample": {"factor": f}} for f in (2.0, 3.0, 4.0, 6.0)]),
        ("photo_blur", [_blur(s) for s in (1.0, 2.0, 3.0, 5.0)]),
        ("noise", [{"noise": {"sigma": s, "seed": 0}} for s in (3.0, 6.0, 12.0, 24.0)]),
        ("jpeg", [{"jpeg": {"quality": q}} for q in (85, 60, 40, 20)]),
        ("luminance", [{"lowlight": {"exposure": e, "gamma": 1.0, "shot": 0.0, "seed": 0}} for e in (0.6, 0.35, 0.2)]),
    ],
)
def test_each_measurement_and_the_severity_are_monotone_in_their_degradation(
    photo: tuple[np.ndarray, np.ndarray], field: str, levels: list[dict]
) -> None:
    estimates = [_estimate(photo, {})] + [_estimate(photo, params) for params in levels]
    values = [getattr(estimate, field) for estimate in estimates]
    steps = np.diff(values) * (-1 if field == "luminance" else 1)
    assert (steps > 0).all(), values
    severities = [estimate.severity for estimate in estimates]
    artefacts = [estimate.artefacts for estimate in estimates]
    assert np.all(np.diff(severities) >= -1e-6), severities  # never less severe for more damage
    assert np.all(np.diff(artefacts) >= -1e-6), artefacts  # never less of the photo's detail called artefacts
    assert severities[0] < 0.05 and artefacts[0] < 0.05  # the clean photo
    assert estimates[0].denoise == estimates[0].sharpen == estimates[0].deblur == 0.0  # ... passes as it is
    worst = estimates[-1]  # the worst level acts: restored, cleaned or sharpened
    assert worst.severity > 0.3 or worst.denoise > 0.0 or worst.sharpen > 0.1, worst


@needs_photo
def test_a_clean_face_is_clean_and_keeps_its_detail_and_the_estimate_is_fast(
    photo: tuple[np.ndarray, np.ndarray],
) -> None:
    rgb, affine = photo
    estimate_degradation(rgb, affine, 128)
    start = time.perf_counter()
    estimate = estimate_degradation(rgb, affine, 128)
    assert time.perf_counter() - start < 0.25  # a few ms here; generous for a loaded CI machine
    assert estimate.severity < 0.05 and estimate.artefacts < 0.05
    assert estimate.scale > 2.5  # a 250 px face holds more than a 128 px crop
    keys = {"blur", "noise", "jpeg", "luminance", "severity", "denoise", "sharpen", "photo_detail"}
    assert set(estimate.to_dict()) >= keys


def test_blur_and_blockiness_measure_what_they_are_made_of() -> None:
    squares = np.indices((256, 256)) // 32
    edges = ((squares[0] + squares[1]) % 2 * 200.0).astype(np.float32)
    sharp = edge_blur(edges)
    measured = [edge_blur(cv2.GaussianBlur(edges, (0, 0), sigma)) for sigma in (1.0, 2.0, 3.0)]
    assert sharp < 0.9  # the measurement's own floor: a perfectly sharp edge reads about 0.75 px
    assert measured == sorted(measured) and abs(measured[1] - 2.0) < 0.6, measured
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.uniform(0, 255, (16, 16)), np.ones((8, 8))).astype(np.float32)
    assert blockiness(blocks) > 1.0
    assert blockiness(blocks, x0=4, y0=4) < blockiness(blocks)  # off the photo's grid
    assert blockiness(rng.uniform(0, 255, (128, 128)).astype(np.float32)) < 0.05


@needs_photo
def test_a_clean_large_face_comes_back_with_its_detail(photo: tuple[np.ndarray, np.ndarray]) -> None:
    """A smooth 128 px "restored" face pasted at full strength over a 250 px face keeps the
    photo's own detail; on a face no larger than the crop, the restored face replaces it."""
    rgb, affine = photo
    from minerrestore.face import warp_face

    smooth = cv2.GaussianBlur(warp_face(rgb, affine, 128), (0, 0), 1.0)
    kept = paste_faces(rgb, [smooth], [affine])
    small = cv2.resize(rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    small_affine = affine @ np.diag([4.0, 4.0, 1.0])
    small_affine[:, 2] += affine[:, :2] @ np.array([1.5, 1.5])  # pixel centres of the 4x smaller photo
    replaced = paste_faces(small, [smooth], [small_affine])
    box = _inner_box(rgb, affine)

    def sharpness(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image[box], cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(grey, cv2.CV_32F).var())

    assert sharpness(kept) > 0.8 * sharpness(rgb)
    assert np.abs(kept.astype(int) - rgb).mean() < 2.0  # the restored face is the photo's, smoothed
    inner = _inner_box(small, small_affine)
    expected = cv2.warpAffine(smooth, invert_affine(small_affine), small.shape[1::-1]).astype(int)
    assert np.abs(replaced[inner] - expected[inner]).mean() < 0.5 * np.abs(small[inner] - expected[inner]).mean()


def _inner_box(rgb: np.ndarray, affine: np.ndarray) -> tuple[slice, slice]:
    corners = np.array([[40.0, 50.0, 1.0], [88.0, 100.0, 1.0]]) @ invert_affine(affine).T
    (x0, y0), (x1, y1) = corners.astype(int)
    return slice(y0, y1), slice(x0, x1)


def test_fuse_face_passes_the_photo_at_strength_0_and_splits_by_frequency_above_the_crop_size() -> None:
    rng = np.random.default_rng(1)
    original = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    face = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32), (0, 0), 4.0)
    np.testing.assert_allclose(fuse_face(original, face, Fusion(0.0), 4.0), original, atol=1e-3)
    np.testing.assert_array_equal(
        fuse_face(original, face, Fusion(1.0), 1.0), face
    )  # no larger than the crop: as before
    half = fuse_face(original, face, Fusion(0.5), 1.0)
    np.testing.assert_allclose(half, (original + face) / 2, atol=1e-3)
    larger = fuse_face(original, face, Fusion(1.0), 4.0)  # the face changes the photo at the crop's resolution
    np.testing.assert_allclose(cv2.GaussianBlur(larger, (0, 0), 6.0), cv2.GaussianBlur(face, (0, 0), 6.0), atol=3.0)
    fine = larger - cv2.GaussianBlur(larger, (0, 0), 1.0)
    original_fine = original - cv2.GaussianBlur(original, (0, 0), 1.0)
    assert np.corrcoef(fine.ravel(), original_fine.ravel())[0, 1] > 0.9  # ... and keeps its finest detail


def test_the_paste_keeps_the_photos_finer_detail_unless_the_network_re_lights_the_face() -> None:
    rng = np.random.default_rng(2)
    original = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    face = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32), (0, 0), 4.0)
    kept = fuse_face(original, face, Fusion(1.0), 4.0)
    replaced = fuse_face(original, face, Fusion(1.0, detail=0.0), 4.0)
    np.testing.assert_allclose(replaced, face, atol=1e-3)  # the restored face over the whole band
    np.testing.assert_allclose(
        fuse_face(original, face, Fusion(1.0, detail=0.5), 4.0), (kept + replaced) / 2, atol=1e-3
    )
    lit = DegradationEstimate(1.2, 1.0, 1.0, 0.0, 0.5, scale=2.0, size=256)
    assert lit.photo_detail == 1.0 and replace(lit, luminance=0.05).photo_detail == 0.0
    assert 0.0 < replace(lit, luminance=0.15).photo_detail < 1.0


def test_a_bounded_estimate_keeps_every_setting() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        blur, noise, crop_noise, jpeg, luminance, photo_blur = rng.uniform(0, 1, 6) * (300, 40, 40, 2, 1, 300)
        size = int(rng.choice([64, 128, 512]))
        estimate = DegradationEstimate(
            blur, noise, crop_noise, jpeg, luminance, scale=1.0, size=size, photo_blur=photo_blur
        )
        bounded = estimate.bounded()
        assert bounded.blur <= max(estimate.blur, 1.27 * 256 / 64) and bounded.photo_blur <= 3.3
        for name in ("severity", "artefacts", "denoise", "deblur", "sharpen"):
            assert getattr(bounded, name) == pytest.approx(getattr(estimate, name), abs=1e-9)


@needs_photo
def test_a_moderately_blurred_large_face_is_deconvolved_back_towards_the_photo(
    photo: tuple[np.ndarray, np.ndarray],
) -> None:
    """A 250 px face blurred as ``bench_severity.py``'s moderate level is deblurred before the paste
    (sharper edges, nearer the clean face perceptually); mild and heavy blur are not."""
    from minerrestore.metrics.lpips import load_lpips, lpips_distance

    rgb, affine = photo
    estimates = {sigma: _estimate(photo, _blur(sigma)) for sigma in (1.0, 2.0, 6.0)}
    assert estimates[1.0].deblur == 0.0 and estimates[6.0].deblur == 0.0  # mild: kept; heavy: the network's
    assert 1.0 < estimates[2.0].deblur < 3.0 and estimates[2.0].denoise >= 4.0, estimates[2.0]
    moderate = {
        **_blur(2.0),
        "downsample": {"factor": 3.0},
        "noise": {"sigma": 8.0, "seed": 0},
        "jpeg": {"quality": 70},
    }
    degraded = apply_degradation(rgb, moderate)
    estimate = _estimate(photo, moderate)
    cleaned = clean_faces(degraded, [affine], 128, [estimate.denoise], [estimate.deblur])
    assert estimate_degradation(cleaned, affine, 128).photo_blur < estimate.photo_blur - 0.5
    box = _inner_box(rgb, affine)
    before, after = lpips_distance(
        np.stack([degraded[box], cleaned[box]]), np.stack([rgb[box]] * 2), load_lpips("alex")
    )
    assert after < before - 0.02, (before, after)
    assert np.array_equal(clean_faces(degraded, [affine], 128, [0.0], [0.0]), degraded)


@needs_photo
def test_a_face_lifted_from_the_dark_is_denoised_and_partly_restored(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, affine = photo
    plain = estimate_degradation(rgb, affine, 128)
    dark = (rgb // 8).astype(np.uint8)  # the photo as it was before an enhancement brightened it 8x
    lifted = estimate_degradation(rgb, affine, 128, original=dark)
    assert plain.lift == 1.0 and lifted.lift > 6.0
    assert lifted.denoise > 0.0 and 0.4 < lifted.severity < plain.severity + 0.6
    assert lifted.bounded().lift <= 6.0 and lifted.bounded().severity == lifted.severity


@needs_photo
def test_the_network_input_is_cleaned_more_where_the_face_is_dark(photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, _ = photo
    from minerrestore.face import detect_faces

    affine = estimate_affine(detect_faces(rgb)[0].landmarks, 256)

    def cleaning(params: dict, base: float = 3.0) -> float:
        degraded = apply_degradation(rgb, params) if params else rgb
        return input_cleaning(warp_affine(degraded, affine, (256, 256)), base)

    assert cleaning({}) == 3.0  # a clean, lit face: the training's cleaning
    assert cleaning({"noise": {"sigma": 15.0, "seed": 0}}) == 3.0  # grain alone does not raise it
    darkened = [{"lowlight": {"exposure": e, "gamma": 1.0, "shot": 0.0, "seed": 0}} for e in (0.85, 0.7, 0.3)]
    dark = [cleaning(params) for params in darkened]
    assert 3.0 < dark[0] < dark[1] < dark[2] == 10.0  # the darker, the more; capped
    assert cleaning(darkened[-1], base=0.0) == 0.0  # a model trained on raw input gets it raw
