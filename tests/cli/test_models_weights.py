"""``minerrestore models`` and ``minerrestore weights inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minerrestore.archs.checkpoints import save_restorer
from minerrestore.archs.restorer import SCHEMES, create_restorer
from minerrestore.cli import main
from minerrestore.models.catalogue import load_model, names


def test_models_lists_every_architecture_and_restorer_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--size", "64", "--size", "32", "--json", "-"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in listed] == names("architecture", "restorer")
    rows = {row["scheme"]: row for row in listed if row["kind"] == "architecture"}
    assert set(rows) == set(SCHEMES) and rows["D"]["name"] == "scheme-d" and rows["D"]["aliases"] == ["D"]
    assert rows["D"]["gflops_64"] > rows["D"]["gflops_32"] > 0
    assert rows["D"]["parameters"] > rows["A"]["parameters"] > 1_000_000
    d256 = next(row for row in listed if row["name"] == "d256")
    assert d256["architecture"] == "scheme-d" and d256["out_size"] == 256 and "default" in d256["aliases"]
    assert d256["gflops_256"] > 0 and d256["parameters"] == load_model("d256").describe()["parameters"]


def test_models_table_and_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "se-cssft" in out and "unetpp" in out and "scheme-d" in out and "d256" in out
    assert main(["models", "--size", "100"]) == 2
    assert "power of two" in capsys.readouterr().err


def test_weights_inspect_reports_what_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_restorer(tmp_path / "a.safetensors", create_restorer("A", out_size=32, narrow=0.25))
    assert main(["weights", "inspect", str(path), "--target", "D", "--json", "-"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"]["removal"] == "unet" and info["target_scheme"] is None
    assert info["target"]["modulation"] == "se-cssft" and info["new"] > 0 and info["loaded"] > 0
    assert main(["weights", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "loaded" in out and "new 0" in out
    assert main(["weights", "inspect", "restorer.a256", "--json", "-"]) == 0  # a catalogue name (old or new)
    assert json.loads(capsys.readouterr().out)["scheme"] is None
    assert main(["weights", "inspect", str(tmp_path / "missing.pth")]) == 2
    assert "no such model file" in capsys.readouterr().err
