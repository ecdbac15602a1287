"""``minerrestore export``: a training checkpoint's EMA generator as a restorer file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    source: Annotated[Path, typer.Argument(help="A training run folder (its latest checkpoint) or a checkpoint .pt.")],
    out: Annotated[Path, typer.Argument(help="The .safetensors file to write (never overwritten).")],
    half: Annotated[bool, typer.Option("--half", help="Store float16 weights (half the size).")] = False,
    zero_constant_input: Annotated[
        bool,
        typer.Option(
            "--zero-constant-input",
            help="Set StyleGAN2's learned constant input to zero: removes the average face that a decoder "
            "trained without a prior paints over every input (how the shipped models were made).",
        ),
    ] = False,
) -> None:
    """Export the EMA generator of a checkpoint for `minerrestore restore --model FILE`, mid-run or after."""
    from minerrestore.models.export import describe_export, export_checkpoint

    path = export_checkpoint(source, out, half=half, zero_constant_input=zero_constant_input)
    typer.echo(f"wrote {path} ({describe_export(path)})")
