"""The restoration pipeline and ``minerrestore restore``, with a tiny random-weight model."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from minerrestore import weights
from minerrestore.archs.checkpoints import save_restorer
from minerrestore.archs.restorer import create_restorer
from minerrestore.cli import main
from minerrestore.errors import UsageError, WeightsError
from minerrestore.face import invert_affine
from minerrestore.face.paste import edge_mask
from minerrestore.io import read_image, write_image
from minerrestore.restore import (
    Restorer,
    collect_tasks,
    load_model,
    merge_reports,
    parse_save,
    shard,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SOLVAY = SHARED / "data" / "examples" / "Solvay_conference_1927.png"
FACES = SHARED / "data" / "faces"
PORTRAITS = ["A000014.jpg", "A000022.jpg", "A000055.jpg"]

needs_shared = pytest.mark.skipif(not SOLVAY.is_file() or not FACES.is_dir(), reason="../shared data absent")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the tiny model is faster that way, and the CI machine is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_restorer("D", out_size=64, narrow=0.125, num_style_feat=32, num_mlp=1).eval()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random scheme-D restorer at 64 px saved with its architecture (about 3 MB)."""
    return save_restorer(tmp_path_factory.mktemp("model") / "tiny.safetensors", _tiny_net())


@pytest.fixture
def portraits(tmp_path: Path) -> Path:
    """A folder with three shared portraits."""
    if not FACES.is_dir():
        pytest.skip("../shared data absent")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in PORTRAITS:
        shutil.copy(FACES / name, folder / name)
    return folder


def _restorer(model: Path, **options) -> Restorer:
    return Restorer(model, **{"device": "cpu", "precision": "float32", **options})


def _mask_union(shape: tuple[int, ...], affines: list[np.ndarray], size: int) -> np.ndarray:
    """Pixels any face mask reaches (upscale 1), computed independently and dilated by 2 px."""
    union = np.zeros(shape[:2], bool)
    for affine in affines:
        union |= cv2.warpAffine(np.ascontiguousarray(edge_mask(size)), invert_affine(affine), shape[1::-1]) > 0
    return cv2.dilate(union.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------- library


def test_model_file_roundtrip_and_errors(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model(tiny_model)
    assert loaded.size == 64 and loaded.config.removal == "unetpp" and loaded.config.modulation == "se-cssft"
    assert not loaded.net.training and loaded.describe()["parameters"] > 0
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(loaded.net(x, fidelity=0.7).image, _tiny_net()(x, fidelity=0.7).image)
    weights.save_state_dict(tmp_path / "bare.safetensors", loaded.net.state_dict())  # no architecture stored
    assert load_model(tmp_path / "bare.safetensors").config == loaded.config  # inferred from the shapes
    weights.save_state_dict(tmp_path / "junk.safetensors", {"w": torch.zeros(3)})
    with pytest.raises(WeightsError):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match=r"did you mean gfpgan-v1\.4"):
        load_model("gfpgan-v1.5")
    for name in ("REPO_WEIGHTS_DIR", "INSTALLED_WEIGHTS_DIR", "USER_WEIGHTS_DIR"):
        monkeypatch.setattr(weights, name, tmp_path / "none")
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError) as info:
        load_model("default")
    assert "minerrestore_d128.safetensors" in str(info.value) and "reinstall" in info.value.hint
    with pytest.raises(WeightsError, match=r"GFPGANv1\.4\.pth"):
        load_model("gfpgan-v1.4")


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


def test_sharding_and_merge() -> None:
    files = [f"f{i}" for i in range(7)]
    shares = [shard(files, rank, 3) for rank in range(3)]
    assert shares[1] == ["f1", "f4"] and sorted(f for share in shares for f in share) == sorted(files)
    parts = [
        {"seconds": 2.0, "items": [{"item": f, "status": "done", "seconds": 1.0, "error": None, "info": {}} for f in s]}
        for s in shares
    ]
    parts[2]["items"][0]["status"] = "failed"
    merged = merge_reports(parts, files, "restore")
    assert [r.item for r in merged.results] == files and merged.exit_code == 1 and len(merged.failed) == 1


def test_output_names_are_unique_and_never_inputs(tmp_path: Path) -> None:
    for name in ("a.jpg", "a.png", "sub/b.png"):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, np.zeros((8, 8, 3), np.uint8))
    tasks = collect_tasks([tmp_path / "in"], tmp_path / "out", recursive=True)
    assert [t.stem for t in tasks] == ["a_jpg", "a_png", "sub/b"]
    (tmp_path / "in" / "restored_imgs").mkdir()
    write_image(tmp_path / "in" / "restored_imgs" / "c.png", np.zeros((8, 8, 3), np.uint8))
    tasks = collect_tasks([tmp_path / "in"], tmp_path / "in", recursive=True)  # --out equal to the input folder
    assert "restored_imgs/c" not in [t.stem for t in tasks] and len(tasks) == 3
    with pytest.raises(UsageError, match="inside an output folder"):
        collect_tasks([tmp_path / "in" / "restored_imgs" / "c.png"], tmp_path / "in")
    assert parse_save("all") == parse_save("cmp,restored_faces,cropped_faces,restored_imgs")
    with pytest.raises(UsageError):
        parse_save("restored_img")


# ---------------------------------------------------------------------------------- command line


def _run(args: list[str]) -> int:
    return main(["restore", *[str(a) for a in args]])


def test_folder_with_a_corrupt_file_finishes_the_others(
    tiny_model: Path, portraits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (portraits / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = {p.name: _digest(p) for p in portraits.iterdir()}
    out = tmp_path / "out"
    code = _run([portraits, "--out", out, "--model", tiny_model, "--device", "cpu", "--save", "all"])
    assert code == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == sorted(PORTRAITS)
    for kind in ("restored_faces", "cropped_faces", "cmp"):
        assert len(list((out / kind).iterdir())) >= len(PORTRAITS)
    report = json.loads((out / "report.json").read_text())
    failed = [item for item in report["items"] if item["status"] == "failed"]
    assert len(failed) == 1 and "broken.jpg" in failed[0]["error"] and report["exit_code"] == 1
    assert {p.name: _digest(p) for p in portraits.iterdir()} == inputs  # inputs untouched


def test_report_content_and_json_summary(
    tiny_model: Path, portraits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [portraits, "--out", out, "--model", tiny_model, "--device", "cpu", "--suffix", "v1"]
    assert _run([*args, "--json", "-", "--quiet", "--precision", "float32", "--fidelity", "0.5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert summary["report"] == str(out / "report.json") and summary["done"] == report["done"] == 3
    assert report["model"]["config"]["out_size"] == 64 and report["model"]["path"] == str(tiny_model)
    assert report["settings"]["fidelity"] == 0.5 and report["compute_dtype"] == "float32"
    for item in report["items"]:
        info = item["info"]
        assert item["status"] == "done" and info["input_size"] == [225, 275] and info["output_size"] == [450, 550]
        face = info["faces"][0]
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and 0 < face["score"] <= 1
        assert {"read", "detect", "align", "network", "paste", "write"} <= set(info["timings"])
        assert info["outputs"]["restored_imgs"].endswith("_v1.jpg") and Path(info["outputs"]["restored_imgs"]).is_file()


def test_skip_existing_resumes(tiny_model: Path, portraits: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [portraits, "--out", out, "--model", tiny_model, "--device", "cpu", "-q"]
    assert _run(args) == 0
    kept = out / "restored_imgs" / PORTRAITS[0]
    stamp = kept.stat().st_mtime_ns
    (out / "restored_imgs" / PORTRAITS[1]).unlink()
    time.sleep(0.01)
    assert _run([*args, "--skip-existing"]) == 0
    assert kept.stat().st_mtime_ns == stamp and (out / "restored_imgs" / PORTRAITS[1]).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"] == 2 and report["done"] == 1
    assert all(item["info"]["faces"] for item in report["items"])  # skipped images keep their earlier entry


def test_stdin_list_grey_rgba_and_protected_inputs(
    tiny_model: Path, portraits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = read_image(portraits / PORTRAITS[0]).rgb
    grey_path = write_image(tmp_path / "other" / "grey.png", rgb, grey=True)
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    rgba_path = write_image(tmp_path / "other" / "rgba.png", rgb, alpha=alpha)
    listing = f"# restore these\n{portraits / PORTRAITS[2]}\n\n{grey_path}\n{rgba_path}\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    out = tmp_path / "out"
    assert _run(["-", "--out", out, "--model", tiny_model, "--device", "cpu", "--save", "restored_imgs,cmp", "-q"]) == 0
    names = sorted(p.relative_to(out / "restored_imgs").as_posix() for p in (out / "restored_imgs").rglob("*.*"))
    assert names == [f"in/{PORTRAITS[2]}", "other/grey.png", "other/rgba.png"]
    grey_out = read_image(out / "restored_imgs" / "other" / "grey.png")
    assert grey_out.is_grey and grey_out.size == (450, 550)
    rgba_out = read_image(out / "restored_imgs" / "other" / "rgba.png")
    assert rgba_out.alpha is not None and (rgba_out.alpha == 128).all()
    assert read_image(out / "cmp" / "other" / "grey.png").size == (900, 550)
    # an input inside an output folder is refused before anything is written
    inside = out / "restored_imgs" / "other" / "grey.png"
    before = _digest(inside)
    assert _run([inside, "--out", out, "--model", tiny_model, "--device", "cpu", "-q"]) == 2
    assert _digest(inside) == before


def test_missing_default_model_is_a_usage_error(
    portraits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("REPO_WEIGHTS_DIR", "INSTALLED_WEIGHTS_DIR", "USER_WEIGHTS_DIR"):
        monkeypatch.setattr(weights, name, tmp_path / "none")
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    assert _run([portraits, "--out", tmp_path / "out", "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err
    assert "minerrestore_d128.safetensors" in err and "reinstall minerrestore" in err
    assert not (tmp_path / "out" / "restored_imgs").exists()


@needs_shared
def test_torchrun_two_processes_share_the_files_and_merge_the_report(
    tiny_model: Path, portraits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    command += ["minerrestore", "restore", str(portraits), "--out", str(out), "--model", str(tiny_model)]
    command += ["--device", "cpu", "-q"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and report["done"] == 3
    assert [Path(item["item"]).name for item in report["items"]] == sorted(PORTRAITS)
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == sorted(PORTRAITS)
