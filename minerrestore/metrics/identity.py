"""Identity preservation: cosine similarity of MobileFaceNet embeddings of restored and GT faces.

The paper trains with an ArcFace identity loss (METHOD.md §3) and GFP-GAN's papers report
"Deg.", the angle between ArcFace embeddings of output and ground truth. We measure the
same idea offline with the shipped MobileFaceNet (foamliu/MobileFaceNet, Apache-2.0;
see :mod:`minerrestore.archs.identity`): values are cosine similarities in [-1, 1]
(1 = same embedding) and the matching angle in degrees. They are not numerically
comparable with ArcFace-ResNet "Deg." values of other papers.

Inputs are aligned face crops (FFHQ template, as restored faces are): one fixed
similarity transform maps the FFHQ 5-point template, scaled to the image size, onto the
ArcFace 112x112 template. Unaligned inputs can be plainly resized to 112x112
(``aligned=False``), which makes the embeddings, and the similarity, less reliable.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from minerrestore.archs.identity import ARCFACE_TEMPLATE_112, MOBILEFACENET_INPUT_SIZE, MobileFaceNet
from minerrestore.face.align import FFHQ_TEMPLATE_512
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
    device = next(model.parameters()).device
    batch = as_nchw(crops, device).to(torch.float32) / 127.5 - 1
    with torch.inference_mode():
        return torch.nn.functional.normalize(model(batch), dim=1)


def identity_similarity(
    restored: np.ndarray, target: np.ndarray, model: MobileFaceNet, aligned: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Identity similarity of restored and ground-truth faces, one value per pair.

    Args:
        restored: N x H x W x 3 (or H x W x 3) uint8 RGB face crops.
        target: ground truth, same shape.
        model: MobileFaceNet from :func:`minerrestore.archs.identity.load_mobilefacenet`.
        aligned: inputs follow the FFHQ template (restored face crops); False plainly
            resizes (less reliable).

    Returns:
        cosine similarity (N,) in [-1, 1], higher is better, and the angle (N,) in
        degrees, lower is better.
    """
    first, second = (np.asarray(x)[None] if np.ndim(x) == 3 else np.asarray(x) for x in (restored, target))
    if first.shape != second.shape:
        raise ValueError(f"image shapes differ: {first.shape} vs {second.shape}")
    embeddings = face_embeddings(np.concatenate([face_crops(first, aligned), face_crops(second, aligned)]), model)
    one, two = embeddings.chunk(2)
    cosine = (one * two).sum(dim=1).clamp(-1, 1).cpu().to(torch.float64).numpy()
    return cosine, np.degrees(np.arccos(cosine))
