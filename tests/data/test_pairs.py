"""minerrestore.data.pairs: the degrade command's folders, determinism, replay, split, preview."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minerrestore.cli import main
from minerrestore.data.augment import AUGMENT_MANIFEST, OPS, augment_folder
from minerrestore.data.degradation import DegradationSettings, prepare_gt
from minerrestore.data.folders import read_manifest
from minerrestore.data.pairs import DEGRADE_MANIFEST, assign_splits, degrade_folder, source_group
from minerrestore.errors import UsageError
from tests.data.test_degradation import synthetic_face

SIZE = 64


def _write_faces(folder: Path, names: list[str], rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(synthetic_face(rng)).save(folder / name)


def _all_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_replay_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", ["a.png", "b.jpg", "c.png"], rng)
    settings = DegradationSettings(preset="miner", size=SIZE, seed=5)
    report = degrade_folder(tmp_path / "in", tmp_path / "one", settings, quiet=True)
    assert len(report.done) == 3
    degrade_folder(tmp_path / "in", tmp_path / "two", settings, workers=2, quiet=True)
    degrade_folder(tmp_path / "in", tmp_path / "other", replace(settings, seed=6), quiet=True)
    first = _all_bytes(tmp_path / "one")
    assert set(first) == {DEGRADE_MANIFEST} | {f"{kind}/{n}.png" for kind in ("gt", "lq") for n in "abc"}
    assert first == _all_bytes(tmp_path / "two")  # worker count does not matter
    assert first["lq/a.png"] != _all_bytes(tmp_path / "other")["lq/a.png"]
    degrade_folder(tmp_path / "in", tmp_path / "replayed", replay=tmp_path / "one" / DEGRADE_MANIFEST, quiet=True)
    assert _all_bytes(tmp_path / "replayed") == first


def test_grey_and_rgba_inputs(tmp_path: Path, rng: np.random.Generator) -> None:
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(synthetic_face(rng)[..., 1], "L").save(source / "grey.png")
    rgba = np.dstack([synthetic_face(rng), np.full((72, 60), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(source / "rgba.png")
    report = degrade_folder(source, tmp_path / "out", DegradationSettings(preset="paper", size=SIZE), quiet=True)
    assert not report.failed
    with Image.open(tmp_path / "out" / "gt" / "grey.png") as gt, Image.open(tmp_path / "out" / "lq" / "grey.png") as lq:
        assert gt.mode == "L" and gt.size == (SIZE, SIZE) and lq.size == (SIZE, SIZE)
    with Image.open(tmp_path / "out" / "gt" / "rgba.png") as gt:
        assert gt.mode == "RGB" and np.array_equal(np.asarray(gt), prepare_gt(rgba[..., :3], SIZE))


def test_split_keeps_every_source_on_one_side(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "faces", [f"p{i:02d}.png" for i in range(10)], rng)
    augment_folder(tmp_path / "faces", tmp_path / "aug", quiet=True)
    degrade_folder(tmp_path / "aug", tmp_path / "out", DegradationSettings(size=32, seed=2), split=0.8, quiet=True)
    rows = read_manifest(tmp_path / "out" / DEGRADE_MANIFEST)
    assert len(rows) == 60
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row["source"].split("_")[0], set()).add(row["split"])
        assert row["gt"].startswith(f"{row['split']}/gt/") and row["lq"].startswith(f"{row['split']}/lq/")
    assert all(len(found) == 1 for found in sides.values())
    assert Counter(next(iter(found)) for found in sides.values()) == {"train": 8, "test": 2}
    for side, count in (("train", 48), ("test", 12)):
        gt = sorted(p.name for p in (tmp_path / "out" / side / "gt").iterdir())
        assert len(gt) == count and gt == sorted(p.name for p in (tmp_path / "out" / side / "lq").iterdir())


def test_source_groups_from_manifest_or_suffix() -> None:
    assert source_group("a/b_c_rotate.png", {}, OPS) == "a/b_c"
    assert source_group("x_orig.jpg", {}, OPS) == "x"
    assert source_group("plain.jpg", {}, OPS) == "plain"
    assert source_group("renamed.png", {"renamed.png": "origin.jpg"}, OPS) == "origin"
    splits = assign_splits([f"g{i}" for i in range(5)], 0.8, seed=0)
    assert sorted(splits.values()) == ["test", "train", "train", "train", "train"]
    assert assign_splits(["a", "b"], 0.99, seed=0) != {"a": "train", "b": "train"}  # both sides used
    with pytest.raises(UsageError):
        assign_splits(["a"], 1.5, seed=0)


def test_ten_faces_augmented_then_degraded_replays(shared_dir: Path, tmp_path: Path) -> None:
    faces = sorted((shared_dir / "data" / "faces").glob("*.jpg"))[:10]
    if len(faces) < 10:
        pytest.skip("fewer than 10 shared faces")
    (tmp_path / "in").mkdir()
    for face in faces:
        (tmp_path / "in" / face.name).write_bytes(face.read_bytes())
    assert main(["augment", str(tmp_path / "in"), "-o", str(tmp_path / "aug"), "--workers", "1", "-q"]) == 0
    assert len(list((tmp_path / "aug").glob("*.jpg"))) == 60
    args = ["degrade", str(tmp_path / "aug"), "-o", str(tmp_path / "pairs"), "--size", str(SIZE), "--split", "0.8"]
    assert main([*args, "--preset", "miner", "--workers", "1", "-q"]) == 0
    pairs = _all_bytes(tmp_path / "pairs")
    assert sum(name.split("/")[1] == "gt" for name in pairs if "/" in name) == 60
    assert sum(name.split("/")[1] == "lq" for name in pairs if "/" in name) == 60
    assert len(read_manifest(tmp_path / "pairs" / DEGRADE_MANIFEST)) == 60
    assert (tmp_path / "aug" / AUGMENT_MANIFEST).is_file()
    manifest = str(tmp_path / "pairs" / DEGRADE_MANIFEST)
    replay = ["degrade", str(tmp_path / "aug"), "-o", str(tmp_path / "again"), "--replay", manifest, "-q"]
    assert main([*replay, "--workers", "1"]) == 0
    assert _all_bytes(tmp_path / "again") == pairs


def test_skip_existing_and_bad_options(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_faces(tmp_path / "in", ["a.png", "b.png"], rng)
    settings = DegradationSettings(size=SIZE)
    degrade_folder(tmp_path / "in", tmp_path / "out", settings, quiet=True)
    manifest = (tmp_path / "out" / DEGRADE_MANIFEST).read_text()
    report = degrade_folder(tmp_path / "in", tmp_path / "out", settings, quiet=True, skip_existing=True)
    assert len(report.skipped) == 2 and (tmp_path / "out" / DEGRADE_MANIFEST).read_text() == manifest
    base = ["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "-q", "--workers", "1"]
    assert main([*base, "--split", "1.5"]) == 2
    assert main([*base, "--preset", "nonesuch"]) == 2
    capsys.readouterr()
    assert main([*base, "--fit", "pad"]) == 2
    assert capsys.readouterr().err == "error: --fit 'pad' is not one of crop, stretch\n"  # the library says fit
    with pytest.raises(UsageError, match=r"^fit 'pad' is not one of crop, stretch$"):
        degrade_folder(tmp_path / "in", tmp_path / "x", DegradationSettings(fit="pad"), quiet=True)
    assert main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "in")]) == 2
    assert main([*base, "--replay", str(tmp_path / "missing.jsonl")]) == 2
    assert not (tmp_path / "x").exists()


def test_cli_preview_writes_only_the_sheet(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", ["a.png", "b.png"], rng)
    sheet = tmp_path / "sheet.png"
    assert main(["degrade", str(tmp_path / "in"), "--preview", str(sheet), "--size", "32", "--preset", "miner"]) == 0
    assert sheet.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["in", "sheet.png"]


def test_output_folder_owns_its_manifest(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: a re-run with other settings is refused (skip_existing or not), overwrite starts afresh."""
    _write_faces(tmp_path / "in", [f"f{i}.png" for i in range(6)], rng)
    out = tmp_path / "pairs"
    base = ["degrade", str(tmp_path / "in"), "-o", str(out), "-q", "--workers", "1"]
    assert main([*base, "--preset", "miner", "--split", "0.5", "--size", "32"]) == 0
    before = _all_bytes(out)
    capsys.readouterr()
    assert main([*base, "--preset", "paper", "--split", "0.5", "--size", "16", "--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "preset 'miner' -> 'paper'" in err and "size 32 -> 16" in err
    assert "--overwrite" in err and "Traceback" not in err
    assert main([*base, "--preset", "miner", "--split", "0.8", "--size", "32"]) == 2  # sides would move: leakage
    assert _all_bytes(out) == before  # earlier outputs and manifest intact
    assert main([*base, "--preset", "miner", "--split", "0.5", "--size", "32", "--skip-existing"]) == 0  # same run
    assert _all_bytes(out) == before
    assert main([*base, "--preset", "miner", "--split", "0.8", "--size", "32", "--overwrite"]) == 0
    rows = read_manifest(out / DEGRADE_MANIFEST)
    assert len(rows) == 6 and Counter(row["split"] for row in rows) == {"train": 5, "test": 1}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert on_disk == {row[kind] for row in rows for kind in ("gt", "lq")}  # nothing left in the old split
    stems = [Path(p).name for p in on_disk if "/gt/" in p]
    assert len(stems) == len(set(stems)) == 6  # no file in both train/ and test/
    (out / DEGRADE_MANIFEST).unlink()  # outputs no manifest accounts for are refused, not mixed
    assert main([*base, "--preset", "miner", "--split", "0.8", "--size", "32"]) == 2
    assert "does not record it" in capsys.readouterr().err


def test_replay_refuses_other_settings_and_non_manifests(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_faces(tmp_path / "in", ["a.png"], rng)
    assert main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "one"), "-q", "--size", "16"]) == 0
    replay = ["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "two"), "-q", "--replay"]
    capsys.readouterr()
    assert main([*replay, str(tmp_path / "one" / DEGRADE_MANIFEST), "--preset", "miner", "--size", "32"]) == 2
    assert "--replay redoes the manifest's own" in capsys.readouterr().err
    assert main([*replay, str(tmp_path / "in" / "a.png")]) == 2
    assert "not a JSON-lines manifest" in capsys.readouterr().err
    assert main([*replay, str(tmp_path / "one" / DEGRADE_MANIFEST)]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "file"), "-q", "--size", "16"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "-q", "--ext", "xyz"]) == 2
    assert main(["augment", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "-q", "--ext", "xyz"]) == 2
    assert "--ext 'xyz' is not an output format" in capsys.readouterr().err and not (tmp_path / "x").exists()
