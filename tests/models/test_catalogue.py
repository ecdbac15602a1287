"""The model catalogue: one name space, aliases, close matches, files, networks, checksums."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from minerrestore.archs.checkpoints import read_checkpoint, save_restorer
from minerrestore.archs.restorer import SCHEMES, create_restorer
from minerrestore.errors import UsageError, WeightsError
from minerrestore.models import catalogue, files
from minerrestore.models.catalogue import (
    CATALOGUE,
    create_model,
    entries,
    find_entry,
    get_entry,
    load_model,
    resolve_file,
)
from tests.conftest import tiny_restorer

OLD_NAMES = {
    "default": "d256",
    "restorer.d256": "d256",
    "restorer.a256": "a256",
    "restorer.d128": "d128",
    "gfpgan.v1_3": "gfpgan-v1.3",
    "gfpgan.v1_4": "gfpgan-v1.4",
    "stylegan2.ffhq512_cmul1": "stylegan2-ffhq512",
    "detector.yunet": "yunet",
    "detector.retinaface_resnet50": "retinaface-resnet50",
    "retinaface_resnet50": "retinaface-resnet50",
    "parser.parsenet": "parsenet",
    "lpips.alex": "lpips-alex",
    "lpips.vgg16": "lpips-vgg16",
    "identity.mobilefacenet": "mobilefacenet",
    "identity.arcface_resnet18": "arcface-resnet18",
    "fid.inception_v3": "inception-v3-fid",
    "niqe.pristine": "niqe-pristine",
    "vgg19.imagenet": "vgg19",
    **{letter: f"scheme-{letter.lower()}" for letter in "ABCDEFG"},
}


@pytest.fixture
def fresh_digests(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """An empty SHA-256 cache; returns the list of files hashed from now on."""
    hashed: list[Path] = []
    real = files.sha256_of
    monkeypatch.setattr(files, "_DIGESTS", {})
    monkeypatch.setattr(files, "sha256_of", lambda path: hashed.append(Path(path)) or real(path))
    return hashed


def test_names_are_kebab_unique_and_every_old_name_is_an_alias() -> None:
    keys = [key.lower() for entry in CATALOGUE for key in (entry.name, *entry.aliases)]
    assert len(keys) == len(set(keys))
    for entry in CATALOGUE:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9.]+)*", entry.name), entry.name
        assert entry.is_file == (entry.kind != "architecture")
    for old, new in OLD_NAMES.items():
        assert get_entry(old).name == new, old
    assert get_entry("Scheme-D") is get_entry("d") is get_entry(" D ") is get_entry("scheme-d")
    assert get_entry("GFPGAN-V1.4") is get_entry("gfpgan.v1_4") and find_entry("nothing") is None


def test_architectures_are_the_schemes_and_restorers_match_their_files() -> None:
    assert {entry.scheme for entry in entries("architecture")} == set(SCHEMES)
    for entry in entries("architecture"):
        assert entry.config() == SCHEMES[entry.scheme]
    for entry in entries("restorer"):
        assert entry.scheme in SCHEMES
        if entry.source == "shipped":
            assert read_checkpoint(resolve_file(entry.name)).config == entry.config(), entry.name
    with pytest.raises(UsageError, match="not a restorer"):
        get_entry("yunet").config()


def test_unknown_names_suggest_close_names_and_aliases() -> None:
    with pytest.raises(WeightsError, match=r"unknown model name 'gfpgan-v1\.5'.*did you mean gfpgan-v1\.4"):
        get_entry("gfpgan-v1.5")
    with pytest.raises(WeightsError, match=r"did you mean gfpgan\.v1_4"):
        get_entry("gfpgan.v1_5")
    with pytest.raises(WeightsError, match="did you mean yunet"):
        resolve_file("yunnet")
    with pytest.raises(WeightsError, match="minerrestore models"):
        get_entry("zzzzzz")


def test_resolve_file_takes_names_paths_and_run_folders(tmp_path: Path) -> None:
    shipped = files.REPO_WEIGHTS_DIR / "minerrestore_d256.safetensors"
    assert resolve_file("default") == resolve_file("D256") == resolve_file("restorer.d256") == shipped
    assert resolve_file(shipped) == shipped and resolve_file(str(shipped)) == shipped
    run = tmp_path / "run"
    run.mkdir()
    (run / "restorer_ema.safetensors").write_bytes(b"x")
    assert resolve_file(run) == run / "restorer_ema.safetensors"
    with pytest.raises(WeightsError, match="no such model file"):
        resolve_file(tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="scheme-d is an architecture"):
        resolve_file("D")


def test_create_model_builds_an_architecture_or_loads_a_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tiny = {"out_size": 32, "narrow": 0.25, "num_style_feat": 32, "num_mlp": 1}
    random = create_model("scheme-a", **tiny)
    assert random.config == create_restorer("A", **tiny).config and random.config.removal == "unet"
    path = save_restorer(tmp_path / "tiny.safetensors", random)
    loaded = create_model(path, device="cpu")
    assert loaded.config == random.config
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in random.state_dict().items())
    assert create_model("a256").config.out_size == 256 and create_model("d128").config.out_size == 128
    with pytest.raises(UsageError, match="keeps its architecture"):
        create_model(path, out_size=64)
    with pytest.raises(WeightsError, match="yunet is a detector file, not a trained restorer"):
        create_model("detector.yunet")


def test_restore_names_load_the_shipped_restorers() -> None:
    paths = {name: load_model(name).path for name in ("default", "d256", "restorer.d256", "a256", "d128")}
    assert paths["default"] == paths["d256"] == paths["restorer.d256"] != paths["a256"] != paths["d128"]
    assert load_model("default").config.input_denoise == 3.0  # its input is cleaned as in its training
    assert load_model("default").name == "default"  # reports keep what was asked for
    with pytest.raises(WeightsError, match="architecture"):
        load_model("scheme-d")


def test_sha256_is_checked_once_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_digests: list[Path]
) -> None:
    first = resolve_file("yunet")
    for name in ("yunet", "detector.yunet", "YUNET"):
        assert resolve_file(name) == first
    assert fresh_digests == [first.resolve()]
    (tmp_path / "arcface_resnet18.pth").write_bytes(b"x")
    monkeypatch.setenv(files.WEIGHTS_ENV, str(tmp_path))
    assert resolve_file("arcface-resnet18") == tmp_path / "arcface_resnet18.pth"  # no known checksum: not hashed
    assert catalogue.is_present("identity.arcface_resnet18") and len(fresh_digests) == 1
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"x")  # a published checksum: checked
    with pytest.raises(WeightsError, match="e2cd4703ab14f4d0"):
        resolve_file("gfpgan-v1.4")


def test_checksum_mismatch_names_the_file_both_digests_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_digests: list[Path]
) -> None:
    copy = tmp_path / "face_detection_yunet.onnx"
    shutil.copy(files.REPO_WEIGHTS_DIR / copy.name, copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    monkeypatch.setenv(files.WEIGHTS_ENV, str(tmp_path))  # searched first
    with pytest.raises(WeightsError) as info:
        resolve_file("yunet")
    message = str(info.value)
    assert str(copy) in message and get_entry("yunet").sha256 in message
    assert files.sha256_of(copy) in message and "reinstall minerrestore" in message


def test_model_file_roundtrip_and_errors(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model(tiny_model)
    assert loaded.size == 64 and loaded.config.removal == "unetpp" and loaded.config.modulation == "se-cssft"
    assert not loaded.net.training and loaded.describe()["parameters"] > 0
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(loaded.net(x, fidelity=0.7).image, tiny_restorer()(x, fidelity=0.7).image)
    files.save_state_dict(tmp_path / "bare.safetensors", loaded.net.state_dict())  # no architecture stored
    assert load_model(tmp_path / "bare.safetensors").config == loaded.config  # inferred from the shapes
    files.save_state_dict(tmp_path / "junk.safetensors", {"w": torch.zeros(3)})
    with pytest.raises(WeightsError):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match=r"did you mean gfpgan-v1\.4"):
        load_model("gfpgan-v1.5")
    for name in ("REPO_WEIGHTS_DIR", "INSTALLED_WEIGHTS_DIR", "USER_WEIGHTS_DIR"):
        monkeypatch.setattr(files, name, tmp_path / "none")
    monkeypatch.delenv(files.WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError) as info:
        load_model("default")
    assert "minerrestore_d256.safetensors" in str(info.value) and "reinstall" in info.value.hint
    with pytest.raises(WeightsError, match=r"GFPGANv1\.4\.pth"):
        load_model("gfpgan-v1.4")
