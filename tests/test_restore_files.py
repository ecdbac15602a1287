"""Restoring files and folders (:mod:`minerrestore.restore_files`) and ``minerrestore restore``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minerrestore.cli import main
from minerrestore.distributed import merge_reports, shard
from minerrestore.errors import UsageError
from minerrestore.io import read_image, write_image
from minerrestore.models import files
from minerrestore.restore import Restorer
from minerrestore.restore_files import collect_tasks, parse_save, restore_paths
from tests.conftest import PORTRAITS, needs_shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the tiny model is faster that way


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def test_a_bad_ext_names_the_parameter_and_on_the_command_line_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match=r"^ext 'gif' is not one of auto, png, jpg$"):
        restore_paths(tmp_path, tmp_path / "out", ext="gif")
    assert _run([tmp_path, "--out", tmp_path / "out", "--ext", "gif", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == "error: --ext 'gif' is not one of auto, png, jpg\n"


def test_restore_paths_returns_what_it_wrote(tiny_model: Path, portraits: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    restorer = Restorer(tiny_model, device="cpu", precision="float32")
    report = restore_paths(portraits, out, restorer=restorer, save="cmp,restored_imgs", quiet=True)
    assert report.written == [f"{out / 'restored_imgs'}/", f"{out / 'cmp'}/", str(out / "report.json")]
    assert "written" not in json.loads((out / "report.json").read_text())


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
    err = capsys.readouterr().err
    assert "broken.jpg" in err and f"wrote {out / 'cmp'}/" in err and f"wrote {out / 'report.json'}" in err
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
        monkeypatch.setattr(files, name, tmp_path / "none")
    monkeypatch.delenv(files.WEIGHTS_ENV, raising=False)
    assert _run([portraits, "--out", tmp_path / "out", "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err
    assert "minerrestore_d256.safetensors" in err and "reinstall minerrestore" in err
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


def test_mistakes_are_one_line_before_any_work(
    tiny_model: Path, portraits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: a missing input, --out naming a file or an unwritable folder, thresholds out of range."""
    out = tmp_path / "out"
    base = ["--model", tiny_model, "--device", "cpu", "-q"]
    assert _run([tmp_path / "nonexistent", "--out", out, *base]) == 2 and not out.exists()
    assert "nonexistent: no such file or folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert _run([portraits, "--out", tmp_path / "notes.txt", *base]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    unwritable = tmp_path / "ro"
    unwritable.mkdir(mode=0o500)
    target = Path("/proc/minerrestore-out") if os.geteuid() == 0 else unwritable / "out"  # root writes anywhere
    assert _run([portraits, "--out", target, *base]) == 2
    assert "cannot write in" in capsys.readouterr().err
    for value in ("-1", "1.5"):
        assert _run([portraits, "--out", out, "--det-threshold", value, *base]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--det-threshold must be between 0 and 1" in err
    assert _run([portraits, "--out", out, "--suffix", "a/b", *base]) == 2
    assert "--suffix 'a/b' must not contain a path separator" in capsys.readouterr().err
    assert not out.exists()


def test_skip_existing_writes_every_output_asked_for_and_ctrl_c_keeps_the_report(
    tiny_model: Path, portraits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: resume after a default run with --save all; an interrupted run's report is merged on resume."""
    import minerrestore.restore_files as restore_files

    out = tmp_path / "out"
    args = [portraits, "--out", out, "--model", tiny_model, "--device", "cpu", "-q"]
    real = restore_files._restore_file
    calls = []

    def interrupted_on_the_second(job, task):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, task)

    monkeypatch.setattr(restore_files, "_restore_file", interrupted_on_the_second)
    assert _run(args) == 130
    report = json.loads((out / "report.json").read_text())
    assert report["done"] == 1 and report["items"][0]["info"]["faces"]  # what finished is recorded
    monkeypatch.setattr(restore_files, "_restore_file", real)
    assert _run([*args, "--skip-existing"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"] == 1 and report["done"] == 2 and all(item["info"]["faces"] for item in report["items"])
    assert _run([*args, "--skip-existing", "--save", "all"]) == 0  # the faces and cmp were never written
    for kind in ("cmp", "restored_faces", "cropped_faces"):
        assert len(list((out / kind).iterdir())) >= len(PORTRAITS), kind
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert _run([*args, "--skip-existing", "--save", "all"]) == 0  # now everything is there: all skipped
    assert json.loads((out / "report.json").read_text())["skipped"] == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_outputs_over_the_pixel_budget_are_refused_before_any_work(
    tiny_model: Path,
    portraits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 20: ``--upscale 16`` on a huge photo, ``--save all`` on a large one (budget scaled down here)."""
    monkeypatch.setenv("MINERRESTORE_MAX_OUTPUT_PIXELS", "300000")  # 275x225 portraits: 550x450 = 247,500 at x2
    out = tmp_path / "out"
    base = [portraits, "--out", out, "--model", tiny_model, "--device", "cpu", "-q"]
    assert _run([*base, "--upscale", "16"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and "225x275 at --upscale 16 gives 3600x4400; the restored photo would exceed 300,000" in err
    )
    assert _run([*base, "--save", "all"]) == 2
    assert "its comparison would exceed" in capsys.readouterr().err and not out.exists()
    assert _run([*base, "--save", "restored_imgs"]) == 0
