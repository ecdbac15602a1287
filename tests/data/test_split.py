"""Training/validation splits: by sorted names (one folder) or by identity across folders (data.split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minerrestore.data.datasets import plan_data, split_folders
from minerrestore.data.split import folder_identities, held_out_identities, identity_hash, split_names
from minerrestore.errors import ConfigError, UsageError
from minerrestore.io import list_images
from minerrestore.train.config import load_config
from minerrestore.train.run import RunLayout, _absolute_paths


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """``portraits/`` (p00 ... p09, identity = stem) and ``photos/`` (sub-folders, a manifest).

    ``photos/`` shows p09 (held out as the last name of portraits/) and p00 (trained on) under
    other file names, and six people of its own.
    """
    portraits, photos = tmp_path / "portraits", tmp_path / "photos"
    for index in range(10):
        _image(portraits / f"p{index:02d}.png")
    rows = {"studio/big_p09.png": "p09", "studio/big_p00.png": "p00", "wild/p00_again.png": "p00"}
    rows |= {f"wild/w{index}.png": f"person{index}" for index in range(6)}
    for name in rows:
        _image(photos / name)
    lines = ["file,identity,licence"] + [f"{name},{identity},CC0" for name, identity in rows.items()]
    (photos / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return portraits, photos


def _plan(tmp_path: Path, train_dir: object, *extra: str):
    config = load_config(
        "tiny", [f"data.train_dir={json.dumps(train_dir)}", "data.aligned=true", "data.max_images=null", *extra]
    )
    return plan_data(config, RunLayout(tmp_path / "run"), quiet=True)


def test_split_names_holds_out_the_last_share() -> None:
    assert split_names(list("abcdefghij"), 0.1) == (list("abcdefghi"), ["j"])
    assert split_names(list("abc"), 0.0) == (list("abc"), [])
    assert split_names(["a"], 0.5) == (["a"], [])


def test_held_out_identities_reference_tail_and_stable_hash() -> None:
    reference = [f"p{i:02d}" for i in range(20)]
    others = [f"person{i}" for i in range(2000)] + ["p00", "p19"]
    held = held_out_identities([reference, others], 0.1)
    assert {"p18", "p19"} <= held and not held & set(reference[:18])  # the names split of the reference
    newcomers = held - set(reference)
    assert newcomers == {f"person{i}" for i in range(2000) if identity_hash(f"person{i}") < 0.1}
    assert 150 < len(newcomers) < 250  # about 10 %
    assert held_out_identities([reversed(reference), reversed(others)], 0.1) == held  # order-free
    assert identity_hash("A000055") == identity_hash("A000055") and 0 <= identity_hash("x") < 1
    assert held_out_identities([reference, others], 0.0) == set()


def test_folder_identities_from_the_manifest_or_the_stem(folders: tuple[Path, Path]) -> None:
    portraits, photos = folders
    assert folder_identities(portraits, list_images(portraits))[:2] == ["p00", "p01"]
    paths = list_images(photos, recursive=True)
    names = [p.relative_to(photos).as_posix() for p in paths]
    identities = dict(zip(names, folder_identities(photos, paths), strict=True))
    assert identities["studio/big_p09.png"] == "p09" and identities["wild/w3.png"] == "person3"
    _image(photos / "wild" / "stray.png")
    with pytest.raises(UsageError, match=r"data\.train_dir: .*manifest\.csv gives no identity for wild/stray\.png"):
        folder_identities(photos, list_images(photos, recursive=True))
    (photos / "manifest.csv").write_text("name,identity\nwild/w1.png,person1\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"data\.train_dir: .*identity column but no file column"):
        folder_identities(photos, paths)
    (photos / "manifest.csv").write_text("file,licence\nwild/w1.png,CC0\n", encoding="utf-8")
    assert folder_identities(photos, paths[:1]) == [paths[0].stem]  # no identity column: the stem


def test_identity_split_keeps_each_person_on_one_side(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    portraits, photos = folders
    plan = _plan(tmp_path, [str(portraits), str(photos)], "data.split=identity", "log.val_images=100")
    train, val = {item.name for item in plan.train}, {item.name for item in plan.val}
    assert "portraits/p09.png" in val and "photos/studio/big_p09.png" in val  # held out in both folders
    assert {"portraits/p00.png", "photos/studio/big_p00.png", "photos/wild/p00_again.png"} <= train
    assert sum(name.startswith("portraits/") for name in val) == 1  # the last 10 % of the names
    assert len(train) + len(val) == 10 + 9  # every image, sub-folders included
    manifest = dict(line.split(",")[:2] for line in (photos / "manifest.csv").read_text().splitlines()[1:])

    def person(name: str) -> str:
        folder, rest = name.split("/", 1)
        return manifest[rest] if folder == "photos" else Path(rest).stem

    assert not {person(n) for n in train} & {person(n) for n in val}
    newcomers = {f"person{i}" for i in range(6) if identity_hash(f"person{i}") < 0.1}
    assert {person(n) for n in val} == {"p09"} | newcomers
    assert all(item.gt.parent.name in {"portraits", "studio", "wild"} for item in plan.train)


def test_names_split_is_unchanged(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    portraits, photos = folders
    plan = _plan(tmp_path, str(portraits), "log.val_images=100")
    paths = list_images(portraits)
    assert [item.gt for item in plan.train] == split_names(paths, 0.1)[0]
    assert [item.name for item in plan.val] == ["p09.png"]  # one folder: names without a prefix
    both = _plan(tmp_path, [str(portraits), str(photos)], "log.val_images=100")
    assert [item.name for item in both.val] == ["portraits/p09.png", "photos/wild/w5.png"]  # each folder's last
    few = _plan(tmp_path, [str(portraits), str(photos)], "data.max_images=3")
    assert [item.name for item in few.train] == ["portraits/p00.png", "portraits/p01.png", "photos/studio/big_p00.png"]


def test_several_folders_need_distinct_names_and_become_absolute(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    portraits, _ = folders
    twin = tmp_path / "other" / "portraits"
    _image(twin / "x.png")
    with pytest.raises(ConfigError, match=r"data\.train_dir: several folders are named portraits"):
        _plan(tmp_path, [str(portraits), str(twin)])
    with pytest.raises(UsageError, match=r"data\.train_dir: .*missing is not a folder"):
        _plan(tmp_path, [str(portraits), str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match=r"data\.train_dir: needs at least one folder"):
        load_config("tiny", ["data.train_dir=[]"])
    config = _absolute_paths(load_config("tiny", ["data.train_dir=[a, b/c]"]))
    assert config.data.train_dir == (str(Path("a").resolve()), str(Path("b/c").resolve()))


def test_default256_config() -> None:
    config = load_config("default256")
    data = config.data
    assert data.train_dir == ("../shared/data/faces", "../shared/data/faces_hires") and data.split == "identity"
    assert data.presets == ("mild", "paper", "miner") and data.degrade_scales == (1, 2) and data.val_fraction == 0.1
    assert (config.model.scheme, config.model.out_size, config.model.arch["input_skip"]) == ("D", 256, True)
    assert load_config("default128").data.split == "names"


def test_real_data_split_holds_out_the_benchmark_people(shared_dir: Path) -> None:
    faces, hires = shared_dir / "data" / "faces", shared_dir / "data" / "faces_hires"
    if not faces.is_dir() or not (hires / "manifest.csv").is_file():
        pytest.skip("../shared/data/faces or faces_hires absent")
    folders = [(faces, list_images(faces, recursive=True)), (hires, list_images(hires, recursive=True))]
    (faces_train, faces_val), (hires_train, hires_val) = split_folders(folders, "identity", 0.1)
    last = sorted(p.name for p in folders[0][1])[-88:]
    assert [p.name for p in faces_val] == last and len(faces_train) == len(folders[0][1]) - 88
    congress = {p.name for p in hires_val if p.parent.name == "congress"}
    assert {name for name in last if (hires / "congress" / name).is_file()} <= congress
    people = dict(zip(folders[1][1], folder_identities(hires, folders[1][1]), strict=True))
    trained = {p.stem for p in faces_train} | {people[p] for p in hires_train}
    held = {p.stem for p in faces_val} | {people[p] for p in hires_val}
    assert not trained & held


@pytest.mark.parametrize("stage", [1, 2])
def test_default256_stage_files_load_into_the_next_stage(stage: int) -> None:
    from minerrestore.archs.checkpoints import load_restorer
    from minerrestore.models.files import REPO_WEIGHTS_DIR

    config = load_config(f"default256_stage{stage + 1}")
    for scheme in ("d", "a"):
        path = REPO_WEIGHTS_DIR / "stages" / f"default256_{scheme}_stage{stage}.safetensors"
        net = load_restorer(path)
        assert net.config.input_skip and net.config.out_size == config.model.out_size == 256
        assert net.config.removal == ("unetpp" if scheme == "d" else "unet")
    assert config.model.init == f"weights/stages/default256_d_stage{stage}.safetensors"
