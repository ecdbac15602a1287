"""``minerrestore evaluate``: PSNR, SSIM, LPIPS, FID, NIQE and identity over folders (METHOD.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from minerrestore.cli.options import DeviceOption, JsonOption, QuietOption, RecursiveOption, write_json_summary
from minerrestore.errors import UsageError
from minerrestore.metrics import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IDENTITY_NETWORK,
    DEFAULT_LPIPS_NET,
    IDENTITY_NETWORKS,
    METRICS,
)


def spread_compare(args: Sequence[str]) -> list[str]:
    """``evaluate R --compare A B`` as ``--compare A --compare B``: the folders after the flag, up to the next option.

    RESTORED therefore comes before ``--compare``.
    """
    spread: list[str] = []
    taking = False
    for index, arg in enumerate(args):
        if arg.startswith("-"):
            taking = arg == "--compare"
        elif taking and index > 0 and args[index - 1] != "--compare":
            spread.append("--compare")
        spread.append(arg)
    return spread


def evaluate_command(
    restored: Annotated[Path, typer.Argument(metavar="RESTORED", help="Folder of restored images.")],
    gt: Annotated[
        Path | None, typer.Option("--gt", help="Ground-truth folder; images are paired by file name stem.")
    ] = None,
    ref: Annotated[Path | None, typer.Option("--ref", help="FID reference folder (default: --gt).")] = None,
    ref_stats: Annotated[
        Path | None, typer.Option("--ref-stats", help="FID reference statistics (.npz) instead of --ref.")
    ] = None,
    save_ref_stats: Annotated[
        Path | None, typer.Option("--save-ref-stats", help="Save the FID reference statistics to this .npz.")
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help=f"Comma-separated subset of {','.join(METRICS)} (default: all possible)."),
    ] = None,
    compare: Annotated[
        list[Path] | None,
        typer.Option(
            "--compare", help="Other methods' folders, scored against the same --gt (--compare A B or repeated)."
        ),
    ] = None,
    pairs_only: Annotated[
        bool, typer.Option("--pairs-only", help="Score the images that have a partner; list the others.")
    ] = False,
    recursive: RecursiveOption = False,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write a bar chart PNG of the table.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write per-image values to this CSV file.")] = None,
    crop_border: Annotated[
        int, typer.Option("--crop-border", min=0, help="Pixels dropped on each side for PSNR, SSIM and NIQE.")
    ] = 0,
    y_channel: Annotated[bool, typer.Option("--y-channel", help="PSNR and SSIM on the Y channel, not RGB.")] = False,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = DEFAULT_LPIPS_NET,
    unaligned: Annotated[
        bool,
        typer.Option("--unaligned", help="Images are not FFHQ-aligned faces: resize whole images for identity."),
    ] = False,
    identity_net: Annotated[
        str,
        typer.Option(
            "--identity-net",
            help=f"Identity network: {', '.join(IDENTITY_NETWORKS)}. auto: ArcFace ResNet-18 (papers' 'Deg.') "
            "when arcface_resnet18.pth is present, else MobileFaceNet; dlib reports a distance "
            "(pip install dlib-bin face-recognition-models).",
        ),
    ] = DEFAULT_IDENTITY_NETWORK,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per network batch.")
    ] = DEFAULT_BATCH_SIZE,
    device: DeviceOption = "auto",
    json_path: JsonOption = None,
    quiet: QuietOption = False,
) -> None:
    """Score restored faces: one row per method (RESTORED, then each --compare), like the paper's Table 3.

    The table (stdout) states the exact variant of every metric; notes go to stderr.
    """
    from minerrestore.evaluate import evaluate
    from minerrestore.evaluate_report import print_report

    if lpips_net not in ("alex", "vgg"):
        raise UsageError(f"--lpips-net {lpips_net!r} is not alex or vgg")
    report = evaluate(
        restored,
        gt,
        compare=compare or (),
        ref=ref,
        ref_stats=ref_stats,
        save_ref_stats=save_ref_stats,
        metrics=metrics.split(",") if metrics else None,
        crop_border=crop_border,
        y_channel=y_channel,
        lpips_net=lpips_net,
        aligned_faces=not unaligned,
        identity_network=identity_net.lower(),
        batch_size=batch_size,
        pairs_only=pairs_only,
        recursive=recursive,
        device=device,
        quiet=quiet,
    )
    if csv_path is not None:
        report.write_csv(csv_path)
    if chart is not None:
        report.write_chart(chart)
    if not quiet and str(json_path) != "-":
        print_report(report)
    write_json_summary(json_path, report.to_dict())
