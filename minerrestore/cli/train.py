"""``minerrestore train``: train a restorer from a YAML config (paper sections 3-4); see :mod:`minerrestore.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minerrestore.cli.options import JsonOption, QuietOption, write_json_summary
from minerrestore.errors import EXIT_INTERRUPTED, MinerRestoreError


def train_command(
    config: Annotated[
        str,
        typer.Option(
            "--config",
            "-c",
            help=(
                "YAML config file, or a shipped config: tiny, default128, default256, default256_stage2, "
                "default256_stage3 and default256_stage4_grey (the default d256's four stages), paper512, "
                "paper512_a ... paper512_g."
            ),
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY=VALUE]...", help="Config overrides, e.g. optim.lr_g=1e-3 data.train_dir=faces/."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in train.out_dir from its latest checkpoint.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N (default: train.device of the config).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: train.seed of the config).")] = None,
    quiet: QuietOption = False,
    json_path: JsonOption = None,
) -> None:
    """Train (or resume) a restorer; checkpoints, logs and validation grids go to train.out_dir.

    Multi-GPU: torchrun --nproc_per_node=N -m minerrestore train --config FILE.yml
    """
    from minerrestore.train import train

    settings = list(overrides or [])
    if device is not None:
        settings.append(f"train.device={device}")
    if seed is not None:
        settings.append(f"train.seed={seed}")
    result = train(config, resume=resume, overrides=settings, quiet=quiet)
    summary = {
        "run_dir": str(result.run_dir),
        "iteration": result.iteration,
        "interrupted": result.interrupted,
        "diverged": result.diverged,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "ema_weights": str(result.ema_weights) if result.ema_weights else None,
        "validation": result.validation,
        "seconds": round(result.seconds, 1),
    }
    write_json_summary(json_path, summary)
    if json_path is None or str(json_path) != "-":
        typer.echo(str(result.ema_weights or result.checkpoint or Path(result.run_dir)))
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.diverged:
        raise MinerRestoreError(
            result.diverged, hint=f"checkpoint {result.checkpoint}; lower the learning rates (optim.lr_g) and retrain"
        )
