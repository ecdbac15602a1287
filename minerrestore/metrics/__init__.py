"""Image-quality metrics of the paper (METHOD.md §5): PSNR, SSIM, LPIPS, FID, NIQE, identity.

Each metric is a batched function taking uint8-range RGB images (numpy N x H x W x 3 or
torch N x 3 x H x W) and returning one value per image (FID: one value per set). They
match the reference implementations the field reports with: BasicSR (PSNR, SSIM, NIQE),
the ``lpips`` package (LPIPS), the TF Inception graph (FID). Network weights load
offline from ``weights/`` or installed packages. :func:`minerrestore.evaluate.evaluate`
runs them over folders.
"""

from __future__ import annotations

import importlib
from typing import Any

METRICS = ("psnr", "ssim", "lpips", "fid", "niqe", "identity")
"""Metric names accepted by ``minerrestore evaluate --metrics``."""
FULL_REFERENCE = ("psnr", "ssim", "lpips", "identity")
"""Metrics that need the ground truth."""
DEFAULT_LPIPS_NET = "alex"
"""LPIPS backbone used unless another is asked for (the paper's choice)."""
DEFAULT_BATCH_SIZE = 8
"""Images per network batch when :func:`minerrestore.evaluate.evaluate` scores folders."""
IDENTITY_NETWORKS = ("auto", "arcface", "mobilefacenet", "dlib")
"""Networks the identity metric can use (see :mod:`minerrestore.metrics.identity`)."""
DEFAULT_IDENTITY_NETWORK = "auto"
"""ArcFace ResNet-18 (the papers' view) when ``arcface_resnet18.pth`` is present, else MobileFaceNet."""

_EXPORTS = {
    "FeatureStatistics": "fid",
    "frechet_distance": "fid",
    "inception_features": "fid",
    "load_inception": "fid",
    "DlibIdentity": "identity",
    "face_crops": "identity",
    "face_embeddings": "identity",
    "identity_similarity": "identity",
    "load_identity_network": "identity",
    "resolve_identity_network": "identity",
    "LPIPS": "lpips",
    "VGG16Features": "lpips",
    "load_lpips": "lpips",
    "load_vgg16_features": "lpips",
    "lpips_distance": "lpips",
    "niqe_score": "niqe",
    "psnr": "psnr_ssim",
    "ssim": "psnr_ssim",
}
"""Public functions -> their submodule, imported on first use (torch loads only when needed)."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"minerrestore.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_IDENTITY_NETWORK",
    "DEFAULT_LPIPS_NET",
    "FULL_REFERENCE",
    "IDENTITY_NETWORKS",
    "METRICS",
    *sorted(_EXPORTS),
]
