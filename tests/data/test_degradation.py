"""minerrestore.data.degradation and minerrestore.data.presets: ranges, basicsr equivalence, determinism."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from minerrestore.data.degradation import (
    KNOWN_STAGES,
    apply_degradation,
    apply_degradation_at_scale,
    gaussian_kernel,
    gaussian_taps,
    jpeg_roundtrip,
    motion_kernel,
    prepare_gt,
    sample_params,
)
from minerrestore.data.presets import SECTIONS, load_preset
from minerrestore.errors import ConfigError, UsageError


@pytest.fixture(scope="module")
def basicsr_degradations():
    """basicsr's degradation module, the reference we are held to."""
    import minerrestore.compat  # noqa: F401

    # isort: split
    from basicsr.data import degradations

    return degradations


def synthetic_face(rng: np.random.Generator, height: int = 72, width: int = 60) -> np.ndarray:
    """A smooth synthetic 'face': gradients plus a few discs, so blur and JPEG act as on photos."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.3 + 0.5 * xx, 0.4 + 0.3 * yy, 0.5 + 0.2 * xx * yy], axis=2) * 255
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = [int(c) for c in rng.integers(0, 256, 3)]
        cv2.circle(image, centre, int(rng.integers(3, 12)), colour, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- presets and draws


def test_paper_parameters_stay_in_range_over_many_draws() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_params("paper", rng) for _ in range(3000)]
    assert all(list(p) == ["blur", "downsample", "noise", "jpeg"] for p in draws)
    sigma = np.array([p["blur"]["sigma_x"] for p in draws])
    factor = np.array([p["downsample"]["factor"] for p in draws])
    noise = np.array([p["noise"]["sigma"] for p in draws])
    quality = np.array([p["jpeg"]["quality"] for p in draws])
    for values, (low, high) in ((sigma, (0.2, 10)), (factor, (1, 8)), (noise, (0, 15)), (quality, (60, 100))):
        assert low <= values.min() and values.max() <= high
        assert values.min() < low + 0.02 * (high - low) and values.max() > high - 0.02 * (high - low)
        assert values.mean() == pytest.approx((low + high) / 2, rel=0.05)  # uniform
    assert all(p["blur"]["sigma_y"] == p["blur"]["sigma_x"] and p["blur"]["kernel_size"] == 41 for p in draws)
    assert quality.dtype.kind == "i" and set(quality) == set(range(60, 101))


def test_miner_stages_follow_their_probabilities_and_ranges() -> None:
    preset = load_preset("miner")
    rng = np.random.default_rng(1)
    draws = [sample_params(preset, rng) for _ in range(3000)]
    counts = Counter(stage for p in draws for stage in p)
    for section, spec in preset.stages:
        assert counts[section] / len(draws) == pytest.approx(spec.prob, abs=0.035), section
    for p in draws:
        assert list(p) == [s for s in SECTIONS if s in p]  # application order
        if "lowlight" in p:
            assert 0.2 <= p["lowlight"]["exposure"] <= 0.7 and 1.0 <= p["lowlight"]["gamma"] <= 1.8
        if "dust" in p:
            assert 20 <= p["dust"]["specks"] <= 300 and 0 <= p["dust"]["haze"] <= 0.15
        if "motion" in p:
            assert 3 <= p["motion"]["length"] <= 21
        if "cast" in p:
            assert all(0.65 <= g <= 1.0 for g in p["cast"]["gains"]) and max(p["cast"]["gains"]) == 1.0
    json.dumps(draws)  # everything recorded is JSON


def test_mild_preset_draws_only_mild_paper_stages() -> None:
    preset = load_preset("mild")
    rng = np.random.default_rng(2)
    draws = [sample_params(preset, rng) for _ in range(500)]
    assert all(list(p) == ["blur", "downsample", "noise", "jpeg"] for p in draws)  # paper's stages only
    assert max(p["blur"]["sigma_x"] for p in draws) <= 1.5
    assert max(p["downsample"]["factor"] for p in draws) <= 2.0
    assert max(p["noise"]["sigma"] for p in draws) <= 5.0
    assert min(p["jpeg"]["quality"] for p in draws) >= 80


def test_every_preset_section_has_a_stage() -> None:
    assert set(KNOWN_STAGES) == set(SECTIONS)


def test_user_preset_inherits_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("base: miner\ngrey:\n  prob: 1.0\nmotion: null\nnoise:\n  sigma: [1, 2]\n")
    preset = load_preset(path)
    assert preset.spec("grey").prob == 1.0 and preset.spec("motion") is None
    assert preset.spec("noise").sigma == (1.0, 2.0) and preset.spec("blur").sigma == (0.2, 10.0)
    draws = [sample_params(preset, np.random.default_rng(seed)) for seed in range(50)]
    assert all("grey" in p and "motion" not in p and 1 <= p["noise"]["sigma"] <= 2 for p in draws)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blur:\n  sigma: [1, 2]\n  sigmaa: 3\n", r"unknown preset key 'blur\.sigmaa' \(did you mean blur\.sigma\?\)"),
        ("sharpen:\n  prob: 1\n", "unknown preset key 'sharpen' .*known: description, dust"),
        ("blur:\n  sigma: [3, 2]\n", r"blur\.sigma: range \[3\.0, 2\.0\] has low > high"),
        ("blur:\n  kernel_size: 41\n", "blur: needs sigma"),
        ("blur:\n  sigma: [1, 2]\n  kernel_size: 40\n", r"blur\.kernel_size: 40 must be odd"),
        ("noise:\n  sigma: 5\n", r"noise\.sigma: expected a list of 2 values"),
        ("jpeg:\n  quality: [50, 101]\n", r"jpeg\.quality: 101 is outside"),
        ("grey:\n  prob: 1.5\n", r"grey\.prob: 1\.5 is outside"),
        ("cast:\n  colours: []\n  strength: [0, 1]\n", r"cast\.colours: give a list of \[r, g, b\] triples"),
        ("- a\n- b\n", "mapping"),
        ("base: loop.yml\n", "circular 'base:' chain"),
        ("base: nowhere\n", "preset nowhere: no such file or shipped preset"),
    ],
)
def test_bad_presets_are_rejected_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "loop.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_preset(path)
    if "base" not in text:
        assert str(path) in str(info.value)


def test_unknown_preset_name() -> None:
    with pytest.raises(ConfigError, match="shipped presets: mild, miner, paper"):
        load_preset("nonesuch")
    with pytest.raises(ConfigError, match="did you mean miner"):
        load_preset("minr")


# --------------------------------------------------------------------------- stages against basicsr


def test_kernels_equal_basicsr(basicsr_degradations) -> None:
    for sigma_x, sigma_y, theta in ((0.2, 0.2, 0.0), (3.7, 3.7, 0.0), (10.0, 10.0, 0.0), (4.0, 1.5, 0.7)):
        ours = gaussian_kernel(41, sigma_x, sigma_y, theta)
        reference = basicsr_degradations.bivariate_Gaussian(41, sigma_x, sigma_y, theta, isotropic=sigma_x == sigma_y)
        assert np.abs(ours - reference).max() < 1e-7
    taps = gaussian_taps(41, 3.7)
    assert np.abs(np.outer(taps, taps) - gaussian_kernel(41, 3.7, 3.7, 0.0)).max() < 1e-7


def test_motion_kernel_is_a_normalised_line() -> None:
    kernel = motion_kernel(9.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    centre = kernel.shape[0] // 2
    assert kernel[centre].sum() > 0.9  # horizontal
    assert np.allclose(motion_kernel(9.0, 90.0), motion_kernel(9.0, 0.0).T, atol=1e-6)


def test_paper_pipeline_matches_a_basicsr_loop(basicsr_degradations, rng: np.random.Generator) -> None:
    """Without noise (whose draws differ), ours equals GFP-GAN's steps done with basicsr's functions."""
    gt = prepare_gt(synthetic_face(rng, 128, 128), 128)
    params = {
        "blur": {"kernel_size": 41, "sigma_x": 2.5, "sigma_y": 2.5, "theta": 0.0},
        "downsample": {"factor": 3.3},
        "jpeg": {"quality": 70},
    }
    ours = apply_degradation(gt, params).astype(np.float64)
    x = gt[..., ::-1].astype(np.float32) / 255  # basicsr works on BGR float
    x = cv2.filter2D(x, -1, basicsr_degradations.bivariate_Gaussian(41, 2.5, 2.5, 0.0))
    x = cv2.resize(x, (int(128 // 3.3), int(128 // 3.3)), interpolation=cv2.INTER_LINEAR)
    x = basicsr_degradations.add_jpg_compression(x, 70)
    x = cv2.resize(x, (128, 128), interpolation=cv2.INTER_LINEAR)
    reference = np.clip(x[..., ::-1] * 255, 0, 255)
    assert np.abs(ours - reference).mean() < 1.0
    assert np.abs(ours - reference).max() < 12


def test_jpeg_close_to_basicsr(basicsr_degradations, rng: np.random.Generator) -> None:
    image = synthetic_face(rng, 64, 64)
    for quality in (60, 80, 100):
        ours = jpeg_roundtrip(image, quality).astype(np.float64)
        theirs = basicsr_degradations.add_jpg_compression(image[..., ::-1].astype(np.float32) / 255, quality)
        assert np.abs(ours - theirs[..., ::-1] * 255).mean() < 1.0


def test_noise_has_the_drawn_std_and_is_grey_when_grey() -> None:
    flat = np.full((128, 128, 3), 128, np.uint8)
    noisy = apply_degradation(flat, {"noise": {"sigma": 10.0, "seed": 3}}).astype(np.float64)
    assert noisy.std() == pytest.approx(10.0, rel=0.05)
    assert not np.array_equal(noisy[..., 0], noisy[..., 1])
    grey = apply_degradation(flat, {"grey": {}, "noise": {"sigma": 10.0, "seed": 3}})
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    other = apply_degradation(flat, {"noise": {"sigma": 10.0, "seed": 4}})
    assert not np.array_equal(other, noisy.astype(np.uint8))


def test_miner_stages_do_what_they_say(rng: np.random.Generator) -> None:
    gt = prepare_gt(synthetic_face(rng), 64)
    dark = apply_degradation(gt, {"lowlight": {"exposure": 0.4, "gamma": 1.5, "shot": 0.0, "seed": 1}})
    assert dark.mean() < 0.5 * gt.mean()
    cast = apply_degradation(gt, {"cast": {"gains": [1.0, 0.9, 0.6]}})
    assert cast[..., 2].mean() < 0.7 * gt[..., 2].mean() and cast[..., 0].mean() == pytest.approx(
        gt[..., 0].mean(), abs=1
    )
    dust = {"specks": 200, "radius": 2.0, "darkness": 0.9, "haze": 0.0, "haze_level": 0.7, "seed": 2}
    dusty = apply_degradation(gt, {"dust": dust})
    assert (dusty.astype(int) - gt).min() < -100 and (dusty.astype(int) - gt).max() <= 1  # dark specks only
    hazy = apply_degradation(gt, {"dust": {**dust, "specks": 0, "haze": 0.5}})
    assert hazy.std() < 0.6 * gt.std()
    moved = apply_degradation(gt, {"motion": {"length": 9.0, "angle": 0.0}})
    assert np.abs(np.diff(moved.astype(int), axis=1)).mean() < np.abs(np.diff(moved.astype(int), axis=0)).mean()


def test_apply_is_deterministic_and_keeps_size(rng: np.random.Generator) -> None:
    gt = prepare_gt(synthetic_face(rng), 64)
    params = sample_params("miner", np.random.default_rng(9))
    first = apply_degradation(gt, params)
    assert first.shape == gt.shape and first.dtype == np.uint8
    assert np.array_equal(first, apply_degradation(gt, params))
    assert apply_degradation(gt[..., 0], params).shape == gt.shape  # HxW grey accepted
    with pytest.raises(ConfigError, match="unknown degradation stage"):
        apply_degradation(gt, {"sharpen": {}})


def test_degrading_at_a_larger_scale_is_milder_and_keeps_size(rng: np.random.Generator) -> None:
    gt = prepare_gt(synthetic_face(rng), 64)
    blur = {"kernel_size": 21, "sigma_x": 3.0, "sigma_y": 3.0, "theta": 0.0}
    params = {"blur": blur, "noise": {"sigma": 10.0, "seed": 1}}
    assert np.array_equal(apply_degradation_at_scale(gt, params, 1), apply_degradation(gt, params))
    errors = []
    for scale in (1, 2, 4):
        low = apply_degradation_at_scale(gt, params, scale)
        assert low.shape == gt.shape and low.dtype == np.uint8
        errors.append(np.abs(low.astype(int) - gt).mean())
    assert errors[0] > errors[1] > errors[2]  # the same blur and noise shrink with the face


def test_prepare_gt_crop_and_stretch(rng: np.random.Generator) -> None:
    image = synthetic_face(rng, 90, 60)
    cropped = prepare_gt(image, 60)
    assert cropped.shape == (60, 60, 3) and np.array_equal(cropped, image[15:75])
    assert prepare_gt(image, 32, "stretch").shape == (32, 32, 3)
    with pytest.raises(UsageError):
        prepare_gt(image, 32, "pad")
