"""Options and helpers shared by every subcommand.

Each option is an ``Annotated`` alias so that every command spells it the same way:
``--device``, ``--seed``, ``--workers``, ``--json``, ``--skip-existing``,
``--recursive``, ``--quiet``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from minerrestore.batch import BatchReport, stderr_console
from minerrestore.device import default_workers
from minerrestore.io import atomic_write_text

DeviceOption = Annotated[
    str, typer.Option("--device", help="auto | cpu | cuda | cuda:N (auto picks CUDA when available).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same outputs.")]
WorkersOption = Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes (default: all cores).")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Write a JSON summary to this file ('-' for stdout).")]
SkipExistingOption = Annotated[
    bool, typer.Option("--skip-existing", help="Skip inputs whose outputs already exist (resume a run).")
]
OverwriteOption = Annotated[
    bool,
    typer.Option("--overwrite", help="Remove the outputs of an earlier run with other settings in --out first."),
]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary table.")]


def default_of(function: Callable[..., Any], parameter: str) -> Any:
    """The default value of a library function's parameter, so an option's default is written once."""
    return inspect.signature(function).parameters[parameter].default


def resolve_workers(workers: int | None) -> int:
    """``--workers`` value, defaulting to all cores."""
    return workers if workers is not None else default_workers()


def write_json_summary(path: Path | None, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (atomically) or to stdout when ``path`` is ``-``."""
    if path is None:
        return
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if str(path) == "-":
        typer.echo(text)
    else:
        atomic_write_text(path, text + "\n")


def finish(
    report: BatchReport,
    json_path: Path | None,
    quiet: bool,
    extra: dict[str, Any] | None = None,
    written: Sequence[str] = (),
) -> None:
    """End a batch command: summary table, what was written, JSON summary, exit code (0 all done, 1 some failed)."""
    if not quiet:
        report.print_summary()
        for line in written:
            stderr_console.print(f"wrote {line}", highlight=False, soft_wrap=True)
    write_json_summary(json_path, {**report.to_dict(), **(extra or {})})
    raise typer.Exit(report.exit_code)
