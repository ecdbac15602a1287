"""Non-learned baselines the model card compares against: classical denoise-and-sharpen.

Its non-local means (:func:`nlm_denoise`) is also the light cleaning a restorer's input may be
given before the network (``RestorerConfig.input_denoise``, the same in training and ``restore``)
and the denoising of the photo's own face before the detail-keeping paste.

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
