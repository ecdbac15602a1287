"""Dark frames: whole-frame enhancement (:mod:`minerrestore.lowlight`), detection in the dark, and
what ``restore`` does and reports with dark, normal and face-free frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from minerrestore.cli import main
from minerrestore.data.degradation import apply_degradation
from minerrestore.errors import UsageError
from minerrestore.face import detect_faces
from minerrestore.face.detect import merge_detections
from minerrestore.io import read_image, write_image
from minerrestore.lowlight import enhance_low_light, is_dark, mean_luminance
from minerrestore.metrics.psnr_ssim import psnr
from minerrestore.restore import Restorer
from tests.conftest import FACES, PORTRAITS, needs_shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PIT = {"lowlight": {"exposure": 0.12, "gamma": 1.8, "shot": 6.0, "seed": 3}}  # about 8/255 on a portrait


def _scene(size: int = 160) -> np.ndarray:
    """A clean, bright, face-free frame: gradients and flat shapes with edges."""
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.3 + 0.5 * x, 0.4 + 0.3 * y, 0.6 - 0.3 * x * y], axis=-1)
    rgb[size // 4 : size // 2, size // 4 : 3 * size // 4] = [0.9, 0.8, 0.2]
    rgb[2 * size // 3 :, : size // 3] = [0.1, 0.2, 0.7]
    return np.rint(rgb * 255).astype(np.uint8)


def _restorer(model: Path, **options) -> Restorer:
    return Restorer(model, **{"device": "cpu", "precision": "float32", **options})


def test_enhancement_brings_a_dark_noisy_frame_back() -> None:
    clean = _scene()
    dark = apply_degradation(clean, PIT)
    assert mean_luminance(dark) < 0.05 and is_dark(dark) and not is_dark(clean)
    enhanced, params = enhance_low_light(dark)
    assert enhanced.shape == clean.shape and enhanced.dtype == np.uint8
    assert float(psnr(enhanced, clean)) > float(psnr(dark, clean)) + 10
    assert {"gain", "gamma", "noise_sigma", "colour_gains", "denoise_reduction"} <= set(params)
    json.dumps(params)  # JSON-ready for report.json


def test_lamp_cast_is_removed() -> None:
    grey_world = np.full((96, 96, 3), 128, np.uint8)
    grey_world[:48] = 90
    warm = apply_degradation(grey_world, {"cast": {"gains": [1.0, 0.85, 0.7]}, **PIT})  # a warm cap lamp
    enhanced, _ = enhance_low_light(warm)
    means = enhanced.reshape(-1, 3).mean(axis=0)
    dark = warm.reshape(-1, 3).mean(axis=0)
    assert abs(np.log(means[2] / means[0])) < 0.5 * abs(np.log(dark[2] / dark[0]))  # most of the cast is gone
    neutral, params = enhance_low_light(apply_degradation(grey_world, PIT))
    assert np.ptp(neutral.reshape(-1, 3).mean(axis=0)) < 3 and params["colour_gains"] == pytest.approx(
        [1, 1, 1], abs=0.02
    )


def test_merge_detections_groups_overlapping_views() -> None:
    marks = np.zeros((1, 5, 2), np.float32)
    first = (np.array([[10, 10, 50, 50]], np.float32), np.array([0.9], np.float32), marks)
    second = (
        np.array([[12, 10, 52, 50], [100, 100, 140, 140]], np.float32),
        np.array([0.8, 0.75], np.float32),
        np.stack([marks[0] + 2.0, marks[0]]),
    )
    boxes, scores, landmarks = merge_detections([first, second])
    assert len(boxes) == 2 and scores.tolist() == pytest.approx([0.9, 0.75])
    assert 0.9 < landmarks[0, 0, 0] < 1.0  # score-weighted mean of 0 and 2
    assert boxes[0, 0] == pytest.approx((10 * 0.9 + 12 * 0.8) / 1.7)


@needs_shared
def test_faces_are_found_at_8_of_255_and_not_in_dark_noise() -> None:
    for name in PORTRAITS:
        rgb = read_image(FACES / name).rgb
        dark = apply_degradation(rgb, PIT)
        assert mean_luminance(dark) < 10 / 255
        faces = detect_faces(dark)
        reference = detect_faces(rgb)[0]
        eyes = float(np.linalg.norm(reference.landmarks[0] - reference.landmarks[1]))
        assert len(faces) == 1
        assert np.linalg.norm(faces[0].landmarks - reference.landmarks, axis=1).mean() < 0.15 * eyes
    for seed in range(3):
        noise = apply_degradation(_scene(), {"lowlight": {**PIT["lowlight"], "seed": seed}})
        assert detect_faces(noise) == []


def test_low_light_setting_is_checked(tiny_model: Path) -> None:
    with pytest.raises(UsageError):
        _restorer(tiny_model, low_light="always")
    with pytest.raises(UsageError):
        _restorer(tiny_model, aligned=True, low_light="on")


@needs_shared
def test_normal_photo_is_byte_identical_and_dark_photo_is_enhanced(tiny_model: Path) -> None:
    rgb = read_image(FACES / PORTRAITS[0]).rgb.copy()
    auto = _restorer(tiny_model).restore(rgb)
    off = _restorer(tiny_model, low_light="off").restore(rgb)
    np.testing.assert_array_equal(auto.image, off.image)
    assert auto.low_light is None and auto.to_dict()["low_light"] is None and "enhance" not in auto.timings
    dark = apply_degradation(rgb, PIT)
    result = _restorer(tiny_model, upscale=1).restore(dark)
    plain = _restorer(tiny_model, upscale=1, low_light="off").restore(dark)
    assert len(result.faces) == 1 and result.to_dict()["face_count"] == 1
    assert result.low_light["mode"] == "auto" and result.low_light["gamma"] >= 1.0
    assert float(psnr(result.image, rgb)) > float(psnr(plain.image, rgb)) + 10
    # the network is given the face as it is in the dark frame (it re-lights faces itself) ...
    np.testing.assert_array_equal(result.faces[0].cropped, plain.faces[0].cropped)
    assert result.faces[0].estimate.lift > 2.0  # ... its estimate is read on the enhanced frame
    forced = _restorer(tiny_model, low_light="on").restore(rgb)
    assert forced.low_light is not None and not np.array_equal(forced.image, auto.image)


@needs_shared
def test_report_lists_images_without_faces_and_skipped_entries(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_image(folder / "a_face.png", read_image(FACES / PORTRAITS[0]).rgb)
    write_image(folder / "b_empty.png", apply_degradation(_scene(), PIT))
    (folder / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    args = ["restore", folder, "--out", out, "--model", tiny_model, "--device", "cpu", "--precision", "float32"]
    assert main([str(a) for a in args]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["faces"] == 1 and report["no_face"] == [str(folder / "b_empty.png")]
    assert [entry["path"] for entry in report["skipped_entries"]] == [str(folder / "notes.txt"), f"{folder / 'sub'}/"]
    counts = {item["item"]: item["info"]["face_count"] for item in report["items"]}
    assert counts == {str(folder / "a_face.png"): 1, str(folder / "b_empty.png"): 0}
    empty = next(item for item in report["items"] if item["item"].endswith("b_empty.png"))
    assert empty["info"]["low_light"]["mode"] == "auto"
    err = capsys.readouterr().err
    assert f"no face found (nothing restored): {folder / 'b_empty.png'}" in err
    assert f"skipped (not an image or video): {folder / 'notes.txt'}" in err


def test_a_steady_video_does_not_switch_the_enhancement_on_and_off() -> None:
    from minerrestore.lowlight import is_dark
    from minerrestore.video import SettingsSmoother

    frames = [np.full((8, 8, 3), value, np.uint8) for value in (31, 61) * 10]  # luminance 0.12 and 0.24 in turn
    assert [is_dark(frame) for frame in frames[:4]] == [True, False, True, False]  # per frame: flips
    smoother = SettingsSmoother()
    assert all(is_dark(frame, smoother.low_light) for frame in frames)  # their average, 0.18, is dark
