"""The command line entry point: help, version, weights table, error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minerrestore import __version__
from minerrestore.cli import flag_text, main
from minerrestore.errors import UsageError
from minerrestore.models.catalogue import FILE_KINDS, names


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "weights" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2


def test_flag_text_writes_settings_as_flags() -> None:
    assert flag_text("give either ref or ref_stats, not both", ["ref", "ref_stats"]) == (
        "give either --ref or --ref-stats, not both"
    )
    assert flag_text("save_ref_stats needs ref REF_DIR.", ["ref", "save_ref_stats"]) == (
        "--save-ref-stats needs --ref REF_DIR."
    )
    assert flag_text("run it again with skip_existing", ["skip_existing"]) == "run it again with --skip-existing"
    assert flag_text("out_dir /data/out_dir/x: choose another out_dir", ["out_dir"]) == (
        "--out /data/out_dir/x: choose another --out"
    )
    kept = "ext 'ext' (a,ext) ext.png ext_b ext-b train.ext=png --ext (ext)"
    assert flag_text(kept, ["ext"]) == "--ext 'ext' (a,ext) ext.png ext_b ext-b train.ext=png --ext (ext)"
    assert flag_text("device: no", []) == "device: no"


def test_errors_name_settings_in_python_and_flags_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise UsageError("out_dir x is bad", hint="give ext or out_dir", settings=("out_dir", "ext"))

    monkeypatch.setattr("minerrestore.cli.app", lambda **_: fail())
    assert main([]) == 2
    assert capsys.readouterr().err == "error: --out x is bad\nhint: give --ext or --out\n"


def test_weights_json_lists_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == names(*FILE_KINDS)
    for row in rows:
        assert {"aliases", "kind", "purpose", "license", "url", "sha256", "present", "searched"} <= set(row)


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
