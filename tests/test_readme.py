"""The README's test line is what CI runs."""

from __future__ import annotations

from tests.conftest import REPO_ROOT


def test_ci_runs_the_readme_test_line() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_line = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    assert test_line in ci.splitlines()


def test_every_readme_command_line_parses() -> None:
    """Issue 20: each ``minerrestore ...`` example of the README names real options with valid values.

    Parsed by the CLI itself (nothing runs), after the same rewriting ``main`` does
    (``evaluate --compare A B``).
    """
    import shlex

    import click
    import typer

    from minerrestore.cli import app
    from minerrestore.cli.evaluate import spread_compare

    group = typer.main.get_command(app)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line.split("minerrestore", 1)[1] for line in readme.splitlines() if line.startswith("minerrestore ")]
    assert len(lines) > 20
    for line in lines:
        args = shlex.split(line, comments=True)
        if args[:1] == ["evaluate"]:
            args = spread_compare(args)
        command, rest = group.commands[args[0]], args[1:]
        if isinstance(command, click.Group) and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        try:
            command.make_context(args[0], rest)
        except click.UsageError as exc:
            raise AssertionError(f"README line {line!r}: {exc}") from exc
