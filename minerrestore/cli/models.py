"""``minerrestore models``: the catalogue's architectures and restorers with their parameters and GFLOPs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from minerrestore.cli.options import JsonOption, write_json_summary
from minerrestore.errors import UsageError

DEFAULT_SIZES = (512, 128)


def models_command(
    sizes: Annotated[
        list[int] | None,
        typer.Option("--size", help="Face size of the architectures' GFLOPs columns (repeatable; default 512, 128)."),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """List the architectures (schemes A-G of the paper, the official GFP-GAN layout) and the restorers.

    Each with its catalogue name and aliases (old names such as A or restorer.d128 still work),
    parameters and GFLOPs per face. GFLOPs count convolutions and matrix multiplies (2 per
    multiply-add) of one forward pass; a restorer is measured at its own size.
    """
    from minerrestore.archs.profile import scheme_table

    sizes = sizes or list(DEFAULT_SIZES)
    for size in sizes:
        if size < 16 or size > 1024 or size & (size - 1):
            raise UsageError(f"--size {size}: must be a power of two from 16 to 1024")
    rows = scheme_table(sizes)
    write_json_summary(json_path, rows)
    if json_path is not None and str(json_path) == "-":
        return
    from rich.console import Console
    from rich.table import Table

    def named(row: dict[str, Any]) -> str:
        return f"{row['name']} ({', '.join(row['aliases'])})" if row["aliases"] else str(row["name"])

    architectures = Table(title="architectures (paper Tables 4-7; channel multiplier 1 unless noted; random weights)")
    columns = ("name", "removal", "modulation", f"parameters (M) @{sizes[0]}", *(f"GFLOPs @{s}" for s in sizes), "note")
    for column in columns:
        architectures.add_column(
            column, justify="right" if "GFLOPs" in column or "param" in column else "left", overflow="fold"
        )
    restorers = Table(title="restorers (trained weights; restore --model NAME)")
    for column in ("name", "architecture", "size", "parameters (M)", "GFLOPs", "note"):
        restorers.add_column(
            column, justify="right" if column in ("size", "parameters (M)", "GFLOPs") else "left", overflow="fold"
        )
    for row in rows:
        if row["kind"] == "architecture":
            architectures.add_row(
                named(row),
                str(row["removal"]),
                str(row["modulation"]),
                f"{row['parameters'] / 1e6:.2f}",
                *(f"{row[f'gflops_{s}']:.1f}" for s in sizes),
                str(row["note"]),
            )
        else:
            gflops = row[f"gflops_{row['out_size']}"]
            restorers.add_row(
                named(row),
                str(row["architecture"]),
                str(row["out_size"]),
                f"{row['parameters'] / 1e6:.2f}",
                f"{gflops:.1f}",
                str(row["note"]),
            )
    console = Console()
    console.print(architectures)
    console.print(restorers)
