"""``minerrestore weights``: every model file the toolkit knows, where it is, and its checksum."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from minerrestore.cli.options import JsonOption, write_json_summary
from minerrestore.models import catalogue, files
from minerrestore.models.download import DEFAULT_TIMEOUT, MIRROR_ENV, download_weights

MirrorOption = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        envvar=MIRROR_ENV,
        help="Base URL (http://, file://) or folder holding the same file names (default: the official URLs).",
    ),
]

weights_app = typer.Typer(
    help="List, verify, download and inspect model files by catalogue name (old names such as gfpgan.v1_4 work).",
    invoke_without_command=True,
)


@weights_app.callback()
def list_weights(
    ctx: typer.Context,
    verify: Annotated[bool, typer.Option("--verify", help="Compute SHA-256 of present files.")] = False,
    mirror: MirrorOption = None,
    json_path: JsonOption = None,
) -> None:
    """List every model file: name, purpose, licence, download source, SHA-256, where looked for, present."""
    if ctx.invoked_subcommand is not None:
        return
    rows = catalogue.status_rows(check_hashes=verify, mirror=mirror)
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
            f"{row['source']}\n{row['download_from'] or row['url']}",
            str(row["sha256"] or "not published") + (f"\n[dim]{row['sha256_note']}[/dim]" * bool(row["sha256_note"])),
            present,
        )
    console = Console()
    console.print(table)
    console.print("searched: " + ", ".join(str(folder) for folder in files.search_dirs()))
    if verify and any(row.get("checksum_ok") is False for row in rows):
        raise typer.Exit(1)


@weights_app.command("download")
def download_command(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="NAME...", help="Catalogue names (gfpgan-v1.4, realesrgan-x4plus ...)")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every downloadable file.")] = False,
    mirror: MirrorOption = None,
    allow_unknown_hash: Annotated[
        bool, typer.Option("--allow-unknown-hash", help="Also files without a published SHA-256 (digest printed).")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds without an answer before giving up.")
    ] = DEFAULT_TIMEOUT,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_path: JsonOption = None,
) -> None:
    """Download model files into the user weights folder: resumable, SHA-256 verified, atomic."""
    from minerrestore.cli import flag_text

    report = download_weights(
        names or (),
        everything=everything,
        mirror=mirror,
        allow_unknown_hash=allow_unknown_hash,
        timeout=timeout,
        quiet=quiet,
    )
    write_json_summary(json_path, report.to_dict())
    console = Console(stderr=json_path is not None and str(json_path) == "-", highlight=False, soft_wrap=True)
    for item in report.done:
        checked = "SHA-256 verified" if item.verified else f"no published SHA-256; got {item.sha256}"
        resumed = f", resumed at {item.resumed_from} bytes" if item.resumed_from else ""
        console.print(f"{item.name}: {item.status} {item.path} ({checked}{resumed})")
    for name, reason in report.skipped.items():
        console.print(f"{name}: skipped, {flag_text(reason, ('allow_unknown_hash',))}")
    for name, error in report.failed.items():
        console.print(f"[red]{name}: failed[/red] {flag_text(str(error), error.settings)}")
    if report.failed:
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
