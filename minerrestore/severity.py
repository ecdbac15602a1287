"""Blind, per-face degradation estimate: how blurred, noisy, JPEG-damaged and dark a face is.

Classical measurements on the face in the photo, a few milliseconds per face on a CPU, no
network and no reference:

* **blur**: the Gaussian-equivalent blur of the face's edges in pixels of a face aligned at
  :data:`ANALYSIS_SIZE` (so it is relative to the face, whatever its size in the photo; a face
  shot small, or enlarged from a small one, is blurred here). Measured by re-blurring (Zhuo &
  Sim 2011): at an edge blurred by ``s``, blurring again by ``s0`` lowers the gradient by
  ``sqrt(s^2 + s0^2) / s``; the median ratio over the face's strongest edges gives ``s``
  (after a median filter, so grain and dust specks are not taken for sharp edges).
* **photo_blur**: the same measurement on the face at the photo's own resolution, in its pixels
  (what :func:`~minerrestore.baselines.gaussian_deconvolve` undoes before the paste).
* **noise**: the std (0-255) of white luminance noise at the photo's own resolution, measured
  away from edges (Immerkaer's Laplacian-difference filter,
  :func:`~minerrestore.lowlight.noise_sigma`); **crop_noise** the same on the face aligned at
  :data:`REFERENCE_SIZE` (noise that was enlarged with a small photo is smooth at full size, grain
  at this scale).
* **jpeg**: blockiness, how much larger pixel steps are across the photo's 8x8 grid than
  inside it (0 for none; heavy JPEG reaches 0.5 and more).
* **luminance**: mean luminance (0-1) of the face in the frame it is pasted into (a dark photo's
  low-light enhancement, :mod:`minerrestore.lowlight`, has run by then: a face still dark after it
  is restored by the network; measured, on faces it brightened, the enhanced face kept identity
  better than the network's, dlib 0.390 against 0.401 on the `dark` level of `bench_severity.py`).
* **lift**: how many times the low-light enhancement brightened the face (1 when it did not run):
  a face lifted from the dark carries amplified, blotchy noise that is smooth at full size and
  texture-like at the network's, so neither noise measurement sees it; a lifted face is denoised
  and given to the network in part (measured on the ``dark`` level of ``bench_severity.py``, 12
  people: LPIPS 0.540 against 0.586, dlib 0.385 against 0.390).
* **scale**: pixels of the photo per pixel of the network's aligned face (above 1: the face is
  larger than the network's output, so the photo may hold detail the network cannot), and
  **size**, the network's crop side.

From these, :meth:`DegradationEstimate.severity` (0 clean ... 1 severely degraded, at the
:data:`REFERENCE_SIZE` scale: the network's share with ``--fidelity auto``) and
:meth:`DegradationEstimate.artefacts` (how much of the photo's own fine detail is noise, blocks
or blur rather than signal: how hard the photo's face is denoised and sharpened before the
detail-keeping paste, :func:`~minerrestore.face.paste.fuse_face`),
:meth:`DegradationEstimate.deblur` (the Gaussian blur a moderately blurred photo's face is
deconvolved by before that paste) and :meth:`DegradationEstimate.photo_detail` (how much of the
photo's finer detail that paste keeps: none on a face the network re-lights). Written for minerrestore (MIT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from minerrestore.face.align import (
    affine_scale,
    compose_affine,
    invert_affine,
    pixel_scale_affine,
    transformed_bounds,
    warp_affine,
)
from minerrestore.lowlight import noise_sigma

ANALYSIS_SIZE = 256
"""Side of the aligned face the blur is measured on (blur is in its pixels)."""
REFERENCE_SIZE = 128
"""Side of the aligned face the settings are derived at: the shipped 128 px network's crop, where
every threshold below was set. ``crop_noise`` and ``crop_blur`` are measured at this side whatever
the network's size, so a face gets the same settings from any model (with a 256 px network and
thresholds read in its own pixels, a clean face's own softness, 1.1-1.35 px, read as blur: the
defaults denoised and sharpened 97 % of the clean photos of ``bench_severity.py`` further from the
person)."""

_MEDIAN = 5  # median filter before the blur measurement (grain and dust are not edges)
_PRE_BLUR = 0.5  # its smoothing, analysis px
_REBLUR_SIGMA = 1.5  # the re-blur of the blur measurement, analysis px
_EDGE_SHARE = 0.05  # the strongest 5 % of gradients inside the face are its edges
_NOISE_EDGE_SHARE = 0.5  # noise is measured on the flatter half of the face
_JPEG_BLOCK = 8
_INNER_FACE = (0.3, 0.38, 0.7, 0.8)  # left, top, right, bottom of the inner face, fractions of the aligned crop
# Where each measurement starts to count as damage and where it is severe (REFERENCE_SIZE scale):
_BLUR_RANGE = (1.5, 2.9)  # analysis px; a clean face measures 1.1-1.35 (its own soft edges)
_NOISE_RANGE = (2.0, 10.0)  # std at the reference scale
_JPEG_RANGE = (0.15, 0.8)
_DARK_RANGE = (0.25, 0.08)  # luminance: 0.25 is not dark at all, 0.08 is very dark
_DETAIL_NOISE_RANGE = (2.5, 12.0)  # native noise std over which the photo's fine detail is noise
_DETAIL_BLUR_RANGE = (0.66, 1.03)  # blur in reference px over which finer detail in the photo is not signal
_DENOISE_FROM = 0.05  # artefact share under which the photo's face is left as it is
_DENOISE_FULL_NOISE = 10.0  # native noise std denoised at full strength
_DENOISE_H = (3.0, 15.0)  # non-local-means h from light to full strength
_SHARPEN = 0.5  # unsharp amount at full severity (see DegradationEstimate.sharpen)
_LIFT_RANGE = (2.0, 6.0)  # brightening by the low-light enhancement over which a face counts as lifted
# The network's input cleaning (input_cleaning), read on the network's aligned face:
_CLEAN_DARK = 7.0  # h added to a dark face (the network re-lights it, and its noise with it) ...
_CLEAN_DARK_RANGE = (0.6, 0.35)  # ... from not at all at this highlight level of the inner face to fully at this one
_CLEAN_HIGHLIGHT = 0.95  # the highlight level: this quantile of the inner face's luminance (0-1)
_CLEAN_MAX = 10.0  # the strongest cleaning (h 14 lost identity on every kind of face)
_LIFT_SHARE = 0.5  # the network's share of a fully lifted face
_LIFT_DENOISE = 0.6  # the denoising amount of a fully lifted face (h about 10)
_DENOISE_BLUR_RANGE = (0.91, 1.27)  # blur in reference px over which the photo's finest detail is enlarged artefacts
# The deconvolution of the photo's face (deblur), in the photo's pixels (photo_blur):
_DEBLUR_SOFTNESS = 1.7  # a sharp photo's own edges read up to this; only blur beyond it is undone
_DEBLUR_RANGE = (2.2, 2.5)  # photo blur over which deconvolution fades in (mild blur is left as it is) ...
_DEBLUR_FADE = (2.9, 3.3)  # ... and out (heavier blur comes with enlarged noise that it would amplify)
_DEBLUR_DENOISE_H = 4.0  # the least non-local-means h before deconvolving (its noise would be amplified)


@dataclass(frozen=True)
class DegradationEstimate:
    """What :func:`estimate_degradation` measured on one face (see the module docstring)."""

    blur: float
    noise: float
    crop_noise: float
    jpeg: float
    luminance: float
    scale: float
    size: int
    lift: float = 1.0
    photo_blur: float = 0.0

    @property
    def severity(self) -> float:
        """0 (clean at the reference scale) ... 1 (severely degraded): the share of the network's
        face in ``--fidelity auto``. The damages combine as independent chances: ``1 - prod(1 - s)``."""
        parts = (
            _ramp(self.blur, *_BLUR_RANGE),
            _ramp(self.crop_noise, *_NOISE_RANGE),
            _ramp(self.jpeg, *_JPEG_RANGE),
            _ramp(self.luminance, *_DARK_RANGE),
            _LIFT_SHARE * _ramp(self.lift, *_LIFT_RANGE),
        )
        return float(1.0 - np.prod([1.0 - part for part in parts]))

    @property
    def crop_blur(self) -> float:
        """The blur in pixels of the face at :data:`REFERENCE_SIZE` (``blur`` is in :data:`ANALYSIS_SIZE` pixels)."""
        return self.blur * REFERENCE_SIZE / ANALYSIS_SIZE

    @property
    def artefacts(self) -> float:
        """0 ... 1: how much of the photo's detail finer than the reference crop's pixels is not signal:
        0 for a clean face; more as noise and JPEG blocks make it up, and as the face is blurred
        at the reference scale (then nothing finer is real: what is there is artefacts)."""
        noisy = _ramp(self.noise, *_DETAIL_NOISE_RANGE)
        blocky = _ramp(self.jpeg, *_JPEG_RANGE)
        blurred = _ramp(self.crop_blur, *_DETAIL_BLUR_RANGE)
        return float(1.0 - (1.0 - noisy) * (1.0 - blocky) * (1.0 - blurred))

    @property
    def denoise(self) -> float:
        """Non-local-means strength ``h`` for the photo's face before the paste (0: left as it is).

        For noise, JPEG blocks, and a face so blurred at the reference scale that what is finer
        is the enlarged blocks and grain of a small photo. Not for a mildly blurred face: its
        remaining texture is identity (measured on the ``moderate`` level of
        ``benchmarks/bench_severity.py``: denoising alone moved the dlib distance from 0.14 to
        0.16). A face that is deconvolved (:attr:`deblur`) is denoised at least at h 4 first: the
        deconvolution would amplify its noise."""
        blurred = _ramp(self.crop_blur, *_DENOISE_BLUR_RANGE)
        lifted = _LIFT_DENOISE * _ramp(self.lift, *_LIFT_RANGE)
        amount = max(_ramp(self.noise, *_DETAIL_NOISE_RANGE), _ramp(self.jpeg, *_JPEG_RANGE), blurred, lifted)
        strength = 0.0
        if amount >= _DENOISE_FROM:
            amount = max(amount, min(self.noise / _DENOISE_FULL_NOISE, 1.0))
            strength = _DENOISE_H[0] + (_DENOISE_H[1] - _DENOISE_H[0]) * amount
        return max(strength, _DEBLUR_DENOISE_H) if self.deblur > 0.0 else strength

    @property
    def deblur(self) -> float:
        """Gaussian sigma (photo pixels) the photo's face is deconvolved by before the paste (0: none).

        The blur beyond a sharp photo's own softness, for a face moderately blurred at the
        photo's resolution: a face larger than the network's output keeps its own detail in the
        paste, and for such a face that detail was blurred away (the network does not deblur).
        Chosen on 30 training people's whole photos (``faces_hires``, none of the held-out people)
        at the levels of ``benchmarks/bench_severity.py``, with stage 3 of ``d256``; with today's
        ``d256`` and paste, ``benchmarks/tune_paste.py`` (its ``no_deblur``): at ``moderate``, LPIPS
        0.404 -> 0.383 and dlib distance 0.243 -> 0.234 (photos brought closer 23 % -> 47 %, pushed
        further 13 % -> 7 %), SSIM unchanged (0.7721 -> 0.7719); ``severe`` LPIPS 0.595 -> 0.585,
        dlib unchanged; ``clean`` unchanged. Mild blur is
        left alone (deconvolving it, denoised first, moved most photos further), and so is heavy
        blur (the deconvolution amplified its enlarged noise; the network does better there). The
        Wiener balance (:data:`~minerrestore.baselines.DECONVOLVE_BALANCE`) 0.03 rather than 0.01:
        0.01 gained more LPIPS (0.364) but cost SSIM (0.765), which the held-out card then showed
        too.
        """
        amount = _ramp(self.photo_blur, *_DEBLUR_RANGE) * (1.0 - _ramp(self.photo_blur, *_DEBLUR_FADE))
        if amount < _DENOISE_FROM:
            return 0.0
        return amount * float(np.sqrt(max(self.photo_blur**2 - _DEBLUR_SOFTNESS**2, 0.0)))

    @property
    def photo_detail(self) -> float:
        """Share of the photo's own detail finer than the network's output that the paste keeps
        (:class:`~minerrestore.face.paste.Fusion`'s ``detail``): all of it, less as the face is dark
        in the frame it is pasted into. The network re-lights a dark face; the photo's fine detail
        is still at the old brightness and would pull the re-lit face's texture back into the dark.

        Measured on 110 training people's faces aligned at 512 (``miner``, seed 77, ``restore
        --aligned --fidelity 1``, scored at 256; ``benchmarks/tune_paste.py``): LPIPS 0.494 -> 0.486,
        SSIM 0.693 -> 0.701; ``paper`` and whole photos at every level of ``bench_severity.py``
        (where a dark photo is enhanced before the paste) unchanged.
        """
        return 1.0 - _ramp(self.luminance, *_DARK_RANGE)

    @property
    def sharpen(self) -> float:
        """Unsharp-mask amount for the pasted face at the network's pixel scale (0: none): up to
        :data:`_SHARPEN` (0.5) for a fully damaged face.

        0.5 rather than 1: on 110 training people's faces aligned at 512 (``paper``, seed 77,
        ``restore --aligned --fidelity 1``, scored at 256; ``benchmarks/tune_paste.py``) the full
        amount cost SSIM (0.7913 -> 0.7893, under NLM + unsharp's 0.7906) for LPIPS (0.320 ->
        0.316); on 30 training people's whole photos it gained LPIPS (``severe`` 0.585 -> 0.573,
        ``moderate`` 0.383 -> 0.380) at the same dlib distance. None at all: SSIM 0.7930, LPIPS 0.324.
        """
        amount = max(self.severity, self.artefacts)
        return _SHARPEN * amount if amount >= _DENOISE_FROM else 0.0

    def bounded(self) -> DegradationEstimate:
        """The same estimate with blur, noise and blockiness capped where every setting derived
        from them is already at its limit (the settings are unchanged): what is averaged over a
        video's frames, where one flat frame's blur of :data:`ANALYSIS_SIZE` would otherwise
        hold the face at full severity for many frames."""
        crop_px = ANALYSIS_SIZE / REFERENCE_SIZE
        blur = max(_BLUR_RANGE[1], _DETAIL_BLUR_RANGE[1] * crop_px, _DENOISE_BLUR_RANGE[1] * crop_px)
        return replace(
            self,
            blur=min(self.blur, blur),
            noise=min(self.noise, max(_DETAIL_NOISE_RANGE[1], _DENOISE_FULL_NOISE)),
            crop_noise=min(self.crop_noise, _NOISE_RANGE[1]),
            jpeg=min(self.jpeg, _JPEG_RANGE[1]),
            lift=min(self.lift, _LIFT_RANGE[1]),
            photo_blur=min(self.photo_blur, _DEBLUR_FADE[1]),
        )

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready: the measurements, severity, artefacts, denoise, deblur, sharpen and photo_detail, rounded."""
        derived = {"severity": self.severity, "artefacts": self.artefacts, "denoise": self.denoise}
        paste = {"deblur": self.deblur, "sharpen": self.sharpen, "photo_detail": self.photo_detail}
        values = {**asdict(self), **derived, **paste}
        return {key: value if key == "size" else round(float(value), 4) for key, value in values.items()}


def input_cleaning(crop: np.ndarray, base: float) -> float:
    """Non-local-means ``h`` for one aligned face before a network trained on faces cleaned at ``base``.

    ``base`` (the model file's ``input_denoise``) is raised, up to h 10, for a dark face: one whose
    inner face's highlights (the 95th percentile of its luminance) are below 0.6 of full scale;
    the network re-lights such a face and its noise with it. Highlights, not the mean, so that a
    well-lit face of dark skin, which keeps its highlights, is not taken for an under-exposed one.
    A model trained on uncleaned input (``base`` 0) gets its input as it is.

    Chosen on 110 training people's faces (``faces_hires``, none of the held-out people), aligned,
    degraded (``paper``, ``miner``, seed 77) and restored at 512 with ``d256``, scored at 256
    (``benchmarks/tune_input_cleaning.py``), against ``base`` alone: ``miner`` LPIPS 0.508 -> 0.463,
    SSIM 0.655 -> 0.709, dlib distance 0.474 -> 0.467; ``paper`` as good (10 of 110 faces raised a
    little; LPIPS 0.318 -> 0.318, dlib 0.347 -> 0.347). Left out after measuring: a fixed h of 5 or
    more (costs ``paper`` identity); raising h for grain (white noise on the aligned face; best at h
    3 on ``paper``); raising it for a face the low-light enhancement brightened
    (:attr:`DegradationEstimate.lift`; on the ``dark`` level of ``benchmarks/bench_severity.py``,
    dlib 0.410 -> 0.414, 32 % of photos further against 24 %).

    Args:
        crop: (S, S, 3) uint8 RGB aligned face.
        base: the cleaning the network was trained with.
    """
    if base <= 0.0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    side = grey.shape[0]
    left, top, right, bottom = (round(v * side) for v in _INNER_FACE)
    highlights = float(np.quantile(grey[top:bottom, left:right], _CLEAN_HIGHLIGHT)) / 255.0
    raised = base + _CLEAN_DARK * _ramp(highlights, *_CLEAN_DARK_RANGE)
    return float(min(raised, max(base, _CLEAN_MAX)))


def _ramp(value: float, start: float, end: float) -> float:
    """Smoothstep from 0 at ``start`` to 1 at ``end`` (``end`` may be below ``start``)."""
    t = float(np.clip((value - start) / (end - start), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def estimate_degradation(
    rgb: np.ndarray, affine: np.ndarray, size: int, original: np.ndarray | None = None
) -> DegradationEstimate:
    """Measure how degraded the face at ``affine`` of a photo is.

    Args:
        rgb: HxWx3 uint8 RGB photo (the frame the face is pasted into: a dark photo's enhancement).
        affine: (2, 3) image -> crop transform of the face, for a crop of ``size``.
        size: side of the network's aligned crop.
        original: the photo before its low-light enhancement, when ``rgb`` is the enhanced one
            (gives ``lift``).

    Returns:
        The :class:`DegradationEstimate`.
    """
    scale = 1.0 / affine_scale(affine)
    wx0, wy0, wx1, wy1 = _window(affine, size, rgb.shape)  # only the face's part of the photo is read
    grey = cv2.cvtColor(rgb[wy0:wy1, wx0:wx1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    affine = compose_affine(affine, np.array([[1.0, 0.0, wx0], [0.0, 1.0, wy0]]))  # window -> crop
    x0, y0, x1, y1 = _face_region(affine, size, grey.shape)
    region = grey[y0:y1, x0:x1]
    if region.size < 64:
        return DegradationEstimate(blur=0.0, noise=0.0, crop_noise=0.0, jpeg=0.0, luminance=0.0, scale=scale, size=size)
    analysis = _aligned_at(grey, affine, size, ANALYSIS_SIZE)
    crop = _aligned_at(grey, affine, size, REFERENCE_SIZE)
    left, top, right, bottom = (round(v * REFERENCE_SIZE) for v in _INNER_FACE)
    luminance = float(region.mean()) / 255.0
    lift = 1.0
    if original is not None:
        dark = cv2.cvtColor(original[wy0 + y0 : wy0 + y1, wx0 + x0 : wx0 + x1], cv2.COLOR_RGB2GRAY).mean() / 255.0
        lift = luminance / max(float(dark), 1.0 / 255.0)
    return DegradationEstimate(
        blur=edge_blur(analysis, _inner_mask(ANALYSIS_SIZE)),
        noise=flat_noise(region),
        crop_noise=flat_noise(crop[top:bottom, left:right]),
        jpeg=blockiness(region, wx0 + x0, wy0 + y0),
        luminance=luminance,
        scale=scale,
        size=size,
        lift=lift,
        photo_blur=edge_blur(region),
    )


def _aligned_at(grey: np.ndarray, affine: np.ndarray, size: int, side: int) -> np.ndarray:
    """The face of ``grey`` (at ``affine``, for a crop of ``size``) aligned at ``side`` x ``side``."""
    to_side = compose_affine(pixel_scale_affine(side / size, side / size), affine)
    return warp_affine(grey, to_side, (side, side), border_mode=cv2.BORDER_REPLICATE)


def _window(affine: np.ndarray, size: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The photo's box (x0, y0, x1, y1) the crop of ``size`` (and its :data:`ANALYSIS_SIZE` and
    :data:`REFERENCE_SIZE` copies) covers, with the margin that
    :func:`~minerrestore.face.align.warp_affine` reads around it when it area-shrinks first
    (:data:`REFERENCE_SIZE` is the smaller of the two copies)."""
    smallest_scale = affine_scale(affine) * min(1.0, REFERENCE_SIZE / size)  # the smaller copy
    margin = int(np.ceil(2.0 / min(smallest_scale, 1.0))) + 2
    low, high = transformed_bounds(invert_affine(affine), (size, size))
    x0, y0 = np.maximum(np.floor(low).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(high).astype(int) + margin, (shape[1], shape[0]))
    return int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1))


def _face_region(affine: np.ndarray, size: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The photo's box (x0, y0, x1, y1) around the inner face (brows to mouth, cheek to cheek)."""
    left, top, right, bottom = (v * size for v in _INNER_FACE)
    to_image = compose_affine(invert_affine(affine), np.array([[1.0, 0.0, left], [0.0, 1.0, top]]))
    low, high = transformed_bounds(to_image, (round(right - left), round(bottom - top)))
    x0, y0 = np.maximum(np.floor(low).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(high).astype(int), (shape[1], shape[0]))
    return int(x0), int(y0), int(max(x1, x0)), int(max(y1, y0))


def _inner_mask(size: int) -> np.ndarray:
    """Where the inner face lies in an aligned crop of ``size`` (bool)."""
    left, top, right, bottom = (round(v * size) for v in _INNER_FACE)
    mask = np.zeros((size, size), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def edge_blur(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Gaussian-equivalent blur (px) of the strongest edges of a float32 grey image (re-blur ratio).

    A 5x5 median filter first removes what is not an edge of the face but would pass for a
    sharp one (grain, dust specks); the small smoothing after it is taken out in quadrature.
    """
    grey = cv2.GaussianBlur(cv2.medianBlur(grey, _MEDIAN), (0, 0), _PRE_BLUR)
    gradient = _gradient(grey)
    reblurred = _gradient(cv2.GaussianBlur(grey, (0, 0), _REBLUR_SIGMA))
    inside = gradient[mask] if mask is not None else gradient.ravel()
    threshold = np.quantile(inside, 1.0 - _EDGE_SHARE)
    edges = (gradient >= threshold) & (mask if mask is not None else True)
    if threshold <= 1e-3 or not edges.any():
        return float(ANALYSIS_SIZE)  # a flat face: nothing sharp at all
    ratio = float(np.median(gradient[edges] / np.maximum(reblurred[edges], 1e-3)))
    sigma = _REBLUR_SIGMA / np.sqrt(max(ratio * ratio - 1.0, 1e-4))
    return float(np.sqrt(max(sigma * sigma - _PRE_BLUR * _PRE_BLUR, 0.0)))


def flat_noise(grey: np.ndarray) -> float:
    """Std (0-255) of white noise in a float grey image, over its flatter half (edges excluded)."""
    gradient = _gradient(cv2.GaussianBlur(grey, (0, 0), 1.0))
    flat = gradient <= np.quantile(gradient, _NOISE_EDGE_SHARE)
    return noise_sigma(grey, flat)


def blockiness(grey: np.ndarray, x0: int = 0, y0: int = 0) -> float:
    """How much larger steps are across the 8x8 JPEG grid than inside it (0: no blocks).

    ``x0, y0`` is where ``grey`` lies in the photo, so the grid is the photo's own.
    """
    steps_x = np.abs(np.diff(grey, axis=1)).mean(axis=0)  # step between column j and j+1
    steps_y = np.abs(np.diff(grey, axis=0)).mean(axis=1)
    ratios = []
    for steps, origin in ((steps_x, x0), (steps_y, y0)):
        if steps.size < 2 * _JPEG_BLOCK:
            continue
        across = (np.arange(steps.size) + origin) % _JPEG_BLOCK == _JPEG_BLOCK - 1
        ratios.append(steps[across].mean() / max(float(steps[~across].mean()), 1e-3) - 1.0)
    return float(max(np.mean(ratios), 0.0)) if ratios else 0.0
