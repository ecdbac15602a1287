"""The CLI starts without importing heavy libraries it does not need for parsing."""

from __future__ import annotations

import subprocess
import sys


def test_model_catalogue_does_not_import_torch() -> None:
    code = "import sys, minerrestore, minerrestore.models, minerrestore.io; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cli_parses_without_torch() -> None:
    """``minerrestore --help``, ``weights``, ``augment`` and ``degrade`` never need torch."""
    code = "import sys, minerrestore.cli, minerrestore.metrics; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
