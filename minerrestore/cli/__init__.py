"""The ``minerrestore`` command line: a thin Typer layer over the library.

Each subcommand lives in its own module of this package; it parses options and calls
one library function. Errors are handled here, in one place: a
:class:`~minerrestore.errors.MinerRestoreError` becomes one line on stderr (with its
hint) and exit code 1 (2 for usage errors), with the settings it names written as
flags (:func:`flag_text`); set ``MINERRESTORE_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from minerrestore import __version__
from minerrestore.cli.augment import augment_command
from minerrestore.cli.degrade import degrade_command
from minerrestore.cli.evaluate import evaluate_command, spread_compare
from minerrestore.cli.export import export_command
from minerrestore.cli.models import models_command
from minerrestore.cli.restore import restore_command
from minerrestore.cli.train import train_command
from minerrestore.cli.weights import weights_app
from minerrestore.errors import EXIT_USAGE, MinerRestoreError

DEBUG_ENV = "MINERRESTORE_DEBUG"

app = typer.Typer(
    name="minerrestore",
    help="Blind restoration of miner face images (improved GFP-GAN: UNet++ + SE-CSSFT).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"minerrestore {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Blind restoration of miner face images (improved GFP-GAN: UNet++ + SE-CSSFT)."""


app.command("augment")(augment_command)
app.command("degrade")(degrade_command)
app.command("train")(train_command)
app.command("restore")(restore_command)
app.command("evaluate")(evaluate_command)
app.command("export")(export_command)
app.command("models")(models_command)
app.add_typer(weights_app, name="weights")


FLAG_NAMES = {"out_dir": "out", "identity_network": "identity_net"}
"""Settings whose flag is not the name with dashes (``out_dir`` is ``--out``)."""


def flag_text(text: str, settings: Iterable[str]) -> str:
    """``text`` with each of ``settings`` written as its flag (``skip_existing`` -> ``--skip-existing``).

    Names in :data:`FLAG_NAMES` take their flag from there. Only a name that stands as a
    word of its own is replaced (see :class:`~minerrestore.errors.MinerRestoreError`):
    ``ref`` is not replaced inside ``ref_stats``, ``/data/out_dir`` or ``train.out_dir=...``.
    """
    names = sorted(set(settings), key=len, reverse=True)
    if not names:
        return text
    pattern = r"(?<!\S)(" + "|".join(map(re.escape, names)) + r")(?=[:,;.]?(?:\s|$))"
    return re.sub(pattern, lambda match: "--" + FLAG_NAMES.get(match[1], match[1]).replace("_", "-"), text)


def main(args: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script passes it to ``sys.exit``)."""
    args = list(sys.argv[1:] if args is None else args)
    if args[:1] == ["evaluate"]:
        args = spread_compare(args)
    try:
        app(args=args, prog_name="minerrestore")
    except SystemExit as exc:  # normal end, usage errors (2) and typer.Exit(code)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MinerRestoreError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        typer.echo(f"error: {flag_text(exc.message, exc.settings)}", err=True)
        if exc.hint:
            typer.echo(f"hint: {flag_text(exc.hint, exc.settings)}", err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["EXIT_USAGE", "FLAG_NAMES", "app", "flag_text", "main"]
