"""``minerrestore weights``: every model file the toolkit knows, where it is, and its checksum."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from minerrestore.cli.options import JsonOption, write_json_summary
from minerrestore.models import catalogue, files

weights_app = typer.Typer(
    help="List, verify and inspect model files by catalogue name (old names such as gfpgan.v1_4 still work).",
    invoke_without_command=True,
)


@weights_app.callback()
def list_weights(
    ctx: typer.Context,
    verify: Annotated[bool, typer.Option("--verify", help="Compute SHA-256 of present files.")] = False,
    json_path: JsonOption = None,
) -> None:
    """List every model file: name, purpose, licence, official URL, SHA-256, where looked for, present."""
    if ctx.invoked_subcommand is not None:
        return
    rows = catalogue.status_rows(check_hashes=verify)
    if json_path is not None:
        write_json_summary(json_path, rows)
        if str(json_path) == "-":
            return
    table = Table(title="model files", show_lines=True)
    for column in ("name", "purpose", "licence", "source / URL", "SHA-256", "present"):
        table.add_column(column, overflow="fold")
    for row in rows:
        present = f"[green]yes[/green] {row['path']}" if row["present"] else "[red]no[/red]"
        if "checksum_ok" in row:
            state = {True: "[green]checksum ok[/green]", False: "[red]CHECKSUM MISMATCH[/red]"}
            present += "\n" + state.get(row["checksum_ok"], f"sha256 {row['actual_sha256']}")
        aliases = f"\n[dim]also {', '.join(row['aliases'])}[/dim]" if row["aliases"] else ""
        table.add_row(
            f"{row['name']} ({row['kind']}){aliases}",
            str(row["purpose"]),
            str(row["license"]),
            f"{row['source']}\n{row['url']}",
            str(row["sha256"] or "not published"),
            present,
        )
    console = Console()
    console.print(table)
    console.print("searched: " + ", ".join(str(folder) for folder in files.search_dirs()))
    if verify and any(row.get("checksum_ok") is False for row in rows):
        raise typer.Exit(1)


@weights_app.command("inspect")
def inspect_weights(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="Checkpoint file, or a model name such as gfpgan-v1.4 (old names still work)."
        ),
    ],
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Architecture to load into (scheme-a ... scheme-g or A-G, gfpgan-clean): what loads, what is new.",
        ),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """Architecture of a checkpoint, its parameter count, and what loads into --target (default: itself)."""
    from minerrestore.archs.checkpoints import inspect_checkpoint

    info = inspect_checkpoint(catalogue.resolve_file(file), target=target)
    write_json_summary(json_path, info)
    if json_path is not None and str(json_path) == "-":
        return
    console = Console()
    console.print(
        f"[bold]{info['path']}[/bold]: {info['layout']} layout, {info['tensors']} tensors, "
        f"{info['file_parameters'] / 1e6:.2f} M parameters (from '{info['source_key'] or 'top level'}')"
    )
    if info["architecture"] is None:
        return
    arch = info["architecture"]
    console.print(f"architecture: scheme {info['scheme'] or '-'}: " + ", ".join(f"{k}={v}" for k, v in arch.items()))
    console.print(
        f"target: scheme {info['target_scheme'] or '-'} ({info['target']['removal']} + "
        f"{info['target']['modulation']}), {info['target_parameters'] / 1e6:.2f} M parameters"
    )
    console.print(
        f"loaded {info['loaded']} tensors, new {info['new']}, shape mismatch {info['mismatched']}, "
        f"unused {info['unused']}"
    )
    for label in ("new_modules", "mismatched_modules", "unused_modules"):
        for module, count in info[label].items():
            console.print(f"  {label.removesuffix('_modules')}: {module} ({count})")
