"""``minerrestore weights``: every model file the toolkit knows, where it is, and its checksum."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from minerrestore import weights as registry
from minerrestore.cli.options import JsonOption, write_json_summary

weights_app = typer.Typer(help="List, verify and inspect model files.", invoke_without_command=True)


@weights_app.callback()
def list_weights(
    ctx: typer.Context,
    verify: Annotated[bool, typer.Option("--verify", help="Compute SHA-256 of present files.")] = False,
    json_path: JsonOption = None,
) -> None:
    """List every model file: name, purpose, licence, official URL, SHA-256, where looked for, present."""
    if ctx.invoked_subcommand is not None:
        return
    rows = registry.status_rows(check_hashes=verify)
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
        table.add_row(
            str(row["name"]),
            str(row["purpose"]),
            str(row["license"]),
            f"{row['source']}\n{row['url']}",
            str(row["sha256"] or "not published"),
            present,
        )
    console = Console()
    console.print(table)
    console.print("searched: " + ", ".join(str(folder) for folder in registry.search_dirs()))
    if verify and any(row.get("checksum_ok") is False for row in rows):
        raise typer.Exit(1)
