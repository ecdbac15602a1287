"""``minerrestore models``: the restorer schemes with their parameters and GFLOPs."""

from __future__ import annotations

from typing import Annotated

import typer

from minerrestore.cli.options import JsonOption, write_json_summary
from minerrestore.errors import UsageError

DEFAULT_SIZES = (512, 128)


def models_command(
    sizes: Annotated[
        list[int] | None,
        typer.Option("--size", help="Face size for the GFLOPs columns (repeatable; default 512 and 128)."),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """List the schemes A-G of the paper and the official GFP-GAN layout: parameters and GFLOPs per face.

    GFLOPs count convolutions and matrix multiplies (2 per multiply-add) of one forward pass.
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

    table = Table(title="restorer schemes (paper Tables 4-7; channel multiplier 1 unless noted)")
    columns = (
        "scheme",
        "removal",
        "modulation",
        f"parameters (M) @{sizes[0]}",
        *(f"GFLOPs @{s}" for s in sizes),
        "note",
    )
    for column in columns:
        table.add_column(column, justify="right" if "GFLOPs" in column or "param" in column else "left")
    for row in rows:
        table.add_row(
            str(row["scheme"]),
            str(row["removal"]),
            str(row["modulation"]),
            f"{row['parameters'] / 1e6:.2f}",
            *(f"{row[f'gflops_{s}']:.1f}" for s in sizes),
            str(row["note"]),
        )
    Console().print(table)
