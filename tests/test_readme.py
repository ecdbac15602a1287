"""The README's test line is what CI runs."""

from __future__ import annotations

from tests.conftest import REPO_ROOT


def test_ci_runs_the_readme_test_line() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_line = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    assert test_line in ci.splitlines()
