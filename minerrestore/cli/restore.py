"""``minerrestore restore``: restore every face of photos (detect, align, restore, paste back)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from minerrestore.cli.options import (
    DeviceOption,
    JsonOption,
    QuietOption,
    RecursiveOption,
    SkipExistingOption,
    default_of,
    finish,
)
from minerrestore.distributed import distributed_env
from minerrestore.face.detect import DETECTORS
from minerrestore.models.catalogue import DEFAULT_MODEL, get_entry, names
from minerrestore.restore import Restorer
from minerrestore.restore_files import DEFAULT_SAVE, REPORT_NAME, SAVE_KINDS, restore_paths
from minerrestore.video import VIDEO_CODECS, VideoOptions

_MODEL_HELP = (
    f"{', '.join(names('restorer'))} ({DEFAULT_MODEL} = {get_entry(DEFAULT_MODEL).name}; "
    "old names such as restorer.d128 still work), "
    "a training run folder, or a file."
)


def _stdin_paths() -> list[str]:
    """One path per line of standard input; blank lines and ``#`` comments are ignored."""
    return [line.strip() for line in sys.stdin if line.strip() and not line.lstrip().startswith("#")]


def restore_command(
    input_path: Annotated[
        str, typer.Argument(metavar="IN", help="An image, a folder, or '-' to read paths (one per line) from stdin.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (sub-folders per --save, report.json).")],
    model: Annotated[
        str,
        typer.Option("--model", "-m", help=_MODEL_HELP),
    ] = Restorer.model,
    save: Annotated[
        str, typer.Option("--save", help=f"Comma-separated outputs among {','.join(SAVE_KINDS)}, or all.")
    ] = ",".join(DEFAULT_SAVE),
    detector: Annotated[
        str, typer.Option("--detector", help=f"Face detector: {' or '.join(DETECTORS)}.")
    ] = Restorer.detector,
    det_threshold: Annotated[
        float | None, typer.Option("--det-threshold", help="Detection score threshold (default: the detector's).")
    ] = None,
    min_face: Annotated[
        float, typer.Option("--min-face", min=0, help="Ignore smaller faces (pixels).")
    ] = Restorer.min_face,
    aligned: Annotated[bool, typer.Option("--aligned", help="Inputs already are FFHQ-aligned faces.")] = False,
    only_center_face: Annotated[bool, typer.Option("--only-center-face", help="Only the central face.")] = False,
    max_faces: Annotated[
        int | None, typer.Option("--max-faces", min=1, help="At most this many faces per photo (best first).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Faces per network forward.")
    ] = Restorer.batch_size,
    fidelity: Annotated[
        str,
        typer.Option(
            "--fidelity",
            metavar="auto|0..1",
            help="auto = per face, from how degraded it is (a clean face stays as it is); "
            "or 0 = pure face prior ... 1 = closest to the input, the network's face replacing the photo's.",
        ),
    ] = Restorer.fidelity,
    upscale: Annotated[
        float, typer.Option("--upscale", min=1.0, max=16.0, help="Output size factor (background: --bg-upsampler).")
    ] = Restorer.upscale,
    color_match: Annotated[
        str, typer.Option("--color-match", help="Match pasted faces to the photo: mean, meanstd or none.")
    ] = Restorer.color_match,
    parse: Annotated[
        bool, typer.Option("--parse", help="ParseNet face masks for pasting (user file; ~6 s per face on CPU).")
    ] = False,
    paste_mask: Annotated[
        str, typer.Option("--paste-mask", help="Without --parse: oval (the face only) or square (the whole crop).")
    ] = Restorer.paste_mask,
    bg_upsampler: Annotated[
        str,
        typer.Option(
            "--bg-upsampler",
            help="Background: none (Lanczos) or realesrgan (Real-ESRGAN x2plus/x4plus by --upscale; "
            "`minerrestore weights download realesrgan-x2plus realesrgan-x4plus`).",
        ),
    ] = Restorer.bg_upsampler,
    bg_tile: Annotated[
        int, typer.Option("--bg-tile", min=0, help="Real-ESRGAN tile side in pixels (bounds memory; 0 = whole photo).")
    ] = Restorer.bg_tile,
    low_light: Annotated[
        str,
        typer.Option(
            "--low-light",
            help="Brighten, denoise and de-cast the whole photo: auto (dark photos only), on or off.",
        ),
    ] = Restorer.low_light,
    ext: Annotated[str, typer.Option("--ext", help="auto (as the input), png or jpg.")] = default_of(
        restore_paths, "ext"
    ),
    suffix: Annotated[str | None, typer.Option("--suffix", help="Append _SUFFIX to restored file names.")] = None,
    video_codec: Annotated[
        str, typer.Option("--video-codec", help=f"Videos: encoder, {' or '.join(VIDEO_CODECS)}.")
    ] = VideoOptions.codec,
    video_crf: Annotated[
        int, typer.Option("--video-crf", help="Videos: quality, 0 (lossless) ... 51 (18 looks like the input).")
    ] = VideoOptions.crf,
    video_smooth: Annotated[
        bool,
        typer.Option(
            "--video-smooth/--no-video-smooth",
            help="Videos: track faces, smooth landmarks and per-face settings over frames.",
        ),
    ] = VideoOptions.smooth,
    device: DeviceOption = Restorer.device,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bfloat16 where native), float32 or bfloat16.")
    ] = Restorer.precision,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes over files (default 1: torch uses every core).")
    ] = default_of(restore_paths, "workers"),
    skip_existing: SkipExistingOption = False,
    recursive: RecursiveOption = False,
    quiet: QuietOption = False,
    json_path: JsonOption = None,
) -> None:
    """Restore the faces of each photo into OUT/restored_imgs (and the other --save folders).

    Videos (.mp4 .mov .avi .mkv; need PyAV, the extra "video") go to OUT/restored_videos
    with their frame timing and audio kept.

    Under torchrun --nproc_per_node=N each process takes every N-th file; rank 0 writes report.json.
    """
    restorer = Restorer(
        model,
        device=device,
        detector=detector,
        det_threshold=det_threshold,
        min_face=min_face,
        max_faces=max_faces,
        only_center_face=only_center_face,
        aligned=aligned,
        fidelity=fidelity,
        upscale=upscale,
        batch_size=batch_size,
        precision=precision,
        color_match=color_match,
        parse=parse,
        paste_mask=paste_mask,
        bg_upsampler=bg_upsampler,
        bg_tile=bg_tile,
        low_light=low_light,
    )
    inputs = _stdin_paths() if input_path == "-" else [input_path]
    report = restore_paths(
        inputs,
        out,
        restorer=restorer,
        save=save,
        ext=ext,
        suffix=suffix,
        recursive=recursive,
        skip_existing=skip_existing,
        workers=workers,
        quiet=quiet,
        video=VideoOptions(video_codec, video_crf, video_smooth),
    )
    rank, _ = distributed_env()
    finish(
        report,
        json_path if rank == 0 else None,
        quiet,
        {"out": str(out), "report": str(out / REPORT_NAME)},
        written=report.written,
    )
