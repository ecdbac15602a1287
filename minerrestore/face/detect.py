"""Face detection with 5 landmarks.

Two detectors, chosen by name in :data:`DETECTORS`:

* ``yunet`` (default, offline): YuNet (libfacedetection / OpenCV Zoo, MIT) through
  ``cv2.FaceDetectorYN``; its 230 kB ONNX file ships in ``weights/``.
* ``retinaface_resnet50``: RetinaFace-ResNet50 as in the official GFP-GAN pipeline, built
  from facexlib's ``RetinaFace`` class (facexlib, MIT; weights from
  Pytorch_Retinaface, MIT) and loaded from the user's ``detection_Resnet50_Final.pth``
  with ``weights_only=True``. Nothing is downloaded.

:func:`detect_faces` adds what upstream lacks: large images are detected on a reduced
copy (time and memory stay bounded; coordinates are mapped back), dark frames on
brightened copies at several scales whose detections are merged (the smaller copies are
denoised by the reduction), and every threshold is a parameter. Written for minerrestore;
the selection helpers mirror facexlib's ``get_largest_face`` / ``get_center_face``
(facexlib/utils/face_restoration_helper.py).
"""

from __future__ import annotations

import difflib
import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from minerrestore.errors import UsageError, WeightsError

DETECTION_MAX_SIDE = 2560
"""Longest image side detection runs at; larger images are detected on a reduced copy."""

DARK_LUMINANCE = 0.25
"""Mean luminance (0-1) under which a frame is detected on brightened copies."""

_YUNET_NMS = 0.3
_MERGE_IOU = 0.4
_YUNET_TOP_K = 5000
_RETINAFACE_NMS = 0.4


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: (x0, y0, x1, y1) in image pixels, float.
        score: detector confidence in [0, 1].
        landmarks: (5, 2) float32 (x, y): left eye, right eye, nose tip, left and right
            mouth corner, as seen in the image (the order of ``FFHQ_TEMPLATE_512``).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        """Box centre (x, y)."""
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: box, score and landmarks as plain floats, rounded to 0.01 px."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": np.round(self.landmarks.astype(np.float64), 2).tolist(),
        }


class FaceDetector(Protocol):
    """A loaded detector: a BGR uint8 image in, raw detections out."""

    name: str
    default_threshold: float

    def __call__(self, bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect faces scoring at least ``threshold``.

        Returns:
            boxes (N, 4) float32 x0, y0, x1, y1; scores (N,) float32; landmarks (N, 5, 2)
            float32 in template order.
        """
        ...


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN`` (not thread-safe: one instance per thread)."""

    name = "yunet"

    def __init__(self, net: cv2.FaceDetectorYN, default_threshold: float) -> None:
        self.net = net
        self.default_threshold = default_threshold

    @classmethod
    def from_file(cls, path: Path, default_threshold: float) -> YuNetDetector:
        """Load the ONNX model at ``path``."""
        try:
            net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), default_threshold, _YUNET_NMS, _YUNET_TOP_K)
        except cv2.error as exc:
            raise WeightsError(
                f"{path}: OpenCV cannot load this YuNet model ({exc.err})",
                hint="use the shipped weights/face_detection_yunet.onnx with opencv-python >= 4.8",
            ) from exc
        return cls(net, default_threshold)

    def __call__(self, bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        self.net.setScoreThreshold(threshold)
        _, found = self.net.detect(bgr)
        if found is None:
            found = np.zeros((0, 15), np.float32)
        found = found[np.isfinite(found).all(axis=1)]  # some noisy frames give NaN boxes scored 1.0
        boxes = found[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]  # x, y, w, h -> x0, y0, x1, y1
        # YuNet lists the subject's right eye first, which is the eye on the image's left.
        return boxes, found[:, 14].copy(), found[:, 4:14].reshape(-1, 5, 2).copy()


class RetinaFaceDetector:
    """facexlib's RetinaFace-ResNet50 with the official weights (optional)."""

    name = "retinaface_resnet50"

    def __init__(self, net: object, default_threshold: float) -> None:
        self.net = net
        self.default_threshold = default_threshold

    @classmethod
    def from_file(cls, path: Path, default_threshold: float, device: str = "cpu") -> RetinaFaceDetector:
        """Build facexlib's RetinaFace and load ``path`` safely (facexlib must be installed)."""
        import torch

        from minerrestore.models.files import load_state_dict

        retinaface_class = require_facexlib("facexlib.detection.retinaface", "RetinaFace")
        with warnings.catch_warnings():  # facexlib passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            net = retinaface_class(network_name="resnet50", half=False, device=torch.device(device))
        state = {key.removeprefix("module."): value for key, value in load_state_dict(path).items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not a RetinaFace-ResNet50 state dict ({exc})") from exc
        return cls(net.eval(), default_threshold)

    def __call__(self, bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            found = self.net.detect_faces(bgr, conf_threshold=threshold, nms_threshold=_RETINAFACE_NMS)
        found = np.asarray(found, dtype=np.float32).reshape(-1, 15)
        return found[:, :4].copy(), found[:, 4].copy(), found[:, 5:15].reshape(-1, 5, 2).copy()


def require_facexlib(module: str, attribute: str) -> Callable[..., object]:
    """Import an attribute of facexlib (optional dependency), after the basicsr shim."""
    import importlib

    import minerrestore.compat  # noqa: F401  (facexlib imports basicsr-era torchvision names)

    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise UsageError(
            f"{module} is needed for this model but facexlib is not installed ({exc})",
            hint="pip install facexlib, or use the default detector yunet",
        ) from exc


@dataclass(frozen=True)
class DetectorInfo:
    """A detector name's model file (its catalogue name), default threshold and loader."""

    weight: str
    default_threshold: float
    loader: Callable[[Path, float, str], FaceDetector]
    description: str


def _load_yunet(path: Path, default_threshold: float, device: str) -> FaceDetector:
    return YuNetDetector.from_file(path, default_threshold)  # OpenCV runs it on the CPU


DETECTORS: dict[str, DetectorInfo] = {
    "yunet": DetectorInfo(
        weight="yunet",
        default_threshold=0.7,
        loader=_load_yunet,
        description="YuNet (OpenCV), shipped, fast on CPU, finds faces down to about 12 px",
    ),
    "retinaface_resnet50": DetectorInfo(
        weight="retinaface-resnet50",
        default_threshold=0.97,  # the official GFP-GAN pipeline's value
        loader=RetinaFaceDetector.from_file,
        description="RetinaFace-ResNet50 (facexlib), the official GFP-GAN detector; user-supplied file",
    ),
}
"""Detector names accepted by :func:`load_detector` and ``--detector``."""


def detector_info(name: str) -> DetectorInfo:
    """The :class:`DetectorInfo` of ``name``; raises UsageError naming close matches."""
    if name in DETECTORS:
        return DETECTORS[name]
    close = difflib.get_close_matches(name, list(DETECTORS), n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(close)}?" if close else f"choose one of {', '.join(DETECTORS)}"
    raise UsageError(f"unknown face detector {name!r}", hint=hint)


@functools.lru_cache(maxsize=4)
def load_detector(name: str = "yunet", *, device: str = "cpu", path: str | None = None) -> FaceDetector:
    """Load a detector by name (cached: repeated calls return the same instance).

    Args:
        name: a key of :data:`DETECTORS`.
        device: torch device string for torch detectors (YuNet always runs on the CPU).
        path: model file to use instead of the registered one.

    Raises:
        UsageError: unknown name, or facexlib missing for RetinaFace.
        WeightsError: the model file is missing (the message says where to get it) or invalid.
    """
    from minerrestore.models.catalogue import resolve_file

    info = detector_info(name)
    model_path = Path(path) if path is not None else resolve_file(info.weight)
    return info.loader(model_path, info.default_threshold, device)


def detect_faces(
    rgb: np.ndarray,
    *,
    detector: str | FaceDetector = "yunet",
    threshold: float | None = None,
    min_face: float = 10.0,
    max_faces: int | None = None,
    max_side: int = DETECTION_MAX_SIDE,
    brighten_dark: bool = True,
) -> list[Face]:
    """Find faces and their 5 landmarks.

    Args:
        rgb: HxWx3 (or HxW grey) uint8 image.
        detector: a name of :data:`DETECTORS` or a detector from :func:`load_detector`.
        threshold: minimum score; None uses the detector's default (yunet 0.7, RetinaFace 0.97).
        min_face: faces whose box is narrower or shorter than this (image pixels) are dropped.
        max_faces: keep at most this many faces, the highest scoring ones.
        max_side: images whose longer side exceeds this are detected on a copy reduced to it.
        brighten_dark: when the mean luminance is under :data:`DARK_LUMINANCE`, detect on
            brightened copies at full, half and quarter size
            (:func:`~minerrestore.lowlight.detection_views`; the smaller ones are denoised by
            the reduction) and merge their detections (:func:`merge_detections`).

    Returns:
        Faces sorted by decreasing score, coordinates in the pixels of ``rgb``.
    """
    from minerrestore.lowlight import detection_views

    net = load_detector(detector) if isinstance(detector, str) else detector
    threshold = net.default_threshold if threshold is None else threshold
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR if rgb.ndim == 2 else cv2.COLOR_RGB2BGR)
    views = [(bgr, 1.0)]
    if brighten_dark and cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean() < DARK_LUMINANCE * 255:
        views = detection_views(bgr)
    found = []
    for view, view_scale in views:
        boxes, scores, landmarks = net(view, threshold)
        if view_scale != 1.0:  # back to the detection frame's pixel grid (pixel-centre convention)
            boxes = (boxes + 0.5) / view_scale - 0.5
            landmarks = (landmarks + 0.5) / view_scale - 0.5
        found.append((boxes, scores, landmarks))
    boxes, scores, landmarks = merge_detections(found) if len(found) > 1 else found[0]
    if scale < 1.0:  # back to the input's pixel grid
        boxes = (boxes + 0.5) / scale - 0.5
        landmarks = (landmarks + 0.5) / scale - 0.5
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = np.flatnonzero((scores >= threshold) & (sizes >= min_face))
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_faces]
    return [Face(tuple(float(v) for v in boxes[i]), float(scores[i]), landmarks[i].astype(np.float32)) for i in keep]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) x0, y0, x1, y1 box with (N, 4) boxes."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum((box[2] - box[0]) * (box[3] - box[1]) + areas - inter, 1e-9)


def merge_detections(
    found: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], iou: float = _MERGE_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the detections of several views of one frame.

    Greedy non-maximum suppression over all views; a kept face gets the best score of its
    group and the score-weighted mean box and landmarks of the group (views at several
    scales agree on a face and average their landmark noise).

    Args:
        found: per view (boxes (N, 4), scores (N,), landmarks (N, 5, 2)), in one pixel grid.
        iou: boxes overlapping a kept box by more than this are its group.

    Returns:
        boxes, scores, landmarks of the merged faces.
    """
    boxes = np.concatenate([f[0] for f in found]).astype(np.float32).reshape(-1, 4)
    scores = np.concatenate([f[1] for f in found]).astype(np.float32)
    landmarks = np.concatenate([f[2] for f in found]).astype(np.float32).reshape(-1, 5, 2)
    order = np.argsort(-scores, kind="stable")
    free = np.ones(len(order), bool)
    kept_boxes, kept_scores, kept_landmarks = [], [], []
    for position, index in enumerate(order):
        if not free[position]:
            continue
        rest = order[position:][free[position:]]
        group = rest[box_iou(boxes[index], boxes[rest]) > iou]
        free[position:][np.isin(order[position:], group)] = False
        weights = scores[group] / scores[group].sum()
        kept_boxes.append((boxes[group] * weights[:, None]).sum(axis=0))
        kept_scores.append(scores[index])
        kept_landmarks.append((landmarks[group] * weights[:, None, None]).sum(axis=0))
    if not kept_scores:
        return boxes, scores, landmarks
    return np.stack(kept_boxes), np.asarray(kept_scores, np.float32), np.stack(kept_landmarks)


def get_largest_face(faces: Sequence[Face], image_size: tuple[int, int] | None = None) -> Face:
    """The face with the largest box area (boxes clipped to an image of (width, height) if given).

    Raises:
        ValueError: ``faces`` is empty.
    """
    if not faces:
        raise ValueError("no faces to choose from")
    boxes = np.array([face.box for face in faces], dtype=np.float64)
    if image_size is not None:
        boxes = np.clip(boxes, 0, [image_size[0], image_size[1], image_size[0], image_size[1]])
    return faces[int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))]


def get_center_face(faces: Sequence[Face], image_size: tuple[int, int]) -> Face:
    """The face whose box centre is nearest the centre of an image of (width, height).

    Raises:
        ValueError: ``faces`` is empty.
    """
    if not faces:
        raise ValueError("no faces to choose from")
    centres = np.array([face.center for face in faces], dtype=np.float64)
    return faces[int(np.argmin(np.hypot(*(centres - np.array(image_size) / 2.0).T)))]
