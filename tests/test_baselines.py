"""The model card's classical baseline: non-local means plus unsharp mask; the plain-resize variant."""

from __future__ import annotations

import cv2
import numpy as np

from minerrestore.baselines import classical_restore, gaussian_deconvolve, unsharp_mask
from minerrestore.data.degradation import apply_degradation


def _smooth_face_like(size: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([120 + 80 * x, 90 + 60 * y, 150 - 50 * x * y], axis=2)
    cv2.circle(rgb, (size // 2, size // 2), size // 4, (200, 160, 140), -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_classical_restore_removes_noise_and_keeps_shape() -> None:
    clean = _smooth_face_like()
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    restored = classical_restore(noisy)
    assert restored.shape == noisy.shape and restored.dtype == np.uint8
    assert _psnr(restored, clean) > _psnr(noisy, clean) + 3


def test_grey_stays_grey_in_both_layouts() -> None:
    grey = cv2.cvtColor(_smooth_face_like(), cv2.COLOR_RGB2GRAY)
    three = classical_restore(np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(three[..., 0], three[..., 1]) and np.array_equal(three[..., 1], three[..., 2])
    assert np.array_equal(classical_restore(grey), three[..., 0])


def test_unsharp_mask_raises_edge_contrast() -> None:
    step = np.zeros((32, 32, 3), np.uint8)
    step[:, 16:] = 200
    sharpened = unsharp_mask(cv2.GaussianBlur(step, (0, 0), 2))
    assert sharpened[:, 17:19].mean() > cv2.GaussianBlur(step, (0, 0), 2)[:, 17:19].mean()


def test_gaussian_deconvolve_undoes_a_gaussian_blur_and_sigma_0_is_a_no_op() -> None:
    rng = np.random.default_rng(2)
    sharp = cv2.resize(rng.uniform(0, 255, (24, 24, 3)).astype(np.uint8), (96, 96), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    restored = gaussian_deconvolve(blurred, 2.0, balance=1e-3)  # no noise: little regularisation needed
    assert restored.shape == sharp.shape and restored.dtype == np.uint8
    assert _psnr(restored, sharp) > _psnr(blurred, sharp) + 3
    assert _psnr(gaussian_deconvolve(blurred, 1.0, balance=1e-3), sharp) < _psnr(restored, sharp)  # its own sigma
    assert _psnr(gaussian_deconvolve(blurred, 2.0), sharp) > _psnr(blurred, sharp) + 1.5  # the default balance
    assert gaussian_deconvolve(blurred, 0.0) is blurred


def test_plain_resize_differs_only_in_the_final_interpolation() -> None:
    gt = _smooth_face_like(64)
    down = {"downsample": {"factor": 4.0}}
    assert not np.array_equal(apply_degradation(gt, down), apply_degradation(gt, down, cv2.INTER_CUBIC))
    same_size = {"noise": {"sigma": 5.0, "seed": 3}}
    assert np.array_equal(apply_degradation(gt, same_size), apply_degradation(gt, same_size, cv2.INTER_CUBIC))
