"""``minerrestore augment``: the paper's x6 augmentation of a folder of faces (METHOD.md §1.1)."""

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
    finish,
    resolve_workers,
)
from minerrestore.data.augment import AUGMENT_MANIFEST, OPS, AugmentSettings, augment_folder, preview_augment
from minerrestore.errors import UsageError


def augment_command(
    input_path: Annotated[Path, typer.Argument(metavar="IN", help="Folder of face images (or one image).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (required unless --preview).")] = None,
    ops: Annotated[
        str, typer.Option("--ops", help=f"Comma-separated operations to write, from {','.join(OPS)}.")
    ] = ",".join(AugmentSettings.ops),
    angle: Annotated[float, typer.Option("--angle", help="Rotation in degrees.")] = AugmentSettings.angle,
    shift: Annotated[
        int, typer.Option("--shift", help="Translation in pixels, along x and y.")
    ] = AugmentSettings.shift,
    contrast: Annotated[
        float, typer.Option("--contrast", help="Contrast change: factor 1 +- this.")
    ] = AugmentSettings.contrast,
    brightness: Annotated[
        float, typer.Option("--brightness", help="Brightness change: factor 1 +- this.")
    ] = AugmentSettings.brightness,
    sign: Annotated[
        str,
        typer.Option("--sign", help="Directions: random (drawn per image from --seed), plus or minus."),
    ] = AugmentSettings.sign,
    border: Annotated[
        str, typer.Option("--border", help="Fill of rotation/translation: reflect, replicate or constant.")
    ] = AugmentSettings.border,
    ext: Annotated[
        str | None, typer.Option("--ext", help="Output format (png, jpg ...); default: the source's.")
    ] = None,
    preview: Annotated[
        Path | None,
        typer.Option("--preview", help="Only write a contact sheet PNG of the first few inputs, then stop."),
    ] = None,
    seed: SeedOption = 0,
    workers: WorkersOption = None,
    skip_existing: SkipExistingOption = False,
    overwrite: OverwriteOption = False,
    recursive: RecursiveOption = False,
    quiet: QuietOption = False,
    json_path: JsonOption = None,
) -> None:
    """Write each image plus its flip, rotation, translation, contrast and brightness variants.

    Outputs are OUT/<stem>_<op>.<ext> and OUT/augment_manifest.jsonl (source, op, params).
    """
    settings = AugmentSettings(
        ops=tuple(op.strip() for op in ops.split(",") if op.strip()),
        angle=angle,
        shift=shift,
        contrast=contrast,
        brightness=brightness,
        sign=sign,
        border=border,
    )
    if preview is not None:
        path = preview_augment(input_path, preview, settings, seed=seed, recursive=recursive)
        typer.echo(str(path))
        return
    if out is None:
        raise UsageError("missing --out", hint="give an output folder, or --preview PNG to look first")
    report = augment_folder(
        input_path,
        out,
        settings,
        seed=seed,
        ext=ext,
        workers=resolve_workers(workers),
        skip_existing=skip_existing,
        overwrite=overwrite,
        recursive=recursive,
        quiet=quiet,
    )
    finish(report, json_path, quiet, {"out": str(out), "manifest": str(out / AUGMENT_MANIFEST)})
