"""The training loop: one session of a run (fresh or resumed), its checkpoints and random states.

Checkpoints are written atomically every ``train.checkpoint_every`` iterations, at the end,
and on Ctrl-C/SIGTERM (the current iteration finishes first, :class:`StopRequest`), so a run
killed outright loses at most one interval. A resumed run continues exactly: the data order
comes from (seed, epoch), every degradation from (seed, epoch, file name), and the noise from
the random-number states saved with each checkpoint.

Under torchrun each process trains on its share of every batch and gradients are averaged
over processes after every backward pass (:meth:`minerrestore.distributed.Distributed.average_gradients`).
Averaging gradients explicitly instead of wrapping the networks in ``DistributedDataParallel``
keeps the GAN's switching of ``requires_grad`` and the parameters the loss stops using
(pyramid outputs after ``pyramid_until``) correct without ``find_unused_parameters``. On CUDA
the forward passes run under autocast (``optim.amp``).

Follows the official GFP-GAN training (``gfpgan/models/gfpgan_model.py``,
``options/train_gfpgan_v1.yml``, Apache-2.0); written for minerrestore (MIT).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from minerrestore import losses as L
from minerrestore.data.datasets import DataPlan, FacePairs, IterationSampler
from minerrestore.distributed import Distributed
from minerrestore.errors import UsageError
from minerrestore.io import atomic_path, write_image
from minerrestore.models.export import CHECKPOINT_FORMAT, load_checkpoint, save_generator
from minerrestore.settings import to_dict, to_yaml
from minerrestore.train.config import Config
from minerrestore.train.guard import LossGuard
from minerrestore.train.log import RunLog, plot_loss_curves
from minerrestore.train.networks import Networks, build_networks, trainable_parameters, update_ema
from minerrestore.train.run import RunLayout, TrainResult
from minerrestore.train.validation import Validator

# =============================================================================================
# random-number states


def _rng_state() -> dict[str, Any]:
    """This process's random states (torch CPU and CUDA, NumPy, Python) as tensors and plain values."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "gauss": float(numpy_state[4]),
        },
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np_state = ("MT19937", keys, state["numpy"]["pos"], state["numpy"]["has_gauss"], state["numpy"]["gauss"])
    np.random.set_state(np_state)
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_process(seed: int, rank: int) -> None:
    """Seed every generator of this process from (seed, rank): the ranks draw different noise."""
    from minerrestore.device import seed_everything

    seed_everything(seed * 1_000_003 + rank)


# =============================================================================================
# the training loop


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks to stop after the current iteration, a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Trainer:
    """One training session of a run (fresh or resumed); use :func:`train`.

    Args:
        config: the resolved config.
        layout: the run folder.
        dist: this process's place in the process group.
        device: where to train.
        quiet: no console output.
    """

    def __init__(self, config: Config, layout: RunLayout, dist: Distributed, device: torch.device, quiet: bool) -> None:
        self.config = config
        self.layout = layout
        self.dist = dist
        self.device = device
        self.quiet = quiet
        self.log = RunLog(layout, dist.is_main, quiet, config.log.tensorboard)
        self.iteration = 0
        self.rng_states: list[dict[str, Any]] | None = None  # from the checkpoint, per rank
        self.amp_dtype: torch.dtype | None = None
        if config.optim.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaling = self.amp_dtype == torch.float16
        self.nets: Networks
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=scaling) for name in ("g", "d", "components")}

    # ----------------------------------------------------------------------------- setup

    def setup(self, checkpoint: Path | None) -> None:
        """Build networks, optimisers and schedulers; load ``checkpoint`` when resuming."""
        config, optim = self.config, self.config.optim
        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        self.nets = build_networks(config, self.device)
        nets = self.nets
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "g": torch.optim.Adam(trainable_parameters(nets.generator), lr=optim.lr_g, betas=optim.betas_g)
        }
        if nets.discriminator is not None:
            ratio = config.losses.r1_every / (config.losses.r1_every + 1)  # lazy R1 (StyleGAN2, GFP-GAN)
            betas = (optim.betas_d[0] ** ratio, optim.betas_d[1] ** ratio)
            self.optimizers["d"] = torch.optim.Adam(nets.discriminator.parameters(), lr=optim.lr_d * ratio, betas=betas)
        if len(nets.components):
            self.optimizers["components"] = torch.optim.Adam(
                nets.components.parameters(), lr=optim.lr_components, betas=optim.betas_components
            )
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(optim.milestones), gamma=optim.gamma)
            for name, opt in self.optimizers.items()
        }
        for module in self._modules().values():
            self.dist.sync_module(module)
        if checkpoint is not None:
            self._load(checkpoint)

    def _modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"generator": self.nets.generator, "generator_ema": self.nets.ema}
        if self.nets.discriminator is not None:
            modules["discriminator"] = self.nets.discriminator
        if len(self.nets.components):
            modules["components"] = self.nets.components
        return modules

    # ----------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current iteration (collective: every rank must call it)."""
        rng_states = self.dist.gather(_rng_state())
        path = self.layout.checkpoint(self.iteration)
        if self.dist.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "iteration": self.iteration,
                "config": to_yaml(self.config),
                "world_size": self.dist.world_size,
                "modules": {name: module.state_dict() for name, module in self._modules().items()},
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
                "sampler": {"seed": self.config.train.seed, "iteration": self.iteration},
                "rng": rng_states,
            }
            with atomic_path(path) as temp:
                torch.save(state, temp)
            for _, old in self.layout.list_checkpoints()[: -self.config.train.keep_checkpoints]:
                old.unlink(missing_ok=True)
        self.dist.barrier()
        return path

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        for name, module in self._modules().items():
            if name not in state["modules"]:
                raise UsageError(f"{path}: no {name} weights in the checkpoint", hint="the config changed the losses")
            module.load_state_dict(state["modules"][name])
        for group in ("optimizers", "schedulers", "scalers"):
            objects = {"optimizers": self.optimizers, "schedulers": self.schedulers, "scalers": self.scalers}[group]
            for name, target in objects.items():
                if name in state[group]:
                    target.load_state_dict(state[group][name])
        self.iteration = int(state["iteration"])
        self.rng_states = state["rng"]

    def _start_random_streams(self) -> None:
        """Seed (fresh run) or restore (resumed run) the random states, right before the first iteration."""
        states = self.rng_states
        if states is None:
            _seed_process(self.config.train.seed, self.dist.rank)
        elif len(states) == self.dist.world_size:
            _set_rng_state(states[self.dist.rank])
        else:
            self.log.note(
                f"[yellow]checkpoint of {len(states)} process(es) resumed with {self.dist.world_size}: "
                "random streams are re-seeded (data order and degradations are unaffected)[/yellow]"
            )
            _seed_process(self.config.train.seed + self.iteration, self.dist.rank)

    # ----------------------------------------------------------------------------- steps

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _step(self, name: str, loss: Tensor, parameters: Sequence[nn.Parameter]) -> None:
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.dist.average_gradients(parameters)
        scaler.step(optimizer)
        scaler.update()

    def generator_step(self, lq: Tensor, gt: Tensor, boxes: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One generator update; returns the (detached) restored batch and the weighted loss terms."""
        nets, weights = self.nets, self.config.losses
        for critic in (nets.discriminator, nets.components):
            if critic is not None:
                critic.requires_grad_(False)
        pyramid = weights.pyramid > 0 and self.iteration < weights.pyramid_until
        terms: dict[str, Tensor] = {}
        with self._autocast():
            result = nets.generator(lq, randomize_noise=True, return_rgb=pyramid)
            image = result.image
            if weights.l1 > 0:
                terms["l1"] = weights.l1 * F.l1_loss(image, gt)
            if pyramid:
                terms["pyramid"] = weights.pyramid * L.pyramid_l1(result.rgbs, gt)
            if nets.perceptual is not None:
                perceptual, style = nets.perceptual(image, gt, with_style=weights.style > 0)
                terms["perceptual"] = weights.perceptual * perceptual
                if weights.style > 0:
                    terms["style"] = weights.style * style
            if nets.discriminator is not None and weights.gan > 0:
                terms["gan"] = weights.gan * L.generator_gan_loss(nets.discriminator(self._critic_view(image)))
            if len(nets.components):
                terms.update(self._component_generator_terms(image, gt, boxes))
            if nets.identity is not None:
                terms["identity"] = weights.identity * nets.identity(image, gt)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        self._step("g", total, trainable_parameters(nets.generator))
        update_ema(nets.ema, nets.generator, self.config.optim.ema_decay)
        terms["total"] = total
        return image.detach(), terms

    def _critic_view(self, image: Tensor) -> Tensor:
        """What the discriminators see of a batch: itself, or its grey (``losses.gan_grey``)."""
        return L.grey(image) if self.config.losses.gan_grey else image

    def _component_patches(self, image: Tensor, gt: Tensor, boxes: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        eye, mouth = L.component_patch_sizes(self.config.model.out_size)
        image, gt = self._critic_view(image), self._critic_view(gt)
        return L.crop_components(image, boxes, eye, mouth), L.crop_components(gt, boxes, eye, mouth)

    def _component_generator_terms(self, image: Tensor, gt: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        weights = self.config.losses
        fakes, reals = self._component_patches(image, gt, boxes)
        gan, style = image.new_zeros(()), image.new_zeros(())
        for name, fake, real in zip(L.COMPONENTS, fakes, reals, strict=True):
            critic = self.nets.components[name]
            logits, fake_features = critic(fake, return_feats=True)
            gan = gan + L.generator_gan_loss(logits)
            if weights.component_style > 0:
                _, real_features = critic(real, return_feats=True)
                style = style + L.component_style_loss(fake_features, real_features)
        terms = {}
        if weights.component_gan > 0:
            terms["component_gan"] = weights.component_gan * gan
        if weights.component_style > 0:
            terms["component_style"] = weights.component_style * style
        return terms

    def discriminator_step(self, image: Tensor, gt: Tensor, boxes: Tensor) -> dict[str, Tensor]:
        """Updates of the StyleGAN2 discriminator (with lazy R1) and the component discriminators."""
        nets, weights = self.nets, self.config.losses
        terms: dict[str, Tensor] = {}
        if nets.discriminator is not None:
            critic = nets.discriminator.requires_grad_(True)
            with self._autocast():
                real_logits, fake_logits = critic(self._critic_view(gt)), critic(self._critic_view(image))
                loss = L.discriminator_gan_loss(real_logits, fake_logits)
            terms["gan"] = loss
            terms["real_score"] = real_logits.detach().float().mean()
            terms["fake_score"] = fake_logits.detach().float().mean()
            loss = loss.float()
            if weights.r1 > 0 and self.iteration % weights.r1_every == 0:
                real = gt.detach().requires_grad_(True)
                penalty = L.r1_penalty(critic(self._critic_view(real)).float(), real)  # float32: second-order gradients
                terms["r1"] = penalty
                loss = loss + weights.r1 / 2 * weights.r1_every * penalty
            self._step("d", loss, list(critic.parameters()))
        if len(nets.components):
            nets.components.requires_grad_(True)
            fakes, reals = self._component_patches(image, gt, boxes)
            with self._autocast():
                losses = [
                    L.discriminator_gan_loss(nets.components[name](real)[0], nets.components[name](fake)[0])
                    for name, fake, real in zip(L.COMPONENTS, fakes, reals, strict=True)
                ]
                loss = torch.stack([x.float() for x in losses]).sum()
            terms["components"] = loss
            self._step("components", loss, list(nets.components.parameters()))
        return terms

    # ----------------------------------------------------------------------------- the loop

    def _loader(self, plan: DataPlan) -> DataLoader:
        config = self.config
        dataset = FacePairs(
            plan.train,
            config.model.out_size,
            config.data.presets,
            config.train.seed,
            config.data.hflip,
            config.losses.eye_enlarge,
            config.data.degrade_scales,
            config.model.restorer().input_denoise,
        )
        per_rank = config.data.batch_size // self.dist.world_size
        sampler = IterationSampler(
            len(dataset),
            per_rank,
            config.train.seed,
            self.iteration,
            config.train.iterations,
            self.dist.rank,
            self.dist.world_size,
        )
        workers = config.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(config.train.seed),  # keeps the global RNG untouched
        )

    def _log_step(self, g_terms: dict[str, Tensor], d_terms: dict[str, Tensor], rate: float) -> dict[str, float]:
        names = [f"g_{k}" for k in g_terms] + [f"d_{k}" for k in d_terms]
        values = torch.stack([t.detach().float().reshape(()) for t in (*g_terms.values(), *d_terms.values())])
        values = self.dist.mean(values).cpu().tolist()
        row = dict(zip(names, values, strict=True))
        lrs = {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        self.log.record("train", self.iteration, **row, **lrs, it_per_s=round(rate, 4))
        return row

    def _validate(self, validator: Validator | None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if validator is not None:
            metrics, grid = validator.run(self.nets.ema, self.device)
            if metrics:
                self.log.record("val", self.iteration, **metrics)
                shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                self.log.note(f"[cyan]validation[/cyan] iteration {self.iteration}: {shown}")
            if grid is not None:
                write_image(self.layout.val / f"iter_{self.iteration:08d}.png", grid)
        self.dist.barrier()
        return metrics

    def run(self, plan: DataPlan, validator: Validator | None) -> TrainResult:
        """Train from the current iteration to ``train.iterations``; checkpoint and stop early on a signal.

        Args:
            plan: the faces.
            validator: validation pairs and metrics (rank 0; None elsewhere).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        config, total = self.config, self.config.train.iterations
        start_time = time.perf_counter()
        checkpoint = None
        metrics: dict[str, float] = {}
        interrupted = False
        guard, diverged = LossGuard(), None
        self.log.open()
        progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.log.console,
            disable=self.quiet or not self.dist.is_main,
        )
        self._start_random_streams()
        try:
            with StopRequest() as stop, progress:
                task = progress.add_task("training", total=total, completed=self.iteration, rate="")
                tick, tick_iteration = time.perf_counter(), self.iteration
                for batch in self._loader(plan):
                    self.iteration += 1
                    lq, gt = batch["lq"].to(self.device), batch["gt"].to(self.device)
                    boxes = batch["boxes"].to(self.device)
                    image, g_terms = self.generator_step(lq, gt, boxes)
                    d_terms = self.discriminator_step(image, gt, boxes)
                    for scheduler in self.schedulers.values():
                        scheduler.step()
                    diverged = diverged or self._guard(guard, g_terms, d_terms)
                    last = self.iteration == total
                    if self.iteration % config.log.every == 0 or last:
                        now = time.perf_counter()
                        rate = (self.iteration - tick_iteration) / max(now - tick, 1e-9)
                        tick, tick_iteration = now, self.iteration
                        row = self._log_step(g_terms, d_terms, rate)
                        progress.update(task, rate=f"{rate:.2f} it/s")
                        shown = " ".join(f"{k[2:] if k.startswith('g_') else k} {v:.4g}" for k, v in row.items())
                        progress.console.print(f"iteration {self.iteration}: {shown}", highlight=False)
                    progress.update(task, completed=self.iteration)
                    if last or (config.log.val_every and self.iteration % config.log.val_every == 0):
                        metrics = self._validate(validator) or metrics
                    stopping = self.dist.any(stop.requested or diverged is not None, self.device)
                    if last or stopping or self.iteration % config.train.checkpoint_every == 0:
                        checkpoint = self.save_checkpoint()
                    if stopping:
                        interrupted = diverged is None
                        self.log.record("interrupted" if interrupted else "diverged", self.iteration)
                        self.log.note(
                            f"[yellow]stopped at iteration {self.iteration}; checkpoint {checkpoint}; "
                            + ("continue with --resume[/yellow]" if interrupted else "[/yellow]")
                        )
                        break
        finally:
            self.log.close()
        export = None
        if self.dist.is_main:
            if not interrupted and diverged is None and self.iteration >= total:
                export = self.export_ema()
            plot_loss_curves(self.layout.log, self.layout.loss_curves)
        self.dist.barrier()
        seconds = time.perf_counter() - start_time
        return TrainResult(
            self.layout.root, self.iteration, interrupted, checkpoint, export, metrics, seconds, diverged
        )

    def _guard(self, guard: LossGuard, g_terms: dict[str, Tensor], d_terms: dict[str, Tensor]) -> str | None:
        """Check this iteration's losses (:mod:`~minerrestore.train.guard`); the message of a divergence, or None."""
        names = [f"g_{k}" for k in g_terms if k != "total"] + [f"d_{k}" for k in d_terms if not k.endswith("_score")]
        terms = [g_terms[n[2:]] if n.startswith("g_") else d_terms[n[2:]] for n in names]
        values = torch.stack([t.detach().float().reshape(()) for t in terms]).cpu().tolist()
        for event in guard.check(dict(zip(names, values, strict=True))):
            message = event.message(self.iteration)
            self.log.record("guard", self.iteration, kind=event.kind, loss=event.loss, value=event.value)
            if event.kind == "stop":  # the first loss to diverge is the one named
                return message
            self.log.note(f"[yellow]warning: {message}[/yellow]")
        return None

    def export_ema(self) -> Path:
        """Save the EMA generator for ``minerrestore restore --model RUN_DIR`` (architecture in the metadata)."""
        return save_generator(self.layout.ema_export, self.nets.ema, self.iteration, to_dict(self.config))


@contextlib.contextmanager
def deterministic_algorithms(deterministic: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels (exact resume on GPU too) or cuDNN autotuning, restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def announce(trainer: Trainer, plan: DataPlan, checkpoint: Path | None) -> None:
    """Say what the session trains (console) and record it (``start`` record of ``log.jsonl``)."""
    config, nets, log = trainer.config, trainer.nets, trainer.log
    trained = sum(p.numel() for p in trainable_parameters(nets.generator)) / 1e6
    total = sum(p.numel() for p in nets.generator.parameters()) / 1e6
    parts = [
        f"run {trainer.layout.root}",
        *nets.notes,
        f"scheme {config.model.scheme} at {config.model.out_size} px ({trained:.2f} M of {total:.2f} M generator "
        "parameters trained)",
        f"{len(plan.train)} training and {len(plan.val)} validation faces: {plan.source}",
        f"perceptual loss: {nets.perceptual.name if nets.perceptual else 'off'}; "
        f"identity loss: {nets.identity.name if nets.identity else 'off'}",
        f"{trainer.dist.world_size} process(es) on {trainer.device}, batch {config.data.batch_size}",
        f"resuming from {checkpoint} (iteration {trainer.iteration})" if checkpoint else "starting at iteration 0",
    ]
    for part in parts:
        log.note(part)
    log.record(
        "start",
        trainer.iteration,
        resumed_from=str(checkpoint) if checkpoint else None,
        perceptual=nets.perceptual.name if nets.perceptual else None,
        identity=nets.identity.name if nets.identity else None,
        world_size=trainer.dist.world_size,
        train_faces=len(plan.train),
        val_faces=len(plan.val),
        skipped=len(plan.skipped),
        device=str(trainer.device),
    )


__all__ = ["StopRequest", "Trainer", "announce", "deterministic_algorithms"]
