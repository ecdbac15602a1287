"""Training checkpoints to restorer files (``minerrestore export``), and the names of a run folder's files.

A training run (:mod:`minerrestore.train`) writes ``checkpoints/iter_NNNNNNNN.pt`` (networks,
EMA, optimisers, RNG states, the run's config as YAML) and, at its end,
``restorer_ema.safetensors``. :func:`export_checkpoint` turns any checkpoint (or a run's
latest) into the restorer file that ``minerrestore restore --model FILE`` loads. This module
works on the checkpoint's config as a plain mapping and never imports the training code;
torch loads when a checkpoint is first read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minerrestore.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT_FORMAT = "minerrestore.train/1"
"""The ``format`` entry of a training checkpoint."""
CHECKPOINT_PATTERN = re.compile(r"iter_(\d{8})\.pt$")
"""File names of checkpoints in a run's ``checkpoints/`` folder (group 1: the iteration)."""
RUN_CONFIG = "config.yml"
"""The resolved config of a run, in its folder."""
RUN_CHECKPOINTS = "checkpoints"
"""The folder of a run's checkpoints."""
EMA_EXPORT = "restorer_ema.safetensors"
"""The EMA generator a finished run writes into its folder (what ``restore --model RUN_DIR`` loads)."""


def checkpoint_name(iteration: int) -> str:
    """File name of the checkpoint of ``iteration`` (``iter_00005000.pt``)."""
    return f"iter_{iteration:08d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every checkpoint in a run's ``checkpoints/`` folder, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, loaded safely (``torch.load(weights_only=True)``) onto the CPU.

    Raises:
        WeightsError: unreadable, or carrying code.
        UsageError: not a minerrestore training checkpoint.
    """
    from minerrestore.models.files import load_state_dict

    state = load_state_dict(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path}: not a minerrestore training checkpoint")
    return state


def create_generator(model: Mapping[str, Any]) -> nn.Module:
    """The (randomly initialised) restorer of a run config's ``model`` section, as a plain mapping."""
    from minerrestore.archs.restorer import create_restorer

    return create_restorer(model["scheme"], out_size=model["out_size"], narrow=model["narrow"], **model["arch"])


def export_checkpoint(
    source: str | Path, out: str | Path, half: bool = False, zero_constant_input: bool = False
) -> Path:
    """Save the EMA generator of a training checkpoint (or a run's latest) as a restorer file.

    The file is what ``minerrestore restore --model FILE`` loads; it records the iteration and
    the run's config in its metadata. Existing files are never overwritten.

    Args:
        source: a checkpoint ``.pt`` or a run folder (its latest checkpoint is used).
        out: the ``.safetensors`` file to write.
        half: store float16 tensors (half the size; loaded back as float32).
        zero_constant_input: set StyleGAN2's learned 4 x 4 constant input to zero (recorded in the
            metadata as ``model.zero_constant_input``). A decoder trained without a prior learns
            an average face there and paints it over every input (weights/MODEL_CARD.md).

    Raises:
        UsageError: no checkpoint at ``source``, or ``out`` exists.
    """
    import yaml

    from minerrestore.archs.restorer import freeze_constant_input_at_zero

    source, out = Path(source), Path(out)
    if out.exists():
        raise UsageError(f"{out} exists: refusing to overwrite it", hint="choose another output file")
    if source.is_dir():
        checkpoints = list_checkpoints(source / RUN_CHECKPOINTS)
        if not checkpoints:
            raise UsageError(f"{source}: no checkpoint in {source / RUN_CHECKPOINTS}")
        source = checkpoints[-1][1]
    elif not source.is_file():
        raise UsageError(
            f"{source}: no such training checkpoint or run folder",
            hint="give a run folder (train.out_dir) or one of its checkpoints/iter_*.pt",
        )
    state = load_checkpoint(source)
    config = yaml.safe_load(state["config"])
    generator = create_generator(config["model"])
    generator.load_state_dict(state["modules"]["generator_ema"])
    if zero_constant_input:
        freeze_constant_input_at_zero(generator)
        config = {**config, "model": {**config["model"], "zero_constant_input": True}}
    if half:
        generator.half()
    return save_generator(out, generator, int(state["iteration"]), config)


def describe_export(path: str | Path) -> str:
    """Which iteration a restorer file written by :func:`export_checkpoint` holds, and whether its run had ended."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    iteration, total = int(metadata["iteration"]), int(json.loads(metadata["config"])["train"]["iterations"])
    ended = "the run's last" if iteration >= total else f"a run of {total} iterations not at its end yet"
    return f"EMA generator of iteration {iteration}, {ended}"


def run_model_file(run: str | Path) -> Path:
    """The restorer file of a training run folder: its EMA export, or its newest checkpoint when newer.

    A run still in progress (or resumed past its export) gives the checkpoint, whose EMA
    generator ``restore`` loads; a note on stderr says which iteration.

    Raises:
        UsageError: the folder holds neither an export nor a checkpoint.
    """
    from minerrestore.batch import stderr_console

    run = Path(run)
    export = run / EMA_EXPORT
    checkpoints = list_checkpoints(run / RUN_CHECKPOINTS)
    exported = -1
    if export.is_file() and checkpoints:
        from safetensors import safe_open

        try:
            with safe_open(str(export), "pt") as handle:
                exported = int((handle.metadata() or {}).get("iteration", -1))
        except Exception:  # not one of our exports: the checkpoint is newer
            exported = -1
    if checkpoints and checkpoints[-1][0] > exported:
        iteration, path = checkpoints[-1]
        stderr_console.print(
            f"note: {run} has no export of its newest checkpoint: using the EMA generator of iteration {iteration} "
            f"({path.name}); `minerrestore export {run} FILE` writes it as a restorer file",
            highlight=False,
            soft_wrap=True,
        )
        return path
    if export.is_file():
        return export
    raise UsageError(
        f"{run}: a folder with neither {EMA_EXPORT} nor a checkpoint in {RUN_CHECKPOINTS}/",
        hint="give a training run folder (train.out_dir), a restorer file or a model name",
    )


def save_generator(path: Path, generator: nn.Module, iteration: int, config: Mapping[str, Any]) -> Path:
    """A restorer file with the run's iteration and config (a plain mapping) in its metadata (``restore --model``)."""
    from minerrestore.archs.checkpoints import save_restorer

    metadata = {"iteration": str(iteration), "config": json.dumps(config)}
    return save_restorer(path, generator, metadata)


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_PATTERN",
    "EMA_EXPORT",
    "RUN_CHECKPOINTS",
    "RUN_CONFIG",
    "checkpoint_name",
    "create_generator",
    "describe_export",
    "export_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "run_model_file",
    "save_generator",
]
