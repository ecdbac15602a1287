"""The restoration pipeline (:class:`~minerrestore.restore.Restorer`), with a tiny random-weight model."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from minerrestore.errors import UsageError
from minerrestore.face import invert_affine
from minerrestore.face.paste import edge_mask
from minerrestore.io import read_image
from minerrestore.restore import Restorer
from tests.conftest import FACES, PORTRAITS, SOLVAY, needs_shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tiny model is faster that way


def _restorer(model: Path, **options) -> Restorer:
    return Restorer(model, **{"device": "cpu", "precision": "float32", **options})


def _mask_union(shape: tuple[int, ...], affines: list[np.ndarray], size: int) -> np.ndarray:
    """Pixels any face mask reaches (upscale 1), computed independently and dilated by 2 px."""
    union = np.zeros(shape[:2], bool)
    for affine in affines:
        union |= cv2.warpAffine(np.ascontiguousarray(edge_mask(size)), invert_affine(affine), shape[1::-1]) > 0
    return cv2.dilate(union.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def test_settings_are_checked_and_pickle_without_the_network(tiny_model: Path) -> None:
    bad_settings = ({"fidelity": 1.5}, {"batch_size": 0}, {"precision": "half"}, {"detector": "x"}, {"paste_mask": "c"})
    for bad in bad_settings:
        with pytest.raises(UsageError):
            _restorer(tiny_model, **bad)
    restorer = _restorer(tiny_model, batch_size=3).load()
    copy = pickle.loads(pickle.dumps(restorer))
    assert copy.settings() == restorer.settings() and not copy._loaded


@needs_shared
def test_upscale_1_changes_only_pixels_inside_face_masks(tiny_model: Path) -> None:
    image = read_image(SOLVAY)
    before = image.rgb.copy()
    result = _restorer(tiny_model, upscale=1).restore(image)
    assert len(result.faces) >= 27 and result.image.shape == image.rgb.shape
    np.testing.assert_array_equal(image.rgb, before)  # the input is not modified
    outside = ~_mask_union(image.rgb.shape, [face.affine for face in result.faces], 64)
    assert 0.5 < outside.mean() < 1.0
    np.testing.assert_array_equal(result.image[outside], image.rgb[outside])
    assert np.abs(result.image.astype(int) - image.rgb).max() > 10  # faces were pasted


@needs_shared
def test_batched_and_one_by_one_match(tiny_model: Path) -> None:
    image = read_image(SOLVAY)
    one = _restorer(tiny_model, batch_size=1).restore(image)
    eight = _restorer(tiny_model, batch_size=8).restore(image)
    assert [f.face.box for f in one.faces] == [f.face.box for f in eight.faces] and len(one.faces) >= 27
    for a, b in zip(one.faces, eight.faces, strict=True):
        assert np.abs(a.restored.astype(int) - b.restored).max() <= 1
    assert np.abs(one.image.astype(int) - eight.image).max() <= 1


@needs_shared
def test_grey_stays_grey_and_alpha_is_kept(tiny_model: Path) -> None:
    rgb = read_image(FACES / PORTRAITS[0]).rgb
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    restorer = _restorer(tiny_model, upscale=2)
    for array in (grey, np.repeat(grey[..., None], 3, axis=2)):
        result = restorer.restore(array)
        assert result.is_grey and len(result.faces) == 1
        assert (result.image[..., 0] == result.image[..., 1]).all() and (
            result.image[..., 1] == result.image[..., 2]
        ).all()
        assert (result.faces[0].restored[..., 0] == result.faces[0].restored[..., 2]).all()
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    result = restorer.restore(np.dstack([rgb, alpha]))
    assert not result.is_grey and result.alpha is not None
    assert result.alpha.shape == result.image.shape[:2] == (2 * rgb.shape[0], 2 * rgb.shape[1])
    expected = cv2.resize(alpha, result.alpha.shape[::-1], interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_array_equal(result.alpha, expected)


@needs_shared
def test_face_selection_and_aligned_input(tiny_model: Path) -> None:
    image = read_image(SOLVAY)
    restorer = _restorer(tiny_model, max_faces=3)
    assert len(restorer.restore(image).faces) == 3
    center = _restorer(tiny_model, only_center_face=True).restore(image)
    assert len(center.faces) == 1
    face = cv2.resize(read_image(FACES / PORTRAITS[0]).rgb, (128, 128))
    result = _restorer(tiny_model, aligned=True, upscale=2).restore(face)
    assert len(result.faces) == 1 and result.faces[0].face is None
    assert result.image.shape == (256, 256, 3) and result.faces[0].restored.shape == (64, 64, 3)
    assert result.to_dict()["faces"][0]["box"] == [0.0, 0.0, 128.0, 128.0]


HIRES = FACES.parent / "faces_hires" / "congress" / "A000055.jpg"


@pytest.mark.skipif(not HIRES.is_file(), reason="../shared data absent")
def test_auto_fidelity_leaves_a_clean_face_as_it_is_and_restores_a_degraded_one(tiny_model: Path) -> None:
    from minerrestore.data.degradation import apply_degradation

    clean = read_image(HIRES).rgb  # a studio portrait, face about 250 px: larger than any crop
    auto = _restorer(tiny_model, upscale=1)
    result = auto.restore(clean)
    assert len(result.faces) == 1 and result.faces[0].strength < 0.05
    np.testing.assert_array_equal(result.image, clean)  # the random network's face is not pasted
    report = result.to_dict()["faces"][0]
    assert report["degradation"]["severity"] < 0.05
    assert report["degradation"]["denoise"] == report["degradation"]["deblur"] == 0.0

    blur = {"kernel_size": 31, "sigma_x": 5.0, "sigma_y": 5.0, "theta": 0.0}
    degraded = apply_degradation(clean, {"blur": blur, "jpeg": {"quality": 20}})
    restored = auto.restore(degraded)
    assert restored.faces[0].strength > 0.5 and restored.faces[0].estimate.denoise > 0
    assert np.abs(restored.image.astype(int) - degraded).max() > 20

    fixed = _restorer(tiny_model, upscale=1, fidelity=1.0).restore(clean)
    assert fixed.faces[0].strength == 1.0 and np.abs(fixed.image.astype(int) - clean).max() > 20


def test_the_network_sees_its_input_cleaned_as_its_file_says_raised_for_dark_faces(tmp_path: Path) -> None:
    import torch

    from minerrestore.archs.checkpoints import save_restorer
    from minerrestore.archs.restorer import create_restorer
    from minerrestore.baselines import nlm_denoise
    from minerrestore.severity import input_cleaning

    torch.manual_seed(0)
    net = create_restorer("D", out_size=64, narrow=0.125, num_style_feat=32, num_mlp=1, input_denoise=8.0).eval()
    path = save_restorer(tmp_path / "cleaning.safetensors", net)
    rng = np.random.default_rng(0)
    crops = [np.clip(level + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8) for level in (170, 30)]
    restorer = _restorer(path, batch_size=2).load()
    assert restorer.network.config.input_denoise == 8.0  # stored in the file
    strengths = [input_cleaning(crop, 8.0) for crop in crops]
    assert strengths[0] == 8.0 and strengths[1] > 8.0  # a dark face is cleaned more than its training's

    def network_on(cleaning: list[float]) -> np.ndarray:
        cleaned = [nlm_denoise(crop, h) for crop, h in zip(crops, cleaning, strict=True)]
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(cleaned)).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = net(x).image.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return y.permute(0, 2, 3, 1).numpy()

    np.testing.assert_array_equal(np.stack(restorer.restore_crops(crops)), network_on(strengths))
    raw = network_on([0.0, 0.0])  # an explicit cleaning replaces the file's (for measuring others)
    np.testing.assert_array_equal(np.stack(restorer.restore_crops(crops, [0.0, 0.0])), raw)
    assert not np.array_equal(raw, network_on(strengths))


@pytest.mark.parametrize("value", ["auto", "AUTO", " auto ", 0.0, "0.5", 1])
def test_fidelity_is_auto_or_a_number_from_0_to_1(value: object) -> None:
    from minerrestore.restore import parse_fidelity

    assert parse_fidelity(value) in ("auto", 0.0, 0.5, 1.0)


@pytest.mark.parametrize("value", ["abc", 1.5, -0.1, "nan", None])
def test_other_fidelities_are_usage_errors_naming_the_setting(value: object) -> None:
    from minerrestore.restore import parse_fidelity

    with pytest.raises(UsageError, match="fidelity") as caught:
        parse_fidelity(value)
    assert caught.value.settings == ("fidelity",)


def test_an_aligned_face_keeps_its_finer_detail_unless_it_is_dark(tiny_model: Path) -> None:
    """``restore`` hands each face's ``photo_detail`` to the paste: a pattern finer than the
    network's pixels (so its 64 px input is the same without it) survives on a lit face, not on a
    dark one, whose re-lit face the network's alone gives."""
    from minerrestore.severity import DegradationEstimate

    rng = np.random.default_rng(3)
    face = cv2.resize(rng.uniform(40, 200, (32, 32, 3)).astype(np.uint8), (128, 128), interpolation=cv2.INTER_LINEAR)
    checker = np.where(np.indices((128, 128)).sum(axis=0) % 2 == 0, 12, -12)[..., None]  # each 2 x 2 block sums to 0
    patterned = (face.astype(int) + checker).astype(np.uint8)
    restorer = _restorer(tiny_model, aligned=True, fidelity=1.0, upscale=1)
    outputs = {}
    for luminance in (0.5, 0.05):
        estimate = DegradationEstimate(1.2, 0.0, 0.0, 0.0, luminance, scale=2.0, size=64)
        assert estimate.denoise == estimate.deblur == 0.0  # the photo's face is pasted as it is
        outputs[luminance] = [
            restorer.restore(image, steady_estimate=lambda _position, _estimate, e=estimate: e).image
            for image in (face, patterned)
        ]
    lit, dark = outputs[0.5], outputs[0.05]
    assert np.abs(lit[1].astype(int) - lit[0]).mean() > 6  # the lit face keeps the pattern
    np.testing.assert_array_equal(dark[1], dark[0])  # the dark one is the network's face
