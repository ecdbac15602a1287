"""``minerrestore degrade``: (gt, lq) training pairs with the paper's Eq. 14 or a preset (METHOD.md §1.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minerrestore.cli.options import (
    JsonOption,
    OverwriteOption,
    QuietOption,
    RecursiveOption,
    SeedOption,
    SkipExistingOption,
    WorkersOption,
    default_of,
    finish,
    resolve_workers,
)
from minerrestore.data.degradation import FITS, DegradationSettings
from minerrestore.data.pairs import DEGRADE_MANIFEST, degrade_folder, preview_degrade
from minerrestore.data.presets import BUILTIN_PRESETS
from minerrestore.errors import UsageError


def degrade_command(
    input_path: Annotated[Path, typer.Argument(metavar="IN", help="Folder of high-quality faces (or one image).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (required unless --preview).")] = None,
    preset: Annotated[
        str, typer.Option("--preset", help=f"{' or '.join(BUILTIN_PRESETS)}, or a path to your own YAML preset.")
    ] = DegradationSettings.preset,
    size: Annotated[
        int, typer.Option("--size", min=8, help="Side of the square ground truth in pixels.")
    ] = DegradationSettings.size,
    fit: Annotated[
        str, typer.Option("--fit", help=f"Non-square sources: {' or '.join(FITS)} (centre square or plain resize).")
    ] = DegradationSettings.fit,
    split: Annotated[
        float | None,
        typer.Option("--split", help="Train fraction, e.g. 0.8: OUT/train and OUT/test, by source image."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", help="Redo a degrade_manifest.jsonl bit for bit (sources under IN)."),
    ] = None,
    ext: Annotated[str, typer.Option("--ext", help="Output format of gt and lq.")] = default_of(degrade_folder, "ext"),
    preview: Annotated[
        Path | None,
        typer.Option("--preview", help="Only write a contact sheet PNG of the first few inputs, then stop."),
    ] = None,
    seed: SeedOption = DegradationSettings.seed,
    workers: WorkersOption = None,
    skip_existing: SkipExistingOption = False,
    overwrite: OverwriteOption = False,
    recursive: RecursiveOption = False,
    quiet: QuietOption = False,
    json_path: JsonOption = None,
) -> None:
    """Resize each face to --size, degrade it, and write OUT/gt/<name> and OUT/lq/<name>.

    Every drawn parameter goes to OUT/degrade_manifest.jsonl; --replay redoes it exactly.
    """
    settings = DegradationSettings(preset=preset, size=size, fit=fit, seed=seed)
    if preview is not None:
        path = preview_degrade(input_path, preview, settings, recursive=recursive)
        typer.echo(str(path))
        return
    if out is None:
        raise UsageError("missing --out", hint="give an output folder, or --preview PNG to look first")
    report = degrade_folder(
        input_path,
        out,
        settings,
        split=split,
        replay=replay,
        ext=ext,
        workers=resolve_workers(workers),
        skip_existing=skip_existing,
        overwrite=overwrite,
        recursive=recursive,
        quiet=quiet,
    )
    finish(report, json_path, quiet, {"out": str(out), "manifest": str(out / DEGRADE_MANIFEST)})
