"""Identity preservation: how close the face embeddings of restored and ground-truth faces are.

Three networks (:data:`minerrestore.metrics.IDENTITY_NETWORKS`; ``auto`` picks ArcFace when its
file is present, else MobileFaceNet):

- ``arcface``: GFP-GAN's ArcFace ResNet-18 (user-supplied ``arcface_resnet18.pth``), the
  network of the "Deg." (GFP-GAN) and "IDS" (VQFR, CodeFormer) columns of papers. As their
  evaluation script (VQFR ``calculate_cos_dist``) and GFP-GAN's identity loss do, the whole
  FFHQ-aligned face is turned grey and resized to 128x128 (:func:`arcface_input`); values are
  the cosine similarity and the angle in degrees.
- ``mobilefacenet``: the shipped MobileFaceNet (foamliu/MobileFaceNet, Apache-2.0): same
  cosine and angle, on the face warped from the FFHQ 5-point template, scaled to the image
  size, onto the ArcFace 112x112 template (:func:`face_crops`); unaligned inputs can be
  plainly resized to 112x112 (``aligned=False``), less reliably. Not numerically comparable
  with the ArcFace values of papers.
- ``dlib``: dlib's ResNet face descriptor (:class:`DlibIdentity`; optional packages
  ``dlib-bin`` and ``face-recognition-models``), a recogniser independent of any training
  loss: the Euclidean distance of the descriptors, lower is better, below 0.6 dlib calls
  two faces the same person.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from minerrestore.archs.identity import (
    ARCFACE_TEMPLATE_112,
    MOBILEFACENET_INPUT_SIZE,
    MobileFaceNet,
    ResNetArcFace,
    arcface_input,
    load_arcface_resnet18,
    load_mobilefacenet,
)
from minerrestore.errors import UsageError
from minerrestore.face.align import FFHQ_TEMPLATE_512
from minerrestore.metrics import IDENTITY_NETWORKS
from minerrestore.metrics._images import as_nchw

_FFHQ_SIZE = 512


def similarity_transform(source: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``source`` onto ``destination``.

    Args:
        source: (K, 2) points.
        destination: (K, 2) points.

    Returns:
        2 x 3 affine matrix for ``cv2.warpAffine``.
    """
    x, y = source[:, 0], source[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # u = a x - b y + tx ; v = b x + a y + ty
    design = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    target = np.concatenate([destination[:, 0], destination[:, 1]])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def ffhq_to_arcface(width: int, height: int) -> np.ndarray:
    """The 2 x 3 transform from an FFHQ-aligned ``width`` x ``height`` face to the ArcFace 112 crop."""
    template = FFHQ_TEMPLATE_512.astype(np.float64) * np.array([width / _FFHQ_SIZE, height / _FFHQ_SIZE])
    return similarity_transform(template, ARCFACE_TEMPLATE_112)


def face_crops(images: np.ndarray, aligned: bool = True) -> np.ndarray:
    """112x112 recogniser crops of face images.

    Aligned inputs are first shrunk with area averaging to the crop's scale (so the
    warp does not alias), then warped with the fixed FFHQ -> ArcFace transform.

    Args:
        images: N x H x W x 3 uint8 RGB face crops (one size).
        aligned: the faces follow the FFHQ template; False resizes the whole image instead.

    Returns:
        N x 112 x 112 x 3 uint8.
    """
    size = MOBILEFACENET_INPUT_SIZE
    height, width = images.shape[1:3]
    if not aligned:
        return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])
    matrix = ffhq_to_arcface(width, height)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 1:
        shrunk = (max(1, round(width * scale)), max(1, round(height * scale)))
        # a shrunk pixel p' covers original p = factor * (p' + 0.5) - 0.5
        factor = np.array([width / shrunk[0], height / shrunk[1]])
        linear = matrix[:, :2] * factor[None, :]
        offset = matrix[:, :2] @ (0.5 * factor - 0.5) + matrix[:, 2]
        matrix = np.concatenate([linear, offset[:, None]], axis=1)
        images = np.stack([cv2.resize(image, shrunk, interpolation=cv2.INTER_AREA) for image in images])
    return np.stack(
        [
            cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            for image in images
        ]
    )


def face_embeddings(crops: np.ndarray, model: MobileFaceNet) -> torch.Tensor:
    """Unit-length embeddings of 112x112 crops.

    Args:
        crops: N x 112 x 112 x 3 uint8 RGB (from :func:`face_crops`).
        model: from :func:`minerrestore.archs.identity.load_mobilefacenet`.

    Returns:
        N x 128 float tensor on the model's device.
    """
    return _unit_embeddings(crops, model)


def arcface_embeddings(images: np.ndarray, model: ResNetArcFace) -> torch.Tensor:
    """Unit-length ArcFace ResNet-18 embeddings of whole face images (grey, bilinear 128x128).

    Args:
        images: N x H x W x 3 uint8 RGB FFHQ-aligned faces (the whole image is used).
        model: from :func:`minerrestore.archs.identity.load_arcface_resnet18`.

    Returns:
        N x 512 float tensor on the model's device.
    """
    return _unit_embeddings(images, model, arcface_input)


def _unit_embeddings(
    images: np.ndarray, model: torch.nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Unit-length embeddings of N x H x W x 3 uint8 RGB images scaled to [-1, 1] (then ``prepare``d)."""
    device = next(model.parameters()).device
    batch = as_nchw(images, device).to(torch.float32) / 127.5 - 1
    with torch.inference_mode():
        return torch.nn.functional.normalize(model(batch if prepare is None else prepare(batch)), dim=1)


def _batched(restored: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first, second = (np.asarray(x)[None] if np.ndim(x) == 3 else np.asarray(x) for x in (restored, target))
    if first.shape != second.shape:
        raise ValueError(f"image shapes differ: {first.shape} vs {second.shape}")
    return first, second


def identity_similarity(
    restored: np.ndarray, target: np.ndarray, model: MobileFaceNet | ResNetArcFace, aligned: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Identity similarity of restored and ground-truth faces, one value per pair.

    Args:
        restored: N x H x W x 3 (or H x W x 3) uint8 RGB face crops.
        target: ground truth, same shape.
        model: MobileFaceNet (:func:`~minerrestore.archs.identity.load_mobilefacenet`) or
            ArcFace ResNet-18 (:func:`~minerrestore.archs.identity.load_arcface_resnet18`).
        aligned: inputs follow the FFHQ template (restored face crops); False plainly
            resizes (less reliable). ArcFace always takes the whole image, as papers do.

    Returns:
        cosine similarity (N,) in [-1, 1], higher is better, and the angle (N,) in
        degrees, lower is better.
    """
    first, second = _batched(restored, target)
    if isinstance(model, ResNetArcFace):
        embeddings = arcface_embeddings(np.concatenate([first, second]), model)
    else:
        embeddings = face_embeddings(np.concatenate([face_crops(first, aligned), face_crops(second, aligned)]), model)
    one, two = embeddings.chunk(2)
    cosine = (one * two).sum(dim=1).clamp(-1, 1).cpu().to(torch.float64).numpy()
    return cosine, np.degrees(np.arccos(cosine))


# ---------------------------------------------------------------------------------------------
# dlib's recogniser and the choice of network

DLIB_INSTALL = "pip install dlib-bin face-recognition-models"
DLIB_SAME_PERSON = 0.6
"""dlib's descriptor distance below which it calls two faces the same person."""


class DlibIdentity:
    """dlib's ResNet face-descriptor distance to the ground truth, at the ground truth's landmarks.

    Both faces of a pair are enlarged (bicubic) to 256 px and described at the ground truth's
    5 landmarks (dlib's HOG detector and 5-point predictor on the ground truth; a fixed box
    around the FFHQ-aligned face when the detector finds none), so a restoration is judged
    on its content, not on where a detector finds its eyes.

    Raises:
        UsageError: ``dlib`` or ``face_recognition_models`` is not installed (names the pip command).
    """

    SIZE = 256
    FALLBACK_BOX = (56, 72, 200, 220)  # left, top, right, bottom at SIZE: the face of an FFHQ-aligned crop

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise UsageError("the dlib identity network needs dlib", hint=DLIB_INSTALL) from exc
        # not `import face_recognition_models`: it needs pkg_resources; only its data files are used
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise UsageError("the dlib identity network needs face_recognition_models", hint=DLIB_INSTALL)
        models = Path(next(iter(spec.submodule_search_locations))) / "models"
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.descriptor = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An H x W x 3 uint8 RGB face enlarged to SIZE x SIZE (bicubic), as dlib takes it."""
        return np.ascontiguousarray(cv2.resize(image, (self.SIZE, self.SIZE), interpolation=cv2.INTER_CUBIC))

    def reference(self, truth: np.ndarray, fallback: Sequence[float] | None = None) -> tuple[Any, np.ndarray]:
        """The ground truth's landmarks and descriptor.

        Args:
            truth: a face from :meth:`prepare`, or a whole uint8 RGB photo.
            fallback: (left, top, right, bottom) face box where dlib's detector finds none;
                default: where an FFHQ-aligned face of :meth:`prepare` lies.
        """
        truth = np.ascontiguousarray(truth)
        found = self.detector(truth, 0)
        if len(found):
            box = max(found, key=lambda rect: rect.area())
        else:
            box = self.dlib.rectangle(*(round(value) for value in (fallback or self.FALLBACK_BOX)))
        shape = self.landmarks(truth, box)
        return shape, self._describe(truth, shape)

    def distance_to(self, restored: np.ndarray, reference: tuple[Any, np.ndarray]) -> float:
        """Descriptor distance of a restored face (or photo, the size of the reference's) to a :meth:`reference`."""
        shape, descriptor = reference
        return float(np.linalg.norm(self._describe(np.ascontiguousarray(restored), shape) - descriptor))

    def distances(self, restored: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Descriptor distance of each restored face to its ground truth, (N,), lower is better.

        Args:
            restored: N x H x W x 3 (or H x W x 3) uint8 RGB faces.
            target: ground truth, same shape.
        """
        first, second = _batched(restored, target)
        return np.array(
            [
                self.distance_to(self.prepare(one), self.reference(self.prepare(two)))
                for one, two in zip(first, second, strict=True)
            ]
        )

    def _describe(self, image: np.ndarray, shape: Any) -> np.ndarray:
        return np.asarray(self.descriptor.compute_face_descriptor(image, shape))


IdentityModel = MobileFaceNet | ResNetArcFace | DlibIdentity


def resolve_identity_network(network: str = "auto") -> str:
    """``arcface``, ``mobilefacenet`` or ``dlib``: ``auto`` is ArcFace when ``arcface_resnet18.pth`` is present.

    Raises:
        UsageError: an unknown name.
    """
    from minerrestore.models.catalogue import is_present

    if network not in IDENTITY_NETWORKS:
        raise UsageError(
            f"identity_network {network!r} is not one of {', '.join(IDENTITY_NETWORKS)}", settings=("identity_network",)
        )
    if network == "auto":
        return "arcface" if is_present("arcface-resnet18") else "mobilefacenet"
    return network


def load_identity_network(network: str, device: torch.device | str = "cpu") -> IdentityModel:
    """The identity network named by :func:`resolve_identity_network` (``auto`` resolved first).

    Raises:
        WeightsError: ``arcface`` without ``arcface_resnet18.pth`` (the message says where to get it).
        UsageError: ``dlib`` without its packages, or an unknown name.
    """
    network = resolve_identity_network(network)
    if network == "dlib":
        return DlibIdentity()
    return (load_arcface_resnet18() if network == "arcface" else load_mobilefacenet()).to(device)
