"""Weights registry: lookup messages, safe loading, checksums."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from minerrestore import weights
from minerrestore.errors import WeightsError


class _Payload:
    def __reduce__(self):  # executed on unpickling if the loader were unsafe
        return (os.system, ("touch pwned-by-pickle",))


def test_missing_file_message_says_where_and_what(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path))
    monkeypatch.setattr(weights, "REPO_WEIGHTS_DIR", tmp_path / "none")
    monkeypatch.setattr(weights, "INSTALLED_WEIGHTS_DIR", tmp_path / "none")
    monkeypatch.setattr(weights, "USER_WEIGHTS_DIR", tmp_path / "none")
    with pytest.raises(WeightsError) as info:
        weights.find_weight("gfpgan.v1_4")
    text = str(info.value)
    assert "GFPGANv1.4.pth" in text and "https://" in text and str(tmp_path) in text
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"x")
    assert weights.find_weight("gfpgan.v1_4") == tmp_path / "GFPGANv1.4.pth"


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(WeightsError, match=r"did you mean gfpgan\.v1_4"):
        weights.get_spec("gfpgan.v1_5")


def test_safetensors_roundtrip(tmp_path: Path) -> None:
    state = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    path = weights.save_state_dict(tmp_path / "m.safetensors", state, {"arch": "test"})
    loaded = weights.load_state_dict(path)
    assert set(loaded) == set(state) and torch.equal(loaded["a.weight"], state["a.weight"])


def test_pickle_with_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as handle:
        pickle.dump({"params": _Payload()}, handle)
    with pytest.raises(WeightsError, match="refused"):
        weights.load_state_dict(bad)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_plain_torch_checkpoint_loads(tmp_path: Path) -> None:
    torch.save({"params_ema": {"w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(weights.load_state_dict(tmp_path / "ok.pth")["params_ema"]["w"], torch.ones(2))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        weights.load_state_dict(tmp_path / "junk.pth")


def test_registered_checksums_hold_for_present_files() -> None:
    for name, spec in weights.REGISTRY.items():
        if spec.sha256 and weights.locate(name):
            assert weights.verify(name) is True, name


def test_every_shipped_file_is_in_the_repository_with_its_checksum() -> None:
    shipped = [spec for spec in weights.REGISTRY.values() if spec.source == "shipped"]
    assert {"restorer.d128", "restorer.a128", "detector.yunet"} <= {spec.name for spec in shipped}
    for spec in shipped:
        path = weights.REPO_WEIGHTS_DIR / spec.filename
        assert path.is_file(), f"{spec.filename} is registered as shipped but not in weights/"
        if spec.name.startswith("restorer."):
            assert path.stat().st_size <= 50 * 2**20, f"{spec.filename}: shipped restorers stay at most 50 MB"
        assert spec.sha256 and weights.sha256_of(path) == spec.sha256, spec.filename
