"""Face restoration of whole photos: the library side of ``minerrestore restore``.

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

:func:`restore_paths` restores files and folders into ``restored_imgs/``, ``restored_faces/``,
``cropped_faces/`` and ``cmp/`` of an output folder with the batch conventions of
:mod:`minerrestore.batch` (progress, per-file errors, ``skip_existing`` resume) and writes
``report.json`` atomically. Under ``torchrun --nproc_per_node=N`` each process takes every
N-th file and rank 0 merges the reports.

Model files load through :func:`minerrestore.archs.checkpoints.load_restorer`: our restorers
(safetensors with the architecture in the metadata, written by
:func:`~minerrestore.archs.checkpoints.save_restorer` and ``minerrestore train``) by path, the
official GFP-GAN v1.3/v1.4 ``.pth`` files by name. Written for minerrestore (MIT).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import cv2
import numpy as np

from minerrestore.batch import BatchReport, ItemResult, run_batch, stderr_console
from minerrestore.device import resolve_device
from minerrestore.errors import UsageError, WeightsError
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
from minerrestore.face.detect import detector_info
from minerrestore.face.paste import DEFAULT_MASK_SHAPE, MASK_SHAPES, ColorMatch
from minerrestore.io import IMAGE_SUFFIXES, LoadedImage, atomic_write_text, list_images, read_image, write_image
from minerrestore.weights import find_weight

if TYPE_CHECKING:  # torch loads when a model does, so that `minerrestore --help` starts fast
    import torch
    from torch import nn

DEFAULT_MODEL = "default"
"""The shipped restorer (scheme D, 128 px; weights/MODEL_CARD.md)."""

MODEL_NAMES: dict[str, str] = {
    DEFAULT_MODEL: "restorer.d128",
    "a128": "restorer.a128",
    "gfpgan-v1.3": "gfpgan.v1_3",
    "gfpgan-v1.4": "gfpgan.v1_4",
}
"""``--model`` names -> their :mod:`minerrestore.weights` entries: the shipped default (scheme D),
its scheme-A ablation twin, and the official GFP-GAN files (supplied by the user)."""

SAVE_KINDS = ("restored_imgs", "restored_faces", "cropped_faces", "cmp")
"""Output sub-folders: whole restored photos, restored aligned faces, aligned input faces,
input | output side by side."""

DEFAULT_SAVE = ("restored_imgs",)
OUTPUT_EXTENSIONS = ("auto", "png", "jpg")
REPORT_NAME = "report.json"

_DIST_TIMEOUT = timedelta(days=7)  # ranks wait for the slowest one before the report merge
_NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".bmp")
_MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
_RUN_EXPORT = "restorer_ema.safetensors"  # minerrestore.train.EMA_EXPORT (not imported: train is heavy)


# ============================================================================ model files


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A restorer network ready for inference.

    Attributes:
        net: the network in eval mode, on its device, gradients off.
        name: what was asked for (``default``, ``gfpgan-v1.4`` or a path).
        path: the file loaded.
        config: its architecture (:class:`~minerrestore.archs.restorer.RestorerConfig`).
    """

    net: nn.Module
    name: str
    path: Path
    config: Any

    @property
    def size(self) -> int:
        """Side of the network's square input and output."""
        return int(self.config.out_size)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for reports."""
        return {
            "name": self.name,
            "path": str(self.path),
            "config": self.config.to_dict(),
            "parameters": sum(p.numel() for p in self.net.parameters()),
        }


def resolve_model_path(model: str | Path) -> Path:
    """The file behind a ``--model`` value: ``default``, an official name, a training run folder or a path.

    Raises:
        WeightsError: the file is missing (the message says how to get or pass one) or the
            name is unknown (close names are suggested).
    """
    text = str(model)
    if text.lower() in MODEL_NAMES:
        return find_weight(MODEL_NAMES[text.lower()])
    path = Path(text).expanduser()
    if path.is_dir() and (path / _RUN_EXPORT).is_file():
        return path / _RUN_EXPORT
    if path.is_file():
        return path
    names = list(MODEL_NAMES)
    if path.suffix.lower() in _MODEL_SUFFIXES or os.sep in text:
        raise WeightsError(f"{path}: no such model file", hint=f"give an existing file or one of {', '.join(names)}")
    close = difflib.get_close_matches(text.lower(), names, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known names: {', '.join(names)}; or give a file path"
    raise WeightsError(f"unknown model {text!r}", hint=hint)


def load_model(model: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> LoadedModel:
    """Build and load a restorer for inference.

    Args:
        model: ``default`` (the shipped scheme-D model), ``gfpgan-v1.3`` / ``gfpgan-v1.4`` (the
            official files, by name), a training run folder, or a restorer file that
            :func:`minerrestore.archs.checkpoints.load_restorer` reads (ours: safetensors with
            the architecture in the metadata, else inferred from the shapes; official
            GFPGANv1Clean ``.pth``).
        device: where the network runs.

    Raises:
        WeightsError: missing, unreadable or mismatched model file.
    """
    path = resolve_model_path(model)
    import torch

    from minerrestore.archs.checkpoints import load_restorer

    net = load_restorer(path)
    net = net.eval().requires_grad_(False).to(torch.device(device))
    return LoadedModel(net, str(model), path, net.config)


# ============================================================================ one image


@dataclass(eq=False)
class RestoredFace:
    """One face of a restored photo.

    Attributes:
        index: position in the photo's face list (best detection first).
        face: the detection (box, score, 5 landmarks); None for ``aligned`` input.
        affine: (2, 3) image -> crop transform.
        cropped: (S, S, 3) uint8 RGB aligned input face, S the network's size.
        restored: (S, S, 3) uint8 RGB restored face.
    """

    index: int
    face: Any
    affine: np.ndarray
    cropped: np.ndarray
    restored: np.ndarray

    def to_dict(self, image_size: tuple[int, int]) -> dict[str, Any]:
        """JSON-ready: index, box, score, landmarks (an aligned input's box is the whole image)."""
        if self.face is None:
            return {
                "index": self.index,
                "box": [0.0, 0.0, float(image_size[0]), float(image_size[1])],
                "score": None,
                "landmarks": None,
            }
        return {"index": self.index, **self.face.to_dict()}


@dataclass(eq=False)
class RestoreResult:
    """A restored photo.

    Attributes:
        image: (H*upscale, W*upscale, 3) uint8 RGB (channels equal when ``is_grey``).
        alpha: the input's alpha enlarged the same way, (H*upscale, W*upscale) uint8, or None.
        is_grey: the input was grey (the output is too).
        faces: the restored faces, best detection first.
        input_size: (width, height) of the input.
        timings: seconds per stage (``detect``, ``align``, ``network``, ``paste``).
    """

    image: np.ndarray
    alpha: np.ndarray | None
    is_grey: bool
    faces: list[RestoredFace]
    input_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: sizes, grey, alpha, faces (box, score, landmarks), timings."""
        return {
            "input_size": list(self.input_size),
            "output_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "grey": self.is_grey,
            "alpha": self.alpha is not None,
            "faces": [face.to_dict(self.input_size) for face in self.faces],
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
        }


def as_loaded_image(image: np.ndarray | LoadedImage) -> LoadedImage:
    """Wrap an array (HxW grey, HxWx3 RGB or HxWx4 RGBA uint8) as a :class:`LoadedImage`.

    An RGB array counts as grey when its three channels are equal.

    Raises:
        UsageError: not a uint8 image array.
    """
    if isinstance(image, LoadedImage):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UsageError(f"expected a uint8 HxW, HxWx3 or HxWx4 image, got {array.dtype} {array.shape}")
    if array.ndim == 2:
        return LoadedImage(rgb=np.repeat(array[..., None], 3, axis=2), is_grey=True)
    alpha = np.ascontiguousarray(array[..., 3]) if array.shape[2] == 4 else None
    rgb = np.ascontiguousarray(array[..., :3])
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return LoadedImage(rgb=rgb, alpha=alpha, is_grey=grey)


@dataclass(eq=False)
class Restorer:
    """Restore every face of photos: detect, align, restore in batches, paste back.

    Building a Restorer only checks the settings; the network and the detector load on first
    use (or with :meth:`load`). A Restorer pickles as its settings, so worker processes build
    their own (once per process).

    Args:
        model: ``default``, ``gfpgan-v1.3``, ``gfpgan-v1.4``, a run folder or a model file
            (see :func:`load_model`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        detector: face detector name (``yunet``, ``retinaface_resnet50``).
        det_threshold: detection score threshold; None uses the detector's default.
        min_face: faces whose box side is under this many pixels are ignored.
        max_faces: restore at most this many faces per photo (highest scores).
        only_center_face: restore only the face nearest the photo's centre.
        aligned: inputs already are FFHQ-aligned faces (no detection, no paste back).
        fidelity: 0 (pure prior) ... 1 (full conditioning on the input, the trained behaviour).
        upscale: output size factor; the background is enlarged with Lanczos.
        batch_size: faces per network forward (bounds memory on photos with many faces).
        precision: ``auto`` (bfloat16 where native), ``float32`` or ``bfloat16``.
        color_match: ``mean`` (LAB mean of each pasted face matched to the original:
            lightness by a gain, colour by a shift),
            ``meanstd`` or ``none``.
        parse: paste with ParseNet face masks (needs ``parsing_parsenet.pth`` and facexlib;
            about 6 s per face on a CPU).
        paste_mask: without ``parse``, ``oval`` pastes the face only (forehead to chin, hair
            and background stay the photo's) and ``square`` the whole aligned crop (GFP-GAN's).
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
    fidelity: float = 1.0
    upscale: float = 2.0
    batch_size: int = 4
    precision: str = "auto"
    color_match: str = "mean"
    parse: bool = False
    paste_mask: str = DEFAULT_MASK_SHAPE
    _loaded: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from minerrestore.archs.precision import PRECISIONS

        color_modes = get_args(ColorMatch)

        self.model = str(self.model)
        if not 0.0 <= self.fidelity <= 1.0:
            raise UsageError(f"fidelity must be in [0, 1], got {self.fidelity}")
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
        detector_info(self.detector)  # raises on unknown names

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

    def restore(self, image: np.ndarray | LoadedImage) -> RestoreResult:
        """Restore every face of one photo (or one aligned face when ``aligned``).

        Args:
            image: HxWx3 uint8 RGB (HxW grey, HxWx4 RGBA accepted) or a :class:`LoadedImage`.

        Returns:
            :class:`RestoreResult` with the enlarged restored photo, its alpha, the faces
            (detection, crops) and per-stage timings.
        """
        self.load()
        loaded = as_loaded_image(image)
        rgb = loaded.rgb
        size = self.network.size
        timings: dict[str, float] = {}
        aligned = self._align(rgb, size, timings)
        clock = time.perf_counter()
        restored = self.restore_crops([item.crop for item in aligned])
        timings["network"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if loaded.is_grey:  # the network may tint a grey face; keep the saved crops grey
            restored = [np.repeat(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for face in restored]
        output = self._paste(rgb, aligned, restored, loaded.is_grey)
        alpha = None if loaded.alpha is None else upscale_image(loaded.alpha, self.upscale)
        timings["paste"] = time.perf_counter() - clock
        faces = [
            RestoredFace(index, item.face, item.affine, item.crop, face)
            for index, (item, face) in enumerate(zip(aligned, restored, strict=True))
        ]
        return RestoreResult(output, alpha, loaded.is_grey, faces, loaded.size, timings)

    def _align(self, rgb: np.ndarray, size: int, timings: dict[str, float]) -> list[Any]:
        if self.aligned:
            timings["detect"] = 0.0
            clock = time.perf_counter()
            aligned = [aligned_input(rgb, size)]
            timings["align"] = time.perf_counter() - clock
            return aligned
        clock = time.perf_counter()
        faces = detect_faces(
            rgb,
            detector=self._loaded["detector"],
            threshold=self.det_threshold,
            min_face=self.min_face,
            max_faces=None if self.only_center_face else self.max_faces,
        )
        if self.only_center_face and faces:
            faces = [get_center_face(faces, (rgb.shape[1], rgb.shape[0]))]
        timings["detect"] = time.perf_counter() - clock
        clock = time.perf_counter()
        aligned = []
        for face in faces:
            try:
                aligned.extend(align_faces(rgb, [face], size))
            except ValueError:  # degenerate landmarks: not a face that can be aligned
                continue
        timings["align"] = time.perf_counter() - clock
        return aligned

    def restore_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run aligned faces through the network, ``batch_size`` at a time.

        Args:
            crops: (S, S, 3) uint8 RGB aligned faces, S the network's size.

        Returns:
            (S, S, 3) uint8 RGB restored faces, in order.
        """
        import torch

        from minerrestore.archs.precision import autocast

        model = self.network
        device = self._loaded["device"]
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.stack(crops[start : start + self.batch_size])).to(device)
            with torch.inference_mode(), autocast(self.precision, device):
                x = batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
                y = model.net(x, fidelity=self.fidelity).image
                y = y.float().clamp_(-1.0, 1.0).add_(1.0).mul_(127.5).round_().to(torch.uint8)
            restored.extend(y.permute(0, 2, 3, 1).contiguous().cpu().numpy())
        return restored

    def _paste(self, rgb: np.ndarray, aligned: list[Any], restored: list[np.ndarray], grey: bool) -> np.ndarray:
        if self.aligned:  # the photo is the face: the restored face, enlarged to the output size
            height, width = upscaled_size(rgb.shape[0], rgb.shape[1], self.upscale)
            return _resize(restored[0], (height, width))
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
            mask_shape=self.paste_mask,
        )


@functools.lru_cache(maxsize=4)
def _restorer_in_process(settings: tuple[tuple[str, Any], ...]) -> Restorer:
    """Unpickling a Restorer: one instance per settings per process (workers load once)."""
    return Restorer(**dict(settings))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to (height, width): area when shrinking, Lanczos when enlarging."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


# ============================================================================ files and folders


@dataclass(frozen=True)
class ImageTask:
    """One input file and the stem of its outputs (its path relative to the input root, no suffix)."""

    path: Path
    stem: str

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class OutputLayout:
    """Where the outputs of an image go.

    Attributes:
        out_dir: the output folder.
        save: sub-folders written, a subset of :data:`SAVE_KINDS`.
        ext: ``auto`` (restored photo in the input's format, PNG when it has alpha; faces and
            cmp in PNG), ``png`` or ``jpg``.
        suffix: appended to output names as ``_<suffix>``.
    """

    out_dir: Path
    save: tuple[str, ...] = DEFAULT_SAVE
    ext: str = "auto"
    suffix: str | None = None

    def _name(self, stem: str, index: int | None, extension: str, suffixed: bool = True) -> str:
        name = stem if index is None else f"{stem}_{index:02d}"
        if suffixed and self.suffix:
            name += f"_{self.suffix}"
        return name + extension

    def image_path(self, task: ImageTask, has_alpha: bool = False) -> Path:
        """Path of the restored photo."""
        if self.ext != "auto":
            extension = f".{self.ext}"
        else:
            extension = task.path.suffix.lower()
            if extension not in IMAGE_SUFFIXES or (has_alpha and extension in _NO_ALPHA_SUFFIXES):
                extension = ".png"
        return self.out_dir / "restored_imgs" / self._name(task.stem, None, extension)

    def face_path(self, kind: str, task: ImageTask, index: int) -> Path:
        """Path of face ``index`` in ``restored_faces`` or ``cropped_faces``."""
        extension = ".png" if self.ext == "auto" else f".{self.ext}"
        return self.out_dir / kind / self._name(task.stem, index, extension, suffixed=kind == "restored_faces")

    def cmp_path(self, task: ImageTask) -> Path:
        """Path of the side-by-side comparison."""
        extension = ".png" if self.ext == "auto" else f".{self.ext}"
        return self.out_dir / "cmp" / self._name(task.stem, None, extension)

    def is_done(self, task: ImageTask) -> bool:
        """Whether the output written last for ``task`` exists (``skip_existing``).

        That is the restored photo (in either format ``auto`` may have chosen), else the
        comparison, else the first face.
        """
        if "restored_imgs" in self.save:
            return any(self.image_path(task, has_alpha).exists() for has_alpha in (False, True))
        if "cmp" in self.save:
            return self.cmp_path(task).exists()
        return self.face_path(self.save[0], task, 0).exists()


def parse_save(save: str | Iterable[str]) -> tuple[str, ...]:
    """``restored_imgs,cmp`` (or ``all``) -> a tuple of :data:`SAVE_KINDS`, in their order.

    Raises:
        UsageError: an unknown or empty selection.
    """
    names = [part.strip() for part in (save.split(",") if isinstance(save, str) else save) if part.strip()]
    if names == ["all"]:
        return SAVE_KINDS
    unknown = [name for name in names if name not in SAVE_KINDS]
    if unknown or not names:
        raise UsageError(
            f"--save {','.join(names)!r} names no known output" + (f" ({', '.join(unknown)})" if unknown else ""),
            hint=f"choose from {','.join(SAVE_KINDS)} or all",
        )
    return tuple(kind for kind in SAVE_KINDS if kind in names)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def collect_tasks(inputs: Sequence[str | Path], out_dir: Path, recursive: bool = False) -> list[ImageTask]:
    """The images of ``inputs`` (files and folders), sorted, each with a unique output stem.

    Stems are paths relative to the input folder (or to the common folder of listed files);
    inputs whose stems collide (``a.jpg`` and ``a.png``) keep their extension in the stem.
    Files found inside the output sub-folders (earlier outputs) are ignored.

    Raises:
        UsageError: no images, or an input named explicitly that lies in an output sub-folder.
    """
    output_folders = [_absolute(out_dir).resolve() / kind for kind in SAVE_KINDS]

    def in_outputs(path: Path) -> bool:
        resolved = path.resolve()
        return any(folder == resolved or folder in resolved.parents for folder in output_folders)

    entries: list[tuple[Path, str]] = []  # (file as given, stem)
    loose: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if in_outputs(path):
            raise UsageError(f"{item}: input is inside an output folder of {out_dir}", hint="choose another --out")
        if path.is_dir():
            files = [f for f in list_images(path, recursive) if not in_outputs(f)]
            entries += [(f, f.relative_to(path).with_suffix("").as_posix()) for f in files]
        else:
            loose.append(path)  # a missing file becomes a per-file error
    if loose:
        common = Path(os.path.commonpath([str(_absolute(p).parent) for p in loose]))
        entries += [(p, _absolute(p).relative_to(common).with_suffix("").as_posix()) for p in loose]
    if not entries:
        raise UsageError(
            f"no images found in {', '.join(str(i) for i in inputs) or 'the input list'}",
            hint=f"image files end in {', '.join(IMAGE_SUFFIXES)}; use --recursive for sub-folders",
        )
    seen: set[Path] = set()
    unique = []
    for path, stem in sorted(entries, key=lambda entry: str(entry[0])):
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((path, stem))
    counts: dict[str, int] = {}
    for _, stem in unique:
        counts[stem] = counts.get(stem, 0) + 1
    tasks = [ImageTask(p, f"{s}_{p.suffix.lstrip('.').lower()}" if counts[s] > 1 else s) for p, s in unique]
    stems = [task.stem for task in tasks]
    if len(set(stems)) != len(stems):
        clash = next(stem for stem in stems if stems.count(stem) > 1)
        raise UsageError(f"two inputs would write the same outputs {clash}", hint="rename one of them")
    return tasks


@dataclass(frozen=True)
class _FileJob:
    restorer: Restorer
    layout: OutputLayout
    threads: int | None = None  # torch threads in a worker process


def _restore_file(job: _FileJob, task: ImageTask) -> dict[str, Any]:
    """Restore one file and write its outputs (restored photo last); the report entry of the file."""
    import torch

    if job.threads is not None and torch.get_num_threads() != job.threads:
        torch.set_num_threads(job.threads)
    layout = job.layout
    clock = time.perf_counter()
    loaded = read_image(task.path)
    read_seconds = time.perf_counter() - clock
    result = job.restorer.restore(loaded)
    clock = time.perf_counter()
    protect = (task.path,)
    outputs: dict[str, Any] = {}
    for kind, attribute in (("cropped_faces", "cropped"), ("restored_faces", "restored")):
        if kind in layout.save:
            paths = [layout.face_path(kind, task, face.index) for face in result.faces]
            for path, face in zip(paths, result.faces, strict=True):
                write_image(path, getattr(face, attribute), grey=loaded.is_grey, protect=protect)
            outputs[kind] = [str(path) for path in paths]
    if "cmp" in layout.save:
        pair = np.concatenate([_resize(loaded.rgb, result.image.shape[:2]), result.image], axis=1)  # input | output
        outputs["cmp"] = str(write_image(layout.cmp_path(task), pair, grey=loaded.is_grey, protect=protect))
    notes = list(loaded.notes)
    if "restored_imgs" in layout.save:
        path = layout.image_path(task, has_alpha=result.alpha is not None)
        if result.alpha is not None and path.suffix.lower() in _NO_ALPHA_SUFFIXES:
            notes.append(f"alpha channel dropped: {path.suffix} cannot store it")
        outputs["restored_imgs"] = str(
            write_image(path, result.image, alpha=result.alpha, grey=loaded.is_grey, protect=protect)
        )
    info = result.to_dict()
    info["timings"] = {
        "read": round(read_seconds, 4),
        **info["timings"],
        "write": round(time.perf_counter() - clock, 4),
    }
    return {**info, "outputs": outputs, "notes": notes}


# ============================================================================ torchrun


def distributed_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's ``RANK`` / ``WORLD_SIZE`` (0, 1 when not under torchrun).

    Raises:
        UsageError: malformed values.
    """
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise UsageError(f"RANK / WORLD_SIZE are not integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """The share of process ``rank``: every ``world_size``-th item starting at ``rank``."""
    return list(items[rank::world_size])


def merge_reports(parts: Sequence[Mapping[str, Any]], order: Sequence[str], description: str) -> BatchReport:
    """One :class:`BatchReport` from the ``to_dict()`` of every rank, items in ``order``.

    Args:
        parts: ``BatchReport.to_dict()`` of each process.
        order: item names (input paths) in the order of the whole run.
        description: label of the merged report.
    """
    results = {item["item"]: ItemResult(**item) for part in parts for item in part["items"]}
    position = {name: index for index, name in enumerate(order)}
    ordered = sorted(results.values(), key=lambda r: position.get(r.item, len(position)))
    return BatchReport(description, ordered, max((float(part["seconds"]) for part in parts), default=0.0))


def _gather_reports(report: BatchReport, rank: int, world: int) -> list[dict[str, Any]] | None:
    """Every rank's report on rank 0 (None elsewhere), over torch.distributed (gloo)."""
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=_DIST_TIMEOUT)
    try:
        parts: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(report.to_dict(), parts, dst=0)
        return parts
    finally:
        if created:
            dist.destroy_process_group()


# ============================================================================ the batch


def _previous_entries(path: Path) -> dict[str, dict[str, Any]]:
    """Entries of an earlier report.json by input (for images skipped on resume); {} if unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {entry["item"]: entry for entry in document.get("items", []) if entry.get("status") == "done"}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return {}


def restore_paths(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    restorer: Restorer | None = None,
    save: str | Iterable[str] = DEFAULT_SAVE,
    ext: str = "auto",
    suffix: str | None = None,
    recursive: bool = False,
    skip_existing: bool = False,
    workers: int = 1,
    quiet: bool = False,
) -> BatchReport:
    """Restore image files and folders into ``out_dir``; write ``out_dir/report.json``.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) each process restores every ``WORLD_SIZE``-th
    file and rank 0 writes the merged report.

    Args:
        inputs: a file, a folder, or a list of them.
        out_dir: output folder; sub-folders of ``save`` are created in it.
        restorer: the pipeline settings (default: ``Restorer()``).
        save: sub-folders to write (:data:`SAVE_KINDS`, ``"a,b"`` or ``"all"``).
        ext: ``auto``, ``png`` or ``jpg`` (see :class:`OutputLayout`).
        suffix: appended to restored output names.
        recursive: descend into sub-folders of folder inputs (the structure is mirrored).
        skip_existing: skip images whose restored photo (or first output) already exists.
        workers: processes; 1 (default) lets torch use every core for the network.
        quiet: no progress bar or per-failure lines.

    Returns:
        The :class:`~minerrestore.batch.BatchReport` (merged over ranks on rank 0); each
        item's ``info`` holds faces (box, score, landmarks), timings, outputs and notes.

    Raises:
        UsageError: bad options or inputs. WeightsError: a missing or invalid model file.
    """
    if ext not in OUTPUT_EXTENSIONS:
        raise UsageError(f"--ext {ext!r} is not one of {', '.join(OUTPUT_EXTENSIONS)}")
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    out_dir = Path(out_dir)
    layout = OutputLayout(out_dir, parse_save(save), ext, suffix or None)
    restorer = restorer or Restorer()
    import torch

    rank, world = distributed_env()
    if world > 1 and restorer.device == "auto" and torch.cuda.is_available():
        restorer = dataclasses.replace(restorer, device=f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}")
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    tasks = collect_tasks(inputs, out_dir, recursive)
    header = restorer.load().describe()  # fails fast on a missing model, before any file
    threads = max(1, torch.get_num_threads() // workers) if workers > 1 else None
    process = functools.partial(_restore_file, _FileJob(restorer, layout, threads))
    skip = layout.is_done if skip_existing else None
    description = "restore" if world == 1 else f"restore (rank {rank} of {world})"
    report = run_batch(
        shard(tasks, rank, world), process, workers=workers, description=description, quiet=quiet, skip=skip
    )
    if world > 1:
        parts = _gather_reports(report, rank, world)
        if parts is None:
            return report
        report = merge_reports(parts, [str(task) for task in tasks], "restore")
    report_path = out_dir / REPORT_NAME
    previous = _previous_entries(report_path) if skip_existing else {}
    for result in report.skipped:
        result.info = previous.get(result.item, {}).get("info", {})
    document = {
        **report.to_dict(),
        **header,
        "world_size": world,
        "save": list(layout.save),
        "ext": ext,
        "suffix": suffix or None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report_path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    if not quiet and world > 1:
        stderr_console.print(f"report of {world} processes: {report_path}")
    return report


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SAVE",
    "MODEL_NAMES",
    "OUTPUT_EXTENSIONS",
    "REPORT_NAME",
    "SAVE_KINDS",
    "ImageTask",
    "LoadedModel",
    "OutputLayout",
    "RestoreResult",
    "RestoredFace",
    "Restorer",
    "as_loaded_image",
    "collect_tasks",
    "distributed_env",
    "load_model",
    "merge_reports",
    "parse_save",
    "resolve_model_path",
    "restore_paths",
    "shard",
]
