"""Training of the improved GFP-GAN: the library side of ``minerrestore train``.

Trains a restorer of :mod:`minerrestore.archs.restorer` (any of the paper's schemes A-G,
METHOD.md section 2) with the losses of :mod:`minerrestore.losses` (paper Eq. 9-13 and
GFP-GAN's pyramid and style terms, METHOD.md section 3) and the optimisation of section 4:
Adam for the generator, the StyleGAN2 discriminator (lazy R1) and the three facial-component
discriminators, an exponential moving average of the generator, a multi-step learning rate.

A run lives in one folder (``train.out_dir``)::

    config.yml                 the resolved config (what this run really used)
    checkpoints/iter_NNNNNNNN.pt   networks, EMA, optimisers, schedulers, iteration, RNG states
    log.jsonl                  one JSON record per log step, validation and event
    tensorboard/               TensorBoard events (when tensorboard is installed)
    val/iter_NNNNNNNN.png      validation grids: degraded | restored (EMA) | ground truth
    aligned/                   faces aligned once with the detector and the FFHQ template
    restorer_ema.safetensors   the EMA generator at the end (for ``minerrestore restore``)
    loss_curves.png            the losses over the run

Checkpoints are written atomically every ``train.checkpoint_every`` iterations, at the end,
and on Ctrl-C/SIGTERM (the current iteration finishes first), so a run killed outright loses
at most one interval. ``resume=True`` continues exactly: the data order comes from
(seed, epoch), every degradation from (seed, epoch, file name), and the noise from the
restored random-number states; on CPU a resumed run reproduces the uninterrupted one.

Under ``torchrun --nproc_per_node=N`` each process trains on its share of every batch
(``data.batch_size`` is the total) and gradients are averaged over processes after every
backward pass (gloo on CPU, NCCL on CUDA); rank 0 aligns the data, logs, validates and writes
checkpoints. On CUDA the forward passes run under autocast (``optim.amp``).

The modules:

- :mod:`.config`: the typed training config (``Config``, ``load_config``, shipped configs).
- :mod:`.run`: the run folder (``RunLayout``, ``TrainResult``), new or resumed runs, rank 0's checks.
- :mod:`.networks`: generator, EMA, discriminators, loss networks, the weight files they need.
- :mod:`.loop`: ``Trainer`` (steps, checkpoints, exact resume), Ctrl-C handling, random states.
- :mod:`.validation`: validation pairs, metrics and grids. :mod:`.log`: logs and loss curves.

The data (faces, pairs, batch order) is :mod:`minerrestore.data.datasets`, the torchrun
plumbing :mod:`minerrestore.distributed`, and checkpoint export :mod:`minerrestore.models.export`.
Importing this package (or its config) does not import torch; :func:`train` loads the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minerrestore.train.config import Config
from minerrestore.train.run import TrainResult


def train(
    config: Config | str | Path,
    resume: bool = False,
    overrides: Sequence[str] = (),
    *,
    quiet: bool = False,
) -> TrainResult:
    """Train a restorer (``minerrestore train``).

    Args:
        config: a :class:`~minerrestore.train.config.Config`, a YAML file, or a shipped config name
            (``tiny``, ``default128``, ``paper512_a`` ... ``paper512_g``).
        resume: continue the run in ``train.out_dir`` from its latest checkpoint (with its
            saved config); without it the folder must be new or empty.
        overrides: ``key.path=value`` settings applied on top (also when resuming).
        quiet: no progress bar or log lines on the console (log.jsonl is still written).

    Returns:
        :class:`TrainResult`.

    Raises:
        ConfigError: an invalid config or override.
        UsageError: a missing or empty data folder, an existing run folder without ``resume``,
            no usable face.
        WeightsError: a weight file the config needs is missing (before anything is trained).
    """
    from minerrestore.distributed import init_distributed, main_first
    from minerrestore.train.loop import Trainer, announce, deterministic_algorithms
    from minerrestore.train.run import RunLayout, config_from, prepare_run
    from minerrestore.train.validation import Validator, build_validator

    config = config_from(config, overrides)
    dist, device = init_distributed(config.train.device)
    try:
        config, checkpoint, plan = main_first(dist, lambda: prepare_run(config, resume, overrides, quiet))
        with deterministic_algorithms(config.train.deterministic, device):
            trainer = Trainer(config, RunLayout(Path(config.train.out_dir)), dist, device, quiet)
            trainer.setup(checkpoint)
            validators: list[Validator] = []  # built on rank 0 only
            main_first(dist, lambda: validators.append(build_validator(config, plan)))
            announce(trainer, plan, checkpoint)
            return trainer.run(plan, validators[0] if validators else None)
    finally:
        dist.close()


__all__ = ["Config", "TrainResult", "train"]
