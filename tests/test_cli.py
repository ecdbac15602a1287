"""The command line entry point: help, version, weights table, error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minerrestore import __version__
from minerrestore.cli import main
from minerrestore.weights import REGISTRY


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "weights" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2


def test_weights_json_lists_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == set(REGISTRY)
    for row in rows:
        assert {"purpose", "license", "url", "sha256", "present", "searched"} <= set(row)


def test_weights_table_and_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["weights", "--verify", "--json", str(tmp_path / "w.json")]) == 0
    rows = json.loads((tmp_path / "w.json").read_text())
    present = [row for row in rows if row["present"]]
    assert all(row["checksum_ok"] is not False for row in present)
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "model files" in out and "present" in out


def test_console_script_runs_as_module() -> None:
    done = subprocess.run([sys.executable, "-m", "minerrestore", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout
