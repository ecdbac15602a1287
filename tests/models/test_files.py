"""Model files: lookup messages, safe loading, checksums and their cache."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from minerrestore.errors import WeightsError
from minerrestore.models import files
from minerrestore.models.catalogue import FILE_KINDS, entries, get_entry


class _Payload:
    def __reduce__(self):  # executed on unpickling if the loader were unsafe
        return (os.system, ("touch pwned-by-pickle",))


def test_missing_file_message_says_where_and_what(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(files.WEIGHTS_ENV, str(tmp_path))
    monkeypatch.setattr(files, "REPO_WEIGHTS_DIR", tmp_path / "none")
    monkeypatch.setattr(files, "INSTALLED_WEIGHTS_DIR", tmp_path / "none")
    monkeypatch.setattr(files, "USER_WEIGHTS_DIR", tmp_path / "none")
    entry = get_entry("gfpgan-v1.4")
    with pytest.raises(WeightsError) as info:
        files.find(entry)
    text = str(info.value)
    assert "GFPGANv1.4.pth" in text and "https://" in text and str(tmp_path) in text
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"x")
    assert files.find(entry) == tmp_path / "GFPGANv1.4.pth"


def test_safetensors_roundtrip(tmp_path: Path) -> None:
    state = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    path = files.save_state_dict(tmp_path / "m.safetensors", state, {"arch": "test"})
    loaded = files.load_state_dict(path)
    assert set(loaded) == set(state) and torch.equal(loaded["a.weight"], state["a.weight"])


def test_pickle_with_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as handle:
        pickle.dump({"params": _Payload()}, handle)
    with pytest.raises(WeightsError, match="refused"):
        files.load_state_dict(bad)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_plain_torch_checkpoint_loads(tmp_path: Path) -> None:
    torch.save({"params_ema": {"w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(files.load_state_dict(tmp_path / "ok.pth")["params_ema"]["w"], torch.ones(2))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        files.load_state_dict(tmp_path / "junk.pth")


def test_registered_checksums_hold_for_present_files() -> None:
    for entry in entries(*FILE_KINDS):
        path = files.locate(entry)
        if entry.sha256 and path is not None:
            assert files.sha256_of(path) == entry.sha256, entry.name


def test_every_shipped_file_is_in_the_repository_with_its_checksum() -> None:
    shipped = [entry for entry in entries(*FILE_KINDS) if entry.source == "shipped"]
    assert {"d256", "a256", "d128", "yunet"} <= {entry.name for entry in shipped}
    for entry in shipped:
        path = files.REPO_WEIGHTS_DIR / entry.filename
        assert path.is_file(), f"{entry.filename} is registered as shipped but not in weights/"
        if entry.kind == "restorer":
            assert path.stat().st_size <= 50 * 2**20, f"{entry.filename}: shipped restorers stay at most 50 MB"
        assert entry.sha256 and files.sha256_of(path) == entry.sha256, entry.filename


def test_cached_sha256_hashes_each_file_version_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"one")
    hashed: list[Path] = []
    real = files.sha256_of
    monkeypatch.setattr(files, "sha256_of", lambda p: hashed.append(Path(p)) or real(p))
    first = files.cached_sha256(path)
    assert files.cached_sha256(path) == first and files.cached_sha256(tmp_path / "." / "m.bin") == first
    assert hashed == [path.resolve()]
    path.write_bytes(b"other")  # a new size (and mtime): hashed again
    assert files.cached_sha256(path) != first and len(hashed) == 2


def test_files_are_recognised_by_content_not_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20: safetensors named .pt, zip and legacy pickles named anything; junk is not 'pickled code'."""
    from minerrestore.cli import main

    state = {"w": torch.arange(3.0)}
    files.save_state_dict(tmp_path / "export.pt", state)  # what `export x.pt` writes
    torch.save(state, tmp_path / "zip.safetensors")
    torch.save(state, tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    for name, kind in (("export.pt", "safetensors"), ("zip.safetensors", "zip"), ("legacy.bin", "pickle")):
        assert files.sniff_format(tmp_path / name) == kind
        assert torch.equal(files.load_state_dict(tmp_path / name)["w"], state["w"])
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "photo.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "cut.pth").write_bytes((tmp_path / "zip.safetensors").read_bytes()[:200])
    for name in ("notes.txt", "photo.pt", "random.pth", "cut.pth"):
        with pytest.raises(WeightsError) as caught:
            files.load_state_dict(tmp_path / name)
        assert "pickled code" not in str(caught.value)
    capsys.readouterr()
    assert main(["weights", "inspect", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "not a model file" in err and "Traceback" not in err
