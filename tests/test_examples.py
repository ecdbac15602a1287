"""The README's main line: the shipped default model restores every file of examples/, offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from minerrestore.cli import main
from minerrestore.io import list_images
from minerrestore.models.catalogue import load_model
from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
MAIN_LINE = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/minerrestore restore examples/ --out restored/"
)


def test_readme_main_line_restores_the_examples() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    first_command = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    assert first_command == MAIN_LINE


def test_default_model_is_the_shipped_scheme_d_at_256_px() -> None:
    model = load_model("default")
    assert model.path.parent == REPO_ROOT / "weights" and model.path.name == "minerrestore_d256.safetensors"
    assert (model.config.removal, model.config.modulation, model.config.out_size) == ("unetpp", "se-cssft", 256)
    assert (load_model("a256").config.removal, load_model("a256").config.modulation) == ("unet", "cs-sft")


def test_default_model_restores_every_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = list_images(EXAMPLES)
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in inputs}
    out = tmp_path / "restored"
    assert main(["restore", str(EXAMPLES), "--out", str(out), "--device", "cpu"]) == 0
    assert "restored_imgs" in capsys.readouterr().err  # the summary shows where the results went
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == sorted(p.name for p in inputs)
    report = json.loads((out / "report.json").read_text())
    assert report["done"] == len(inputs) == 7 and report["model"]["config"]["removal"] == "unetpp"
    faces = {Path(item["item"]).name: item["info"]["face_count"] for item in report["items"]}
    assert faces["Solvay_conference_1927_pit.png"] >= 25 and faces["T000250_dark.png"] == 1, faces
    # the miner draws are not chosen by detection: the worst leave no face, and the report says so
    assert sorted(Path(item).name for item in report["no_face"]) == sorted(k for k, n in faces.items() if n == 0)
    dark = next(item["info"] for item in report["items"] if item["item"].endswith("T000250_dark.png"))
    assert dark["low_light"]["mode"] == "auto" and dark["low_light"]["input_mean_luminance"] < 10 / 255
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in inputs} == digests
