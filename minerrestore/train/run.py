"""A training run's folder: its layout, opening a new or resumed run, and the checks before training.

A run lives in one folder (``train.out_dir``, see :mod:`minerrestore.train`). :func:`prepare_run`
is what rank 0 does before any network is built: make paths absolute, refuse to overwrite a
run (or pick up the saved config and latest checkpoint when resuming), check the data folders
and weight files, save the resolved config and find (and align once) the faces. The heavy parts
load on first use, so importing this module (and :mod:`minerrestore.train`) does not import torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minerrestore.errors import ConfigError, UsageError
from minerrestore.io import atomic_write_text
from minerrestore.models.export import EMA_EXPORT, RUN_CHECKPOINTS, RUN_CONFIG, checkpoint_name, list_checkpoints
from minerrestore.settings import to_dict, to_yaml
from minerrestore.train.config import Config, load_config, replace

if TYPE_CHECKING:
    from minerrestore.data.datasets import DataPlan

RUN_FILES = (RUN_CONFIG, "log.jsonl", RUN_CHECKPOINTS)  # a folder holding any of these is a run


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run folder.

    Attributes:
        root: the run folder (``train.out_dir``).
    """

    root: Path

    @property
    def config(self) -> Path:
        """The resolved config, ``config.yml``."""
        return self.root / RUN_CONFIG

    @property
    def checkpoints(self) -> Path:
        """Folder of checkpoints."""
        return self.root / RUN_CHECKPOINTS

    @property
    def log(self) -> Path:
        """JSON-lines log."""
        return self.root / "log.jsonl"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event folder."""
        return self.root / "tensorboard"

    @property
    def val(self) -> Path:
        """Folder of validation grids."""
        return self.root / "val"

    @property
    def aligned(self) -> Path:
        """Cache of aligned faces."""
        return self.root / "aligned"

    @property
    def loss_curves(self) -> Path:
        """Loss-curve plot."""
        return self.root / "loss_curves.png"

    @property
    def ema_export(self) -> Path:
        """EMA generator weights written at the end."""
        return self.root / EMA_EXPORT

    def checkpoint(self, iteration: int) -> Path:
        """Checkpoint file of ``iteration``."""
        return self.checkpoints / checkpoint_name(iteration)

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """(iteration, path) of every checkpoint, oldest first."""
        return list_checkpoints(self.checkpoints)


@dataclass
class TrainResult:
    """What :func:`minerrestore.train.train` did.

    Attributes:
        run_dir: the run folder.
        iteration: iterations completed.
        interrupted: stopped early by Ctrl-C or SIGTERM (resume with ``resume=True``).
        checkpoint: the last checkpoint written.
        ema_weights: the exported EMA generator (None when interrupted).
        validation: the last validation figures.
        seconds: wall time of this session.
        diverged: why the loss guard stopped the run (a loss and its iteration), else None.
    """

    run_dir: Path
    iteration: int
    interrupted: bool
    checkpoint: Path | None
    ema_weights: Path | None
    validation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    diverged: str | None = None


def config_from(config: Config | str | Path, overrides: Sequence[str]) -> Config:
    """``config`` (a Config, a YAML file or a shipped name) with ``overrides`` applied and checked."""
    if isinstance(config, Config):
        return replace(config, overrides) if overrides else config
    return load_config(config, overrides)


def _is_run_folder(root: Path) -> bool:
    return root.is_dir() and any((root / name).exists() for name in RUN_FILES)


def _open_run(config: Config, resume: bool, overrides: Sequence[str]) -> tuple[Config, Path | None, list[str]]:
    """Check the run folder (new, or resumable) and return the config to use, the checkpoint, notes.

    For a new run the folder must not exist, be empty, or hold only an alignment cache
    (``aligned/``, copied from another run to skip aligning again). When resuming, the run's saved
    config is used with ``overrides`` applied again (e.g. ``train.iterations`` to extend it).
    """
    root = Path(config.train.out_dir).expanduser()
    layout = RunLayout(root)
    notes: list[str] = []
    if not resume:
        if root.exists() and (not root.is_dir() or any(path != layout.aligned for path in root.iterdir())):
            state = "holds a run" if _is_run_folder(root) else "is not empty"
            raise UsageError(
                f"train.out_dir {root} {state}: refusing to overwrite it",
                hint="continue it with resume, or choose a new folder with train.out_dir=...",
                settings=("resume",),
            )
        return config, None, notes
    if not layout.config.is_file():
        raise UsageError(
            f"resume: {root} holds no run (no config.yml)", hint="drop resume to start a new run", settings=("resume",)
        )
    original = load_config(layout.config)
    saved = replace(original, [*overrides, f"train.out_dir={json.dumps(str(root))}"])
    changed = _differences(to_dict(saved), to_dict(config))
    if changed:
        notes.append("resuming with the run's saved config; the given config differs in: " + ", ".join(changed))
    frozen = [
        name
        for name in _differences(to_dict(original.optim), to_dict(saved.optim), "optim.")
        if name.split(".")[-1] in RESUMED_OPTIMISER_SETTINGS
    ]
    if frozen:
        notes.append(
            f"{', '.join(frozen)} changed, but a resumed run keeps the learning rates, betas and "
            "schedule saved in its checkpoint: start a new run (model.init=...) to change them"
        )
    checkpoints = layout.list_checkpoints()
    if not checkpoints:
        notes.append(f"no checkpoint in {layout.checkpoints}: starting the run again from iteration 0")
        return saved, None, notes
    return saved, checkpoints[-1][1], notes


RESUMED_OPTIMISER_SETTINGS = frozenset(
    {"lr_g", "lr_d", "lr_components", "betas_g", "betas_d", "betas_components", "milestones", "gamma"}
)
"""``optim`` settings that live in the optimiser and scheduler states, so a resume restores them."""


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _absolute_paths(config: Config) -> Config:
    """Data and weight paths made absolute, so that a resumed run works from any folder."""
    changes = []
    for key in ("data.train_dir", "data.paired_dir", "data.val_dir", "train.out_dir"):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if isinstance(value, tuple):  # data.train_dir: several folders
            changes.append(f"{key}={json.dumps([str(Path(v).expanduser().resolve()) for v in value])}")
        elif value is not None:
            changes.append(f"{key}={json.dumps(str(Path(value).expanduser().resolve()))}")
    return replace(config, changes) if changes else config


def prepare_run(
    config: Config, resume: bool, overrides: Sequence[str], quiet: bool
) -> tuple[Config, Path | None, DataPlan]:
    """Rank 0's checks before training: run folder, weights, data (aligned once), config saved.

    Returns:
        The config to train with, the checkpoint to resume from (or None) and the faces.
    """
    from minerrestore.data.datasets import check_data_folders, plan_data
    from minerrestore.train.log import RunLog
    from minerrestore.train.networks import check_weights

    config, checkpoint, notes = _open_run(_absolute_paths(config), resume, overrides)
    layout = RunLayout(Path(config.train.out_dir))
    if config.data.batch_size % int(os.environ.get("WORLD_SIZE", "1")):
        raise ConfigError(
            f"data.batch_size {config.data.batch_size} is not divisible by the {os.environ['WORLD_SIZE']} processes",
            hint="data.batch_size is the total batch over all processes",
        )
    check_data_folders(config)
    check_weights(config)
    layout.root.mkdir(parents=True, exist_ok=True)
    if not layout.config.is_file() or notes:
        atomic_write_text(layout.config, to_yaml(config))
    plan = plan_data(config, layout, quiet)
    log = RunLog(layout, True, quiet, False)
    for note in notes:
        log.note(f"[yellow]{note}[/yellow]")
    if plan.skipped:
        log.note(f"[yellow]{len(plan.skipped)} image(s) skipped (no face found or unreadable):[/yellow]")
        for line in plan.skipped[:20]:
            log.note(f"  {line}")
        if len(plan.skipped) > 20:
            log.note(f"  ... and {len(plan.skipped) - 20} more (see {layout.aligned}/*/index.json)")
    return config, checkpoint, plan


__all__ = ["RESUMED_OPTIMISER_SETTINGS", "RUN_FILES", "RunLayout", "TrainResult", "config_from", "prepare_run"]
