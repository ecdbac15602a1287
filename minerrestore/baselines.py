"""Non-learned baselines the model card compares against: classical denoise-and-sharpen.

Its non-local means (:func:`nlm_denoise`) is also the light cleaning a restorer's input may be
given before the network (``RestorerConfig.input_denoise``, the same in training and ``restore``)
and the denoising of the photo's own face before the detail-keeping paste, which
:func:`gaussian_deconvolve` also deblurs where it is moderately blurred.

``classical_restore`` is what an engineer without a face model would do: OpenCV's
non-local-means denoising (Buades et al. 2005) followed by an unsharp mask. Its parameters
are fixed, common defaults, not tuned on the validation faces. (The plain-resize baseline is
the degradation's own low-resolution image enlarged with bicubic interpolation:
``data.degradation.apply_degradation(..., resize_back=cv2.INTER_CUBIC)``.)
"""

from __future__ import annotations

import cv2
import numpy as np

NLM_STRENGTH = 10.0
"""Filter strength ``h`` of non-local means (OpenCV's documented example value)."""
NLM_TEMPLATE = 7
NLM_SEARCH = 21
UNSHARP_SIGMA = 1.5
UNSHARP_AMOUNT = 0.6
DECONVOLVE_BALANCE = 0.03
"""Wiener balance of :func:`gaussian_deconvolve`: the noise-to-signal power it assumes at every
frequency (where the blur's response falls below about its square root, it is not undone)."""


def unsharp_mask(rgb: np.ndarray, sigma: float = UNSHARP_SIGMA, amount: float = UNSHARP_AMOUNT) -> np.ndarray:
    """Sharpen: ``image + amount * (image - gaussian_blur(image, sigma))``, clipped to uint8."""
    image = rgb.astype(np.float32)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return np.clip(np.rint(image + amount * (image - blurred)), 0, 255).astype(np.uint8)


def nlm_denoise(rgb: np.ndarray, strength: float, template: int = NLM_TEMPLATE, search: int = NLM_SEARCH) -> np.ndarray:
    """OpenCV's colour non-local means on an HxWx3 uint8 RGB image (``h`` = ``strength`` for
    luminance and colour; it works in Lab, so a grey image may come back with channels 1 apart);
    ``rgb`` itself when ``strength`` is 0."""
    if strength <= 0.0:
        return rgb
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # OpenCV's colour version works in Lab from BGR
    denoised = cv2.fastNlMeansDenoisingColored(bgr, None, float(strength), float(strength), template, search)
    return np.ascontiguousarray(denoised[..., ::-1])


def gaussian_deconvolve(rgb: np.ndarray, sigma: float, balance: float = DECONVOLVE_BALANCE) -> np.ndarray:
    """Undo a Gaussian blur of ``sigma`` px: Wiener deconvolution of an HxWx3 uint8 image.

    Each channel's spectrum is multiplied by ``G / (G^2 + balance)``, ``G`` the blur's (real)
    frequency response; the image is mirrored at its borders first, so they do not ring.
    ``rgb`` itself when ``sigma`` is 0.
    """
    if sigma <= 0.0:
        return rgb
    import scipy.fft

    pad = int(np.ceil(4.0 * sigma)) + 8
    rows, cols = rgb.shape[:2]
    height = scipy.fft.next_fast_len(rows + 2 * pad, real=True)  # sizes the FFT is fast at
    width = scipy.fft.next_fast_len(cols + 2 * pad, real=True)
    padded = cv2.copyMakeBorder(rgb, pad, height - rows - pad, pad, width - cols - pad, cv2.BORDER_REFLECT_101)
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    response = np.exp(np.float32(-2.0 * (np.pi * sigma) ** 2) * (fx * fx + fy * fy))
    gain = (response / (response * response + np.float32(balance)))[..., None]
    spectrum = scipy.fft.rfft2(padded.astype(np.float32), axes=(0, 1))
    sharp = scipy.fft.irfft2(spectrum * gain, s=(height, width), axes=(0, 1))
    return np.clip(np.rint(sharp[pad : pad + rows, pad : pad + cols]), 0, 255).astype(np.uint8)


def classical_restore(rgb: np.ndarray, strength: float = NLM_STRENGTH) -> np.ndarray:
    """Non-local-means denoising, then an unsharp mask; grey input stays grey.

    Args:
        rgb: HxWx3 uint8 RGB (or HxW grey) image.
        strength: non-local-means filter strength ``h`` (luminance and colour).

    Returns:
        Restored uint8 image of the input's shape.
    """
    if rgb.ndim == 3 and not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        return unsharp_mask(nlm_denoise(rgb, strength))
    grey = np.ascontiguousarray(rgb if rgb.ndim == 2 else rgb[..., 0])
    sharpened = unsharp_mask(cv2.fastNlMeansDenoising(grey, None, strength, NLM_TEMPLATE, NLM_SEARCH))
    return sharpened if rgb.ndim == 2 else np.repeat(sharpened[..., None], 3, axis=2)
