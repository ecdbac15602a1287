"""Classical whole-frame low-light enhancement of dark pit-camera frames.

:func:`enhance_low_light` returns a bright, clean copy of a dark frame and the parameters it
estimated from the frame (JSON-ready, for ``report.json``):

1. signal-dependent sensor noise is made even by a square-root (Anscombe-like) transform,
   its level is estimated from the frame (Immerkaer's Laplacian estimator, at three sizes)
   and it is removed with non-local means, which keeps edges (:func:`denoise`);
2. exposure and tone curve: per channel ``out = (x / gain) ** (1 / gamma)``, with gain and
   gamma solved so that the frame's median luminance lands on :data:`TARGET_MEDIAN` and its
   99.5th percentile on :data:`TARGET_HIGH` (the inverse of the ``miner`` preset's
   ``exposure * x ** gamma``);
3. the lamp's colour cast is removed by partial grey-world gains (see :data:`MAX_CAST_GAIN`
   and :data:`CAST_STRENGTH`).

:func:`detection_views` makes the brightened and denoised copies detection runs on (cheap:
downscaling averages the noise away). :func:`is_dark` decides ``low_light="auto"``. Written
for minerrestore (MIT); no code from other projects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import cv2
import numpy as np

from minerrestore.errors import UsageError

LowLightMode = Literal["auto", "on", "off"]
LOW_LIGHT_MODES: tuple[str, ...] = get_args(LowLightMode)

DARK_MEAN = 0.2
"""Mean luminance (0-1) under which ``low_light="auto"`` enhances a frame."""

TARGET_MEDIAN = 0.45
"""Median luminance (0-1) of the enhanced frame."""

TARGET_HIGH = 0.96
"""Luminance (0-1) the frame's 99.5th percentile is mapped to."""

MAX_CAST_GAIN = 1.6
"""Largest grey-world gain of one channel relative to the others (a limit against
correcting a scene that really is one colour)."""

CAST_STRENGTH = 0.6
"""Share (as an exponent) of the grey-world correction applied: a scene is rarely grey on average
(measured on 4 held-out portraits at 14/255: 0.6 gains 1.4 dB over full grey world without a lamp
cast, and loses 0.1 dB with a warm one)."""

_GAMMA_RANGE = (1.0, 2.5)
_DENOISE_STRENGTH = 1.6  # non-local means h, in units of the estimated noise std
_DENOISE_FACTORS = (1, 2, 4)  # size reductions the noise is measured at
_SCALE_MARGIN = 1.3  # a halved size is chosen when the noise measured there is this much stronger
_HEAVY_NOISE = 6.0  # noise std (square-root domain, 0-255) over which denoising runs at half size or less
_DETECTION_MEAN = 0.45


def check_mode(mode: str) -> LowLightMode:
    """``mode`` if it is one of :data:`LOW_LIGHT_MODES`; raises UsageError otherwise."""
    if mode not in LOW_LIGHT_MODES:
        raise UsageError(f"low light {mode!r} is not one of {', '.join(LOW_LIGHT_MODES)}", settings=("low_light",))
    return mode  # type: ignore[return-value]


def mean_luminance(rgb: np.ndarray) -> float:
    """Mean luminance (0-1) of an HxWx3 uint8 RGB image."""
    return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean()) / 255.0


def is_dark(rgb: np.ndarray, steady: LowLightSteady | None = None) -> bool:
    """Whether ``low_light="auto"`` enhances this HxWx3 uint8 RGB frame; with ``steady``, decided
    on its ``"luminance"`` (a video: averaged over frames, so a clip near the threshold does not
    switch the enhancement on and off from frame to frame)."""
    luminance = mean_luminance(rgb)
    if steady is not None:
        luminance = float(steady("luminance", np.array([luminance]))[0])
    return luminance < DARK_MEAN


def noise_sigma(grey: np.ndarray, where: np.ndarray | None = None) -> float:
    """Std of white noise in an HxW float image (Immerkaer 1996: a Laplacian-difference filter),
    over the pixels ``where`` is true (HxW bool; None: all)."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(grey.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    inner = np.abs(response[1:-1, 1:-1])
    if where is not None:
        inner = inner[where[1:-1, 1:-1]]
    return float(np.sqrt(np.pi / 2.0) * inner.mean() / 6.0) if inner.size else 0.0


def denoise(rgb: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Remove signal-dependent noise from a dark HxWx3 uint8 RGB frame.

    The noise is measured in the square-root domain at full, half and quarter size. White
    noise halves with each halving of the size; noise enlarged with the frame (by a camera
    that upsamples, or a JPEG of a small frame) is smooth pixel to pixel and grows instead:
    it is removed with non-local means at the smallest size up to which it keeps growing,
    at half size or less when it is heavy (:data:`_HEAVY_NOISE`: what fine detail such noise leaves is not worth
    keeping its grain); the result is enlarged back (bicubic).

    Returns:
        The denoised frame as float32 0-1, the size reduction it was denoised at (1, 2 or
        4) and the noise std measured there (0-255 scale of the square-root domain).
    """
    root = np.sqrt(rgb.astype(np.float32) / 255.0) * 255.0
    height, width = root.shape[:2]
    grey = cv2.cvtColor(root, cv2.COLOR_RGB2GRAY)
    sigmas = {
        factor: noise_sigma(_reduce(grey, factor)) for factor in _DENOISE_FACTORS if min(height, width) >= 32 * factor
    }
    factor = 1
    for candidate, sigma in sigmas.items():  # white noise halves per halving; enlarged noise does not
        if candidate == 2 * factor and sigma > _SCALE_MARGIN * sigmas[factor]:
            factor = candidate
    if sigmas[1] > _HEAVY_NOISE and 2 in sigmas:
        factor = max(factor, 2)
    sigma = sigmas[factor]
    work = np.clip(_reduce(root, factor) + 0.5, 0, 255).astype(np.uint8)
    if sigma > 0.5:
        strength = float(_DENOISE_STRENGTH * sigma)
        work = cv2.fastNlMeansDenoisingColored(work, None, strength, strength, 5, 15)
    out = work.astype(np.float32)
    if factor > 1:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_CUBIC)
    # E[sqrt(x)]^2 = E[x] - Var[sqrt(x)]: add each channel's noise variance back (unbiased inverse)
    variance = np.array(
        [max(noise_sigma(root[..., c]), noise_sigma(_reduce(root[..., c], factor))) ** 2 for c in range(3)]
    )
    return (np.clip(out, 0.0, 255.0) ** 2 + variance.astype(np.float32)) / 255.0**2, factor, sigma


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-averaged copy ``factor`` times smaller (the image itself for 1)."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)


def tone_curve(grey: np.ndarray) -> tuple[float, float]:
    """Exposure gain and gamma of a dark frame, from its median and 99.5th-percentile luminance.

    Returns:
        (gain, gamma) such that ``(x / gain) ** (1 / gamma)`` maps the median to
        :data:`TARGET_MEDIAN` and the 99.5th percentile to :data:`TARGET_HIGH`.
    """
    median = max(float(np.percentile(grey, 50)), 1e-3)
    high = max(float(np.percentile(grey, 99.5)), median * 1.05, 1e-3)
    gamma = (np.log(high) - np.log(median)) / (np.log(TARGET_HIGH) - np.log(TARGET_MEDIAN))
    gamma = float(np.clip(gamma, *_GAMMA_RANGE))
    gain = float(median / TARGET_MEDIAN**gamma)
    return gain, gamma


def grey_world_gains(rgb: np.ndarray) -> np.ndarray:
    """Per-channel gains (3,) towards equal channel means (green fixed at 1): the grey-world gains,
    limited to :data:`MAX_CAST_GAIN`, to the power :data:`CAST_STRENGTH`."""
    means = np.maximum(rgb.reshape(-1, 3).mean(axis=0), 1e-4)
    gains = means[1] / means
    return (np.clip(gains / gains.min(), 1.0, MAX_CAST_GAIN) * gains.min()) ** CAST_STRENGTH


LowLightSteady = Callable[[str, np.ndarray], np.ndarray]
"""Called by :func:`enhance_low_light` with each parameter it estimated (``"tone"``: (gain, gamma);
``"colour_gains"``: the 3 channel gains), and by :func:`is_dark` with the frame's ``"luminance"``,
returning the one to use instead (a video: the values averaged over its frames, so the exposure
does not pump and the enhancement does not switch on and off)."""


def enhance_low_light(rgb: np.ndarray, steady: LowLightSteady | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Bright, clean copy of a dark frame: denoise, exposure and tone curve, cast removal.

    Args:
        rgb: HxWx3 uint8 RGB.
        steady: replaces the estimated tone curve and colour gains (see :data:`LowLightSteady`);
            None applies the frame's own.

    Returns:
        The enhanced HxWx3 uint8 RGB frame and its parameters (JSON-ready): input mean
        luminance, noise std, gain, gamma and the colour gains (those applied).
    """
    clean, factor, sigma = denoise(rgb)
    gain, gamma = tone_curve(cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY))
    if steady is not None:
        gain, gamma = (float(value) for value in steady("tone", np.array([gain, gamma])))
    bright = np.clip(clean / gain, 0.0, 1.0) ** (1.0 / gamma)
    gains = grey_world_gains(bright)
    if steady is not None:
        gains = np.asarray(steady("colour_gains", gains))
    out = np.clip(bright * gains.astype(np.float32), 0.0, 1.0)
    params = {
        "input_mean_luminance": round(mean_luminance(rgb), 4),
        "denoise_reduction": factor,
        "noise_sigma": round(sigma, 3),
        "gain": round(gain, 5),
        "gamma": round(gamma, 4),
        "colour_gains": [round(float(g), 4) for g in gains],
    }
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), params


def brighten_for_detection(bgr: np.ndarray) -> np.ndarray:
    """Gamma on the LAB lightness to a mean of 0.45, then CLAHE: a detection copy (HxWx3 uint8)."""
    mean = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean() / 255.0
    gamma = np.log(_DETECTION_MEAN) / np.log(np.clip(mean, 1e-3, _DETECTION_MEAN))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(cv2.LUT(lab[..., 0], lut))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def detection_views(bgr: np.ndarray, scales: tuple[float, ...] = (1.0, 0.5, 0.25)) -> list[tuple[np.ndarray, float]]:
    """Brightened copies of a dark BGR frame at several scales, for detection only.

    Each scale is an area-averaged (so denoised) copy; copies under 1 also get a light
    Gaussian smoothing before brightening. Scales that would make the frame shorter than
    32 px are left out.

    Returns:
        (view, scale) pairs; view coordinates divided by scale are the frame's.
    """
    views = []
    for scale in scales:
        if scale < 1.0 and min(bgr.shape[:2]) * scale < 32:
            continue
        if scale == 1.0:
            small = bgr
        else:
            size = (max(1, round(bgr.shape[1] * scale)), max(1, round(bgr.shape[0] * scale)))
            small = cv2.GaussianBlur(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), (0, 0), 0.7)
        views.append((brighten_for_detection(small), scale))
    return views


__all__ = [
    "DARK_MEAN",
    "LOW_LIGHT_MODES",
    "LowLightMode",
    "LowLightSteady",
    "brighten_for_detection",
    "check_mode",
    "detection_views",
    "enhance_low_light",
    "is_dark",
    "mean_luminance",
]
