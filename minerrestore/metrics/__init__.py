"""Image-quality metrics of the paper (METHOD.md §5): PSNR, SSIM, LPIPS, FID, NIQE, identity.

Each metric is a batched function taking uint8-range RGB images (numpy N x H x W x 3 or
torch N x 3 x H x W) and returning one value per image (FID: one value per set). They
match the reference implementations the field reports with: BasicSR (PSNR, SSIM, NIQE),
the ``lpips`` package (LPIPS), the TF Inception graph (FID). Network weights load
offline from ``weights/`` or installed packages. :func:`minerrestore.evaluate.evaluate`
runs them over folders.
"""

from __future__ import annotations

from minerrestore.metrics.fid import (
    FeatureStatistics,
    frechet_distance,
    inception_features,
    load_inception,
)
from minerrestore.metrics.identity import face_crops, face_embeddings, identity_similarity
from minerrestore.metrics.lpips import LPIPS, VGG16Features, load_lpips, load_vgg16_features, lpips_distance
from minerrestore.metrics.niqe import niqe_score
from minerrestore.metrics.psnr_ssim import psnr, ssim

__all__ = [
    "LPIPS",
    "FeatureStatistics",
    "VGG16Features",
    "face_crops",
    "face_embeddings",
    "frechet_distance",
    "identity_similarity",
    "inception_features",
    "load_inception",
    "load_lpips",
    "load_vgg16_features",
    "lpips_distance",
    "niqe_score",
    "psnr",
    "ssim",
]
