"""Face restoration of whole photos: the pipeline behind ``minerrestore restore``.

:class:`Restorer` runs the pipeline of the official GFP-GAN inference (``gfpgan/utils.py``
``GFPGANer.enhance``, Apache-2.0, TencentARC; ANCHORS.md) with the helpers of
:mod:`minerrestore.face` and a restorer network of :mod:`minerrestore.archs.restorer`:
detect faces and 5 landmarks, align them onto the FFHQ template at the network's size,
restore them in batches, paste them back into the Lanczos-enlarged photo with a soft mask
and colour matching. Differences from upstream, all deliberate: the faces of one photo go
through the network in batches of ``batch_size`` under ``torch.inference_mode``; a
``fidelity`` that works; grey photos stay grey and alpha channels are kept (enlarged with
the photo); a failing network raises instead of silently pasting the unrestored face; nothing
is downloaded.

Files and folders (output folders, ``report.json``, torchrun) are :mod:`minerrestore.restore_files`.
Model files load through :func:`minerrestore.models.catalogue.load_model`: a catalogue name
(``default`` = ``d256``, ``a256``, ``d128``, the official ``gfpgan-v1.3`` / ``gfpgan-v1.4``), a training
run folder or a restorer file. Written for minerrestore (MIT).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np

from minerrestore.background import BG_UPSAMPLERS, DEFAULT_TILE
from minerrestore.baselines import nlm_denoise
from minerrestore.device import resolve_device
from minerrestore.errors import UsageError
from minerrestore.face import (
    align_faces,
    aligned_input,
    detect_faces,
    face_masks,
    get_center_face,
    load_detector,
    load_face_parser,
    paste_faces,
    upscale_image,
    upscaled_size,
)
from minerrestore.face.detect import Face, detector_info
from minerrestore.face.paste import DEFAULT_MASK_SHAPE, MASK_SHAPES, ColorMatch, Fusion, clean_faces, fuse_face
from minerrestore.io import LoadedImage, grey_rgb
from minerrestore.lowlight import LowLightSteady, check_mode, enhance_low_light, is_dark
from minerrestore.models.catalogue import DEFAULT_MODEL, LoadedModel, load_model
from minerrestore.severity import DegradationEstimate, estimate_degradation, input_cleaning

AUTO_FIDELITY = "auto"

EstimateSteady = Callable[[int, DegradationEstimate], DegradationEstimate]
"""Called by :meth:`Restorer.restore` with each face's position (in ``faces``, or in the
detections) and its measured estimate, returning the estimate to restore it with (a video:
averaged over the face's track, so its strength, denoising and sharpening do not jump)."""


@dataclass(eq=False)
class RestoredFace:
    """One face of a restored photo.

    Attributes:
        index: position in the photo's face list (best detection first).
        face: the detection (box, score, 5 landmarks); None for ``aligned`` input.
        affine: (2, 3) image -> crop transform.
        cropped: (S, S, 3) uint8 RGB aligned input face, S the network's size.
        restored: (S, S, 3) uint8 RGB restored face (the network's output).
        estimate: the blind degradation estimate of the input face
            (:func:`~minerrestore.severity.estimate_degradation`; in a video, averaged over
            the face's track), the one its strength, denoising and sharpening came from.
        strength: the share of the network's face in the result (its severity with
            ``fidelity="auto"``, else 1).
    """

    index: int
    face: Any
    affine: np.ndarray
    cropped: np.ndarray
    restored: np.ndarray
    estimate: DegradationEstimate | None = None
    strength: float = 1.0

    def to_dict(self, image_size: tuple[int, int]) -> dict[str, Any]:
        """JSON-ready: index, box, score, landmarks (an aligned input's box is the whole image),
        the degradation estimate and the network's share."""
        if self.face is None:
            found = {"box": [0.0, 0.0, float(image_size[0]), float(image_size[1])], "score": None, "landmarks": None}
        else:
            found = self.face.to_dict()
        degradation = None if self.estimate is None else self.estimate.to_dict()
        return {"index": self.index, **found, "degradation": degradation, "strength": round(self.strength, 4)}


@dataclass(eq=False)
class RestoreResult:
    """A restored photo.

    Attributes:
        image: (H*upscale, W*upscale, 3) uint8 RGB (channels equal when ``is_grey``).
        alpha: the input's alpha enlarged the same way, (H*upscale, W*upscale) uint8, or None.
        is_grey: the input was grey (the output is too).
        faces: the restored faces, best detection first.
        input_size: (width, height) of the input.
        timings: seconds per stage (``detect``, ``align``, ``network``, ``enhance``, ``paste``).
        low_light: the parameters of the whole-frame low-light enhancement
            (:func:`~minerrestore.lowlight.enhance_low_light`), None where it did not run.
    """

    image: np.ndarray
    alpha: np.ndarray | None
    is_grey: bool
    faces: list[RestoredFace]
    input_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    low_light: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: sizes, grey, alpha, face count, faces (box, score, landmarks),
        low-light parameters, timings."""
        return {
            "input_size": list(self.input_size),
            "output_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "grey": self.is_grey,
            "alpha": self.alpha is not None,
            "face_count": len(self.faces),
            "faces": [face.to_dict(self.input_size) for face in self.faces],
            "low_light": self.low_light,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
        }


def as_loaded_image(image: np.ndarray | LoadedImage) -> LoadedImage:
    """Wrap an array (HxW grey, HxWx3 RGB or HxWx4 RGBA uint8) as a :class:`LoadedImage`.

    Greyness and alpha are decided as for files (:meth:`LoadedImage.from_array`).

    Raises:
        UsageError: not a uint8 image array.
    """
    if isinstance(image, LoadedImage):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UsageError(f"expected a uint8 HxW, HxWx3 or HxWx4 image, got {array.dtype} {array.shape}")
    return LoadedImage.from_array(array)


@dataclass(eq=False)
class Restorer:
    """Restore every face of photos: detect, align, restore in batches, paste back.

    Building a Restorer only checks the settings; the network and the detector load on first
    use (or with :meth:`load`). A Restorer pickles as its settings, so worker processes build
    their own (once per process).

    Args:
        model: a restorer name (``default`` = ``d256``, ``a256``, ``d128``, ``gfpgan-v1.3``,
            ``gfpgan-v1.4``), a run folder or a model file
            (see :func:`~minerrestore.models.catalogue.load_model`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        detector: face detector name (``yunet``, ``retinaface_resnet50``).
        det_threshold: detection score threshold; None uses the detector's default.
        min_face: faces whose box side is under this many pixels are ignored.
        max_faces: restore at most this many faces per photo (highest scores).
        only_center_face: restore only the face nearest the photo's centre.
        aligned: inputs already are FFHQ-aligned faces (no detection, no paste back).
        fidelity: ``auto`` (per face, the network's share follows the face's blind degradation
            estimate, :mod:`minerrestore.severity`: a clean face passes almost unchanged, a
            severely degraded one is fully restored), or a fixed value from 0 (pure prior)
            to 1 (full conditioning on the input, the trained behaviour), the network's face
            then replacing the photo's.
        upscale: output size factor; the background is enlarged with Lanczos, or by
            ``bg_upsampler``.
        batch_size: faces per network forward (bounds memory on photos with many faces).
        precision: ``auto`` (bfloat16 where native), ``float32`` or ``bfloat16``.
        color_match: ``mean`` (LAB mean of each pasted face matched to the original:
            lightness by a gain, colour by a shift),
            ``meanstd`` or ``none``.
        parse: paste with ParseNet face masks (needs ``parsing_parsenet.pth`` and facexlib;
            about 6 s per face on a CPU).
        paste_mask: without ``parse``, ``oval`` pastes the face only (forehead to chin, hair
            and background stay the photo's) and ``square`` the whole aligned crop (GFP-GAN's).
        bg_upsampler: ``none`` (Lanczos) or ``realesrgan`` (Real-ESRGAN x2plus up to
            ``upscale`` 2, x4plus above: user files ``realesrgan-x2plus`` / ``-x4plus``;
            :mod:`minerrestore.background`).
        bg_tile: Real-ESRGAN tile side in input pixels (bounds memory; 0: untiled).
        low_light: whole-frame low-light enhancement (:mod:`minerrestore.lowlight`) of the
            photo the faces are pasted into and colour-matched against: ``auto`` where the
            mean luminance is under 0.2 (other photos come out exactly as without it),
            ``on`` always, ``off`` never. Faces are detected on the original frame (dark frames
            on brightened views) and the network is given them from it, dark, as it was trained
            (``miner`` low light; it re-lights them itself), while their estimate, cleaning
            and paste use the enhanced frame (measured on the ``dark`` level of
            ``benchmarks/bench_severity.py``; crops of the enhanced frame gave the network
            lifted, blotchy noise). Not for ``aligned`` input.
    """

    model: str | Path = DEFAULT_MODEL
    _: KW_ONLY
    device: str = "auto"
    detector: str = "yunet"
    det_threshold: float | None = None
    min_face: float = 10.0
    max_faces: int | None = None
    only_center_face: bool = False
    aligned: bool = False
    fidelity: float | str = "auto"
    upscale: float = 2.0
    batch_size: int = 4
    precision: str = "auto"
    color_match: str = "mean"
    parse: bool = False
    paste_mask: str = DEFAULT_MASK_SHAPE
    bg_upsampler: str = "none"
    bg_tile: int = DEFAULT_TILE
    low_light: str = "auto"
    _loaded: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from minerrestore.archs.precision import PRECISIONS

        color_modes = get_args(ColorMatch)

        self.model = str(self.model)
        self.fidelity = parse_fidelity(self.fidelity)
        if self.det_threshold is not None and not 0.0 < self.det_threshold < 1.0:
            raise UsageError(
                f"det_threshold must be between 0 and 1, got {self.det_threshold}", settings=("det_threshold",)
            )
        if not 1.0 <= self.upscale <= 16.0:
            raise UsageError(f"upscale must be from 1 to 16, got {self.upscale}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_faces is not None and self.max_faces < 1:
            raise UsageError(f"max faces must be at least 1, got {self.max_faces}")
        if self.min_face < 0:
            raise UsageError(f"min face must not be negative, got {self.min_face}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.color_match not in color_modes:
            raise UsageError(f"colour match {self.color_match!r} is not one of {', '.join(color_modes)}")
        if self.paste_mask not in MASK_SHAPES:
            raise UsageError(f"paste mask {self.paste_mask!r} is not one of {', '.join(MASK_SHAPES)}")
        if self.bg_upsampler not in BG_UPSAMPLERS:
            raise UsageError(f"bg upsampler {self.bg_upsampler!r} is not one of {', '.join(BG_UPSAMPLERS)}")
        if self.bg_tile < 0:
            raise UsageError(f"bg tile must not be negative, got {self.bg_tile}")
        detector_info(self.detector)  # raises on unknown names
        check_mode(self.low_light)
        if self.aligned and self.low_light == "on":
            raise UsageError("low light enhancement is for whole photos, not aligned faces", settings=("low_light",))

    # -- settings, pickling, loading

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _restorer_in_process, (tuple(self.settings().items()),)

    def load(self) -> Restorer:
        """Load the network, the detector and the parser now (else on first use); returns self.

        Raises:
            WeightsError: a model file is missing or invalid.
            UsageError: a bad device or detector.
        """
        if self._loaded:
            return self
        from minerrestore.archs.precision import resolve_precision

        device = resolve_device(self.device)
        loaded: dict[str, Any] = {"device": device, "dtype": resolve_precision(self.precision, device)}
        loaded["model"] = load_model(self.model, device)
        loaded["detector"] = None if self.aligned else load_detector(self.detector, device=str(device))
        loaded["parser"] = load_face_parser(device=str(device)) if self.parse and not self.aligned else None
        loaded["background"] = None
        if self.bg_upsampler == "realesrgan" and not self.aligned:
            from minerrestore.background import BackgroundUpsampler

            loaded["background"] = BackgroundUpsampler(device, self.bg_tile)
            loaded["background"].network(self.upscale)  # a missing file fails now, not per photo
        self._loaded.update(loaded)
        return self

    @property
    def network(self) -> LoadedModel:
        """The loaded restorer network (loads on first access)."""
        return self.load()._loaded["model"]

    def describe(self) -> dict[str, Any]:
        """Model, resolved device and precision, and settings, JSON-ready (loads the model)."""
        self.load()
        return {
            "model": self.network.describe(),
            "device": str(self._loaded["device"]),
            "compute_dtype": str(self._loaded["dtype"]).removeprefix("torch."),
            "settings": self.settings(),
        }

    # -- the pipeline

    def restore(
        self,
        image: np.ndarray | LoadedImage,
        faces: Sequence[Face] | None = None,
        *,
        steady_estimate: EstimateSteady | None = None,
        steady_low_light: LowLightSteady | None = None,
    ) -> RestoreResult:
        """Restore every face of one photo (or one aligned face when ``aligned``).

        Args:
            image: HxWx3 uint8 RGB (HxW grey, HxWx4 RGBA accepted) or a :class:`LoadedImage`.
            faces: the faces to restore instead of detecting them (video: tracked faces with
                smoothed landmarks, see :meth:`detect`); ignored when ``aligned``.
            steady_estimate: replaces each face's measured degradation estimate, hence its
                strength, denoising and sharpening (:data:`EstimateSteady`; video: per track).
            steady_low_light: replaces the low-light tone curve and colour gains
                (:data:`~minerrestore.lowlight.LowLightSteady`; video: per clip).

        Returns:
            :class:`RestoreResult` with the enlarged restored photo, its alpha, the faces
            (detection, crops) and per-stage timings.
        """
        self.load()
        loaded = as_loaded_image(image)
        rgb = loaded.rgb
        size = self.network.size
        timings: dict[str, float] = {}
        base, low_light = self._enhance(rgb, timings, steady_low_light)
        aligned, positions = self._align(rgb, size, timings, faces)
        clock = time.perf_counter()
        original = None if low_light is None else rgb
        estimates = [estimate_degradation(base, item.affine, size, original) for item in aligned]
        if steady_estimate is not None:
            estimates = [steady_estimate(p, e) for p, e in zip(positions, estimates, strict=True)]
        strengths = [self.strength(estimate) for estimate in estimates]
        timings["estimate"] = time.perf_counter() - clock
        clock = time.perf_counter()
        restored = self.restore_crops([item.crop for item in aligned])
        timings["network"] = time.perf_counter() - clock
        background = self._background(base, loaded.is_grey, timings)
        clock = time.perf_counter()
        if loaded.is_grey:  # the network may tint a grey face; keep the saved crops grey
            restored = [grey_rgb(face) for face in restored]
        fusions = [
            Fusion(strength, estimate.sharpen, estimate.photo_detail)
            for strength, estimate in zip(strengths, estimates, strict=True)
        ]
        affines = [item.affine for item in aligned]
        cleaned = clean_faces(base, affines, size, [e.denoise for e in estimates], [e.deblur for e in estimates])
        output = self._paste(base, cleaned, aligned, restored, loaded.is_grey, background, fusions)
        alpha = None if loaded.alpha is None else upscale_image(loaded.alpha, self.upscale)
        timings["paste"] = time.perf_counter() - clock
        restored_faces = [
            RestoredFace(index, item.face, item.affine, item.crop, face, estimate, strength)
            for index, (item, face, estimate, strength) in enumerate(
                zip(aligned, restored, estimates, strengths, strict=True)
            )
        ]
        return RestoreResult(output, alpha, loaded.is_grey, restored_faces, loaded.size, timings, low_light)

    def _enhance(
        self, rgb: np.ndarray, timings: dict[str, float], steady: LowLightSteady | None = None
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The frame to paste into: ``rgb``, or its low-light enhancement and parameters."""
        clock = time.perf_counter()
        if self.aligned or self.low_light == "off" or (self.low_light == "auto" and not is_dark(rgb, steady)):
            return rgb, None
        enhanced, params = enhance_low_light(rgb, steady)
        timings["enhance"] = time.perf_counter() - clock
        return enhanced, {"mode": self.low_light, **params}

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """The faces :meth:`restore` would restore in an HxWx3 uint8 RGB image, best first."""
        self.load()
        faces = detect_faces(
            rgb,
            detector=self._loaded["detector"],
            threshold=self.det_threshold,
            min_face=self.min_face,
            max_faces=None if self.only_center_face else self.max_faces,
        )
        if self.only_center_face and faces:
            faces = [get_center_face(faces, (rgb.shape[1], rgb.shape[0]))]
        return faces

    def _align(
        self,
        rgb: np.ndarray,
        size: int,
        timings: dict[str, float],
        faces: Sequence[Face] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """Detect faces on ``rgb`` (unless ``faces`` are given) and crop them from it (a dark
        photo's original frame, not its enhancement: the network re-lights faces itself).
        Returns the crops and each one's position in the faces (a face whose landmarks cannot
        be aligned is left out)."""
        if self.aligned:
            timings["detect"] = 0.0
            clock = time.perf_counter()
            aligned = [aligned_input(rgb, size)]
            timings["align"] = time.perf_counter() - clock
            return aligned, [0]
        clock = time.perf_counter()
        if faces is None:
            faces = self.detect(rgb)
        timings["detect"] = time.perf_counter() - clock
        clock = time.perf_counter()
        aligned, positions = [], []
        for position, face in enumerate(faces):
            try:
                aligned.extend(align_faces(rgb, [face], size))
            except ValueError:  # degenerate landmarks: not a face that can be aligned
                continue
            positions.append(position)
        timings["align"] = time.perf_counter() - clock
        return aligned, positions

    def strength(self, estimate: DegradationEstimate) -> float:
        """The network's share in a face: its severity with ``fidelity="auto"``, else 1."""
        return estimate.severity if self.fidelity == AUTO_FIDELITY else 1.0

    def restore_crops(self, crops: Sequence[np.ndarray], cleaning: Sequence[float] | None = None) -> list[np.ndarray]:
        """Run aligned faces through the network, ``batch_size`` at a time.

        Each face is first cleaned as the network's training inputs were, more where it is dark
        (:func:`~minerrestore.severity.input_cleaning`).

        Args:
            crops: (S, S, 3) uint8 RGB aligned faces, S the network's size.
            cleaning: per face, the non-local-means ``h`` to clean it with instead (0: none); for
                measuring other cleanings (``benchmarks/tune_input_cleaning.py``).

        Returns:
            (S, S, 3) uint8 RGB restored faces, in order.
        """
        import torch

        from minerrestore.archs.precision import autocast

        model = self.network
        device = self._loaded["device"]
        fidelity = 1.0 if self.fidelity == AUTO_FIDELITY else self.fidelity
        if cleaning is None:  # the cleaning of its training inputs (0: none), raised for dark faces
            cleaning = [input_cleaning(crop, model.config.input_denoise) for crop in crops]
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            part = zip(crops[start : start + self.batch_size], cleaning[start : start + self.batch_size], strict=True)
            inputs = [nlm_denoise(crop, strength) for crop, strength in part]
            batch = torch.from_numpy(np.stack(inputs)).to(device)
            with torch.inference_mode(), autocast(self._loaded["dtype"], device):
                x = batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
                y = model.net(x, fidelity=fidelity).image
                y = y.float().clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_().to(torch.uint8)
            restored.extend(y.permute(0, 2, 3, 1).contiguous().cpu().numpy())
        return restored

    def _background(self, rgb: np.ndarray, grey: bool, timings: dict[str, float]) -> np.ndarray | None:
        """The photo enlarged by the background upsampler (grey stays grey), or None for Lanczos."""
        upsampler = self._loaded["background"]
        if upsampler is None:
            return None
        clock = time.perf_counter()
        enlarged = upsampler.upsample(rgb, upscaled_size(rgb.shape[0], rgb.shape[1], self.upscale))
        enlarged = grey_rgb(enlarged) if grey else enlarged
        timings["background"] = time.perf_counter() - clock
        return enlarged

    def _paste(
        self,
        rgb: np.ndarray,
        cleaned: np.ndarray,
        aligned: list[Any],
        restored: list[np.ndarray],
        grey: bool,
        background: np.ndarray | None,
        fusions: list[Fusion],
    ) -> np.ndarray:
        """The output photo: restored faces merged into ``rgb`` (their own pixels from ``cleaned``)."""
        if self.aligned:  # the photo is the face: the restored face over the input, at the output size
            height, width = upscaled_size(rgb.shape[0], rgb.shape[1], self.upscale)
            original = resize_to(cleaned, (height, width)).astype(np.float32)
            face = resize_to(restored[0], (height, width)).astype(np.float32)
            scale = float(np.sqrt(height * width)) / restored[0].shape[0]
            fused = fuse_face(original, face, fusions[0], scale)
            return np.clip(np.rint(grey_rgb(fused) if grey else fused), 0, 255).astype(np.uint8)
        parser = self._loaded["parser"]
        masks = face_masks(restored, parser, batch_size=self.batch_size) if parser is not None and restored else None
        return paste_faces(
            rgb,
            restored,
            [item.affine for item in aligned],
            upscale=self.upscale,
            masks=masks,
            color_match=self.color_match,
            grey=grey,
            upscaled_background=background,
            mask_shape=self.paste_mask,
            fusions=fusions,
            cleaned=None if cleaned is rgb else cleaned,
        )


def parse_fidelity(value: float | str) -> float | str:
    """``"auto"``, or a fidelity in [0, 1] (a number, or its text as the command line gives it).

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, str) and value.strip().lower() == AUTO_FIDELITY:
        return AUTO_FIDELITY
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise UsageError(f"fidelity must be auto or a number from 0 to 1, got {value!r}", settings=("fidelity",))
    return number


@functools.lru_cache(maxsize=4)
def _restorer_in_process(settings: tuple[tuple[str, Any], ...]) -> Restorer:
    """Unpickling a Restorer: one instance per settings per process (workers load once)."""
    return Restorer(**dict(settings))


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to (height, width): area when shrinking, Lanczos when enlarging."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


__all__ = [
    "EstimateSteady",
    "RestoreResult",
    "RestoredFace",
    "Restorer",
    "as_loaded_image",
]
