"""The networks of a training run and the weight files they need.

The generator (with its StyleGAN2 prior or initial weights), its exponential moving average,
the StyleGAN2 and facial-component discriminators and the loss networks; :func:`check_weights`
finds every file the config needs before a run starts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from minerrestore import losses as L
from minerrestore.archs.restorer import freeze_constant_input_at_zero
from minerrestore.errors import UsageError
from minerrestore.models.export import EMA_EXPORT, create_generator
from minerrestore.settings import to_dict
from minerrestore.train.config import Config


@dataclass
class Networks:
    """Everything with weights in a run.

    Attributes:
        generator: the restorer being trained.
        ema: exponential moving average of the generator (used for validation and export).
        discriminator: StyleGAN2 discriminator, or None when ``losses.gan`` is 0.
        components: facial-component discriminators by name (empty when switched off).
        perceptual: perceptual/style loss, or None.
        identity: identity loss, or None.
        notes: what was loaded into the generator (prior, initial weights).
    """

    generator: nn.Module
    ema: nn.Module
    discriminator: nn.Module | None
    components: nn.ModuleDict
    perceptual: L.PerceptualLoss | None
    identity: L.IdentityLoss | None
    notes: list[str] = field(default_factory=list)


def required_weights(config: Config) -> list[str]:
    """Names or paths of every weight file the config needs (checked before anything starts)."""
    from minerrestore.models.catalogue import is_present

    model, losses = config.model, config.losses
    needed = [name for name in (model.prior, model.init) if name is not None]
    if losses.perceptual > 0 or losses.style > 0:
        backbone = losses.perceptual_backbone
        if backbone == "auto":
            backbone = "vgg19" if is_present("vgg19") else "vgg16_lpips"
        needed.append("vgg19" if backbone == "vgg19" else "lpips-vgg16")
    if losses.identity > 0 and losses.identity_network != "none":
        network = losses.identity_network
        if network == "auto":
            network = "arcface" if is_present("arcface-resnet18") else "mobilefacenet"
        needed.append("arcface-resnet18" if network == "arcface" else "mobilefacenet")
    return needed


def check_weights(config: Config) -> None:
    """Raise a clear error for the first weight file the config needs and that is missing.

    Raises:
        WeightsError: a catalogue file is missing (the message names its URL and SHA-256).
        UsageError: a file path given in the config does not exist.
    """
    from minerrestore.models.catalogue import find_entry, resolve_file

    for name in required_weights(config):
        if find_entry(name) is not None:
            resolve_file(name)
        elif not (path := _weight_path(name)).is_file():
            raise UsageError(f"weight file {path} (named in the config) does not exist")


def _weight_path(name: str) -> Path:
    """A catalogue name, a file, or a training run folder (its EMA export) -> the file."""
    from minerrestore.models.catalogue import find_entry, resolve_file

    if find_entry(name) is not None:
        return resolve_file(name)
    path = Path(name).expanduser()
    return path / EMA_EXPORT if path.is_dir() else path


def build_generator(config: Config) -> tuple[nn.Module, list[str]]:
    """The restorer of ``config.model`` with its prior and initial weights loaded, decoder frozen if asked.

    Returns:
        The generator and notes on what was loaded (for the log).
    """
    from minerrestore.archs.checkpoints import init_from_checkpoint, load_prior

    model = config.model
    generator = create_generator(to_dict(model))
    notes = []
    if model.prior is not None:
        load_prior(generator, _weight_path(model.prior))
        notes.append(f"StyleGAN2 prior loaded from {_weight_path(model.prior)}")
    if model.init is not None:  # partial loading: e.g. scheme B-G initialised from a scheme-A model
        report = init_from_checkpoint(generator, _weight_path(model.init))
        counts = report.summary()
        notes.append(
            f"initialised from {_weight_path(model.init)}: {counts['loaded']} tensors loaded, "
            f"{counts['new']} new {counts['new_modules'] or ''}, {counts['mismatched']} mismatched"
        )
    if model.freeze_decoder:
        generator.stylegan_decoder.requires_grad_(False)  # modulation, SE and removal layers stay trainable
    if model.zero_constant_input:
        freeze_constant_input_at_zero(generator)
        notes.append("StyleGAN2 constant input fixed at zero")
    return generator, notes



def build_networks(config: Config, device: torch.device) -> Networks:
    """Generator, EMA, discriminators and loss networks of a run, on ``device``."""
    from minerrestore.archs.discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator

    model, losses = config.model, config.losses
    generator, notes = build_generator(config)
    generator = generator.to(device)
    ema = copy.deepcopy(generator).eval().requires_grad_(False)
    channel_multiplier = int(model.arch.get("channel_multiplier", 1))
    discriminator = None
    if losses.gan > 0 or losses.r1 > 0:
        discriminator = StyleGAN2Discriminator(
            model.out_size, channel_multiplier=channel_multiplier, narrow=model.discriminator_narrow
        ).to(device)
    components = nn.ModuleDict()
    if losses.component_gan > 0 or losses.component_style > 0:
        for name in L.COMPONENTS:
            components[name] = FacialComponentDiscriminator(narrow=model.discriminator_narrow).to(device)
    perceptual = None
    if losses.perceptual > 0 or losses.style > 0:
        perceptual = L.create_perceptual_loss(losses.perceptual_backbone, losses.perceptual_size).to(device)
    identity = None
    if losses.identity > 0 and losses.identity_network != "none":
        identity = L.create_identity_loss(losses.identity_network, model.out_size, losses.identity_distance)
        identity = identity.to(device)
    return Networks(generator, ema, discriminator, components, perceptual, identity, notes)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that are trained (``requires_grad``)."""
    return [p for p in module.parameters() if p.requires_grad]


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for trained parameters; buffers are copied."""
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        if param.requires_grad:
            ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)



__all__ = [
    "Networks",
    "build_generator",
    "build_networks",
    "check_weights",
    "required_weights",
    "trainable_parameters",
    "update_ema",
]
