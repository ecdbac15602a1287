"""Training configuration: typed, frozen dataclasses read from YAML, with ``key.path=value`` overrides.

A config file is YAML grouped by concern (``data``, ``model``, ``losses``, ``optim``,
``train``, ``log``), read into the dataclasses below by the generic reader of
:mod:`minerrestore.settings`: unknown keys are rejected with their full path and the closest
known names; values are checked against the field types. ``base: NAME`` inherits a shipped
config (``minerrestore/train/configs/NAME.yml``) or a file relative to the config, section by
section. Overrides ``losses.gan=0.05`` parse the value with ``yaml.safe_load`` (never
``eval``/``exec``). The resolved config (:func:`minerrestore.settings.to_yaml`) is saved in
every run folder. :func:`validate` adds the checks that types alone cannot make.

Defaults are the paper's 512 px setup (METHOD.md sections 3-4) and, where the paper is
silent, the official GFP-GAN one (``options/train_gfpgan_v1.yml``, Apache-2.0; ANCHORS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from minerrestore.errors import ConfigError
from minerrestore.settings import apply_overrides, build, read_yaml_chain, shipped_names, to_dict

if TYPE_CHECKING:  # the training config is read without torch
    from minerrestore.archs.restorer import RestorerConfig

EMA_DECAY_GFPGAN = 0.5 ** (32 / 10000)
"""GFP-GAN's EMA decay of the generator, 0.5^(32/10k) ~ 0.99778 (a half-life of 10k images at batch 32)."""

PerceptualBackbone = Literal["auto", "vgg19", "vgg16_lpips"]
IdentityNetwork = Literal["auto", "arcface", "mobilefacenet", "none"]
IdentityDistance = Literal["l1", "cosine"]
DataSplit = Literal["names", "identity"]


@dataclass(frozen=True)
class DataConfig:
    """Where the training faces come from and how they are degraded.

    Attributes:
        train_dir: folder of high-quality faces (one face per image), degraded on the fly, or a
            list of such folders; sub-folders are included.
        aligned: the faces already are FFHQ-aligned square crops; otherwise each is aligned
            once with the detector and the FFHQ template (cached in the run folder).
        presets: degradation presets (built-in names or YAML files), one drawn per sample.
        degrade_scales: scales at which a face is degraded, one drawn per sample: at scale k the
            ground truth is enlarged k times, degraded, and shrunk back (area), which is what the
            restore pipeline feeds the network for a face k times larger than ``model.out_size``.
        paired_dir: a folder written by ``minerrestore degrade`` (``gt/`` and ``lq/``); used
            instead of ``train_dir`` and on-the-fly degradation.
        val_dir: validation faces (or a paired ``gt/``+``lq/`` folder), held apart; when unset,
            ``val_fraction`` of the training faces is held out as ``split`` says.
        val_fraction: share held out when ``val_dir`` is unset.
        split: ``names``: the last ``val_fraction`` of each folder's sorted names; ``identity``:
            people held out across all folders (:func:`minerrestore.data.split.held_out_identities`:
            the last ``val_fraction`` of the first folder's sorted identities, and a stable-hash
            share of the other people), identities read from a folder's ``manifest.csv`` or the
            file stems.
        max_images: use only the first N training faces (quick experiments); null = all.
        hflip: random horizontal flip of training pairs.
        batch_size: total batch over all processes (paper: 12).
        num_workers: data-loading processes per training process.
        detector: face detector used for alignment (see ``minerrestore.face.DETECTORS``).
    """

    train_dir: str | tuple[str, ...] | None = None
    aligned: bool = False
    presets: tuple[str, ...] = ("paper",)
    degrade_scales: tuple[int, ...] = (1,)
    paired_dir: str | None = None
    val_dir: str | None = None
    val_fraction: float = 0.1
    split: DataSplit = "names"
    max_images: int | None = None
    hflip: bool = True
    batch_size: int = 12
    num_workers: int = 4
    detector: str = "yunet"

    @property
    def train_folders(self) -> tuple[str, ...]:
        """``train_dir`` as a tuple of folders (empty when unset)."""
        if self.train_dir is None:
            return ()
        return (self.train_dir,) if isinstance(self.train_dir, str) else self.train_dir


@dataclass(frozen=True)
class ModelConfig:
    """The restorer and its discriminators.

    Attributes:
        scheme: restorer scheme, ``A``-``G`` (METHOD.md section 2) or ``gfpgan-clean``.
        out_size: face size in pixels (a power of two).
        narrow: scales every channel count of every network (1 = paper; < 1 for CPU models).
        arch: further :class:`~minerrestore.archs.restorer.RestorerConfig` fields
            (``channel_multiplier``, ``se_reduction`` ...).
        prior: pretrained StyleGAN2 decoder: a weight name (``minerrestore weights``) or a file;
            null starts from random weights.
        init: a restorer checkpoint to start from (fine-tuning); null = none.
        freeze_decoder: keep the StyleGAN2 decoder fixed (the SE, SFT and removal parameters train).
        zero_constant_input: set StyleGAN2's learned 4 x 4 input to zero and keep it there. Without a
            pretrained prior the constant learns the training set's average face, which the decoder
            then paints over every input. The shipped models were zeroed at export instead
            (``minerrestore export --zero-constant-input``): fine-tuning them with this option
            re-learned the template within 600 iterations (weights/MODEL_CARD.md).
        discriminator_narrow: channel scale of the StyleGAN2 and facial-component discriminators.
    """

    scheme: str = "D"
    out_size: int = 512
    narrow: float = 1.0
    arch: dict[str, Any] = field(default_factory=dict)
    prior: str | None = "stylegan2-ffhq512"
    init: str | None = None
    freeze_decoder: bool = True
    zero_constant_input: bool = False
    discriminator_narrow: float = 1.0

    def restorer(self) -> RestorerConfig:
        """The generator's architecture: ``scheme`` with ``out_size``, ``narrow`` and ``arch`` applied."""
        from minerrestore.archs.restorer import resolve_config

        return resolve_config(self.scheme, out_size=self.out_size, narrow=self.narrow, **self.arch)


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (paper Table 2, METHOD.md section 3); 0 switches a term (and its network) off.

    Attributes:
        l1: pixel L1.
        perceptual: L1 between backbone features (layer weights of GFP-GAN).
        style: Gram-matrix style loss on the same features (GFP-GAN: 50).
        perceptual_backbone: ``vgg19`` (torchvision file ``vgg19`` in the catalogue, the paper's),
            ``vgg16_lpips`` (shipped LPIPS backbone) or ``auto`` (VGG-19 when present).
        perceptual_size: faces are reduced (antialiased) to this side before the perceptual
            backbone, which cuts its cost by ``(out_size / perceptual_size) ** 2``; None: full size.
        gan: adversarial softplus loss of the generator.
        gan_grey: the discriminators see faces in grey (the channel mean, repeated), so the
            adversarial gradient moves the three channels alike: texture and shading, never
            colour (which L1 and the pyramid keep). Against the colour blotches an RGB critic
            painted on re-lit dark faces (default256_stage4.yml).
        r1: R1 penalty weight on real images.
        r1_every: lazy R1 interval in iterations.
        component_gan: facial-component (eyes, mouth) discriminator losses.
        component_style: Gram style loss on component-discriminator features.
        eye_enlarge: eye boxes are enlarged by this factor (GFP-GAN: 1.4).
        identity: distance between identity embeddings of output and ground truth.
        identity_network: ``arcface`` (user file), ``mobilefacenet`` (shipped) or ``auto``.
        identity_distance: ``l1`` between raw embeddings (GFP-GAN) or ``cosine`` (1 - cosine
            similarity, the quantity the identity metric reports).
        pyramid: L1 on the removal network's intermediate RGB images.
        pyramid_until: the pyramid loss is dropped after this iteration (paper setup: 50k).
    """

    l1: float = 0.1
    perceptual: float = 1.0
    style: float = 50.0
    perceptual_backbone: PerceptualBackbone = "auto"
    perceptual_size: int | None = None
    gan: float = 0.1
    gan_grey: bool = False
    r1: float = 10.0
    r1_every: int = 16
    component_gan: float = 1.0
    component_style: float = 200.0
    eye_enlarge: float = 1.4
    identity: float = 10.0
    identity_network: IdentityNetwork = "auto"
    identity_distance: IdentityDistance = "l1"
    pyramid: float = 1.0
    pyramid_until: int = 50_000


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers, learning-rate schedule, EMA and mixed precision (ANCHORS.md, GFP-GAN setup).

    Attributes:
        lr_g: Adam learning rate of the generator (paper: 2e-3).
        lr_d: Adam learning rate of the StyleGAN2 discriminator (scaled for lazy R1).
        lr_components: Adam learning rate of the facial-component discriminators.
        betas_g: Adam betas of the generator.
        betas_d: Adam betas of the discriminator (before the lazy-R1 scaling).
        betas_components: Adam betas of the component discriminators.
        milestones: iterations at which every learning rate is multiplied by ``gamma``.
        gamma: learning-rate factor at each milestone.
        ema_decay: decay of the generator's exponential moving average.
        amp: float16 autocast on CUDA (ignored on CPU).
    """

    lr_g: float = 2e-3
    lr_d: float = 2e-3
    lr_components: float = 2e-3
    betas_g: tuple[float, float] = (0.0, 0.99)
    betas_d: tuple[float, float] = (0.0, 0.99)
    betas_components: tuple[float, float] = (0.9, 0.99)
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    ema_decay: float = EMA_DECAY_GFPGAN
    amp: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Length of the run, where it is written, checkpoints and reproducibility.

    Attributes:
        out_dir: run folder (config, checkpoints, logs, validation grids); never reused
            unless resuming.
        iterations: total training iterations (paper: 400k).
        seed: seed of weights, data order, degradations and noise.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (torchrun picks ``cuda:LOCAL_RANK``).
        checkpoint_every: iterations between checkpoints (a killed run loses at most this many).
        keep_checkpoints: newest checkpoints kept in the run folder.
        deterministic: ``torch.use_deterministic_algorithms`` (exact resume on GPU; slower).
    """

    out_dir: str = "runs/train"
    iterations: int = 400_000
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    deterministic: bool = False


@dataclass(frozen=True)
class LogConfig:
    """What is reported and how often.

    Attributes:
        every: iterations between log lines (console, JSON lines, TensorBoard).
        val_every: iterations between validations (0 = only at the end).
        val_images: at most this many validation faces.
        grid_images: faces shown in the validation PNG grid.
        tensorboard: also write TensorBoard events when ``tensorboard`` is installed.
    """

    every: int = 100
    val_every: int = 5000
    val_images: int = 64
    grid_images: int = 8
    tensorboard: bool = True


@dataclass(frozen=True)
class Config:
    """A complete training configuration.

    Attributes:
        name: a short name for the run (shown in logs).
        data: :class:`DataConfig`.
        model: :class:`ModelConfig`.
        losses: :class:`LossConfig`.
        optim: :class:`OptimConfig`.
        train: :class:`TrainConfig`.
        log: :class:`LogConfig`.
    """

    name: str = "train"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)


# ---------------------------------------------------------------------------------------------
# shipped configs and loading

CONFIG_FOLDER = Path(str(resources.files("minerrestore") / "train" / "configs"))
"""The configs shipped with minerrestore (``tiny``, ``default128``, ``paper512_a`` ...)."""


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``minerrestore/train/configs/`` (``tiny``, ``paper512_d`` ...)."""
    return shipped_names(CONFIG_FOLDER)


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a config file (or shipped config name), apply overrides, check every key and type.

    Args:
        name_or_path: a YAML file, or a shipped name such as ``tiny`` or ``paper512_d``.
        overrides: ``key.path=value`` strings, values parsed as YAML.

    Raises:
        ConfigError: unreadable file, unknown key (with close matches), wrong type or value.
    """
    return from_dict(apply_overrides(read_yaml_chain(name_or_path, CONFIG_FOLDER), overrides))


def from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a raw mapping.

    Raises:
        ConfigError: unknown key (with close matches), wrong type or invalid value.
    """
    config = build(Config, data)
    validate(config)
    return config


def replace(config: Config, overrides: Sequence[str]) -> Config:
    """A copy of ``config`` with ``key.path=value`` overrides applied and checked."""
    return from_dict(apply_overrides(to_dict(config), overrides))


# ---------------------------------------------------------------------------------------------
# cross-field checks


def validate(config: Config) -> None:
    """Check values and combinations that types alone cannot (positive sizes, ranges, paths set).

    Raises:
        ConfigError: the first invalid setting, named by its key path.
    """
    data, model, losses, optim, train, log = (
        config.data,
        config.model,
        config.losses,
        config.optim,
        config.train,
        config.log,
    )
    checks = [
        ("data.batch_size", data.batch_size >= 1, "must be at least 1"),
        ("data.num_workers", data.num_workers >= 0, "must be 0 or more"),
        ("data.train_dir", data.train_dir != (), "needs at least one folder (or null)"),
        ("data.val_fraction", 0.0 <= data.val_fraction < 1.0, "must be in [0, 1)"),
        ("data.max_images", data.max_images is None or data.max_images >= 1, "must be at least 1 or null"),
        ("data.presets", len(data.presets) >= 1, "needs at least one preset"),
        ("data.degrade_scales", bool(data.degrade_scales) and min(data.degrade_scales) >= 1, "needs scales >= 1"),
        ("model.out_size", model.out_size >= 16 and not model.out_size & (model.out_size - 1), "must be a power of 2"),
        ("model.narrow", 0.0 < model.narrow <= 4.0, "must be in (0, 4]"),
        ("model.discriminator_narrow", 0.0 < model.discriminator_narrow <= 4.0, "must be in (0, 4]"),
        ("losses.r1_every", losses.r1_every >= 1, "must be at least 1"),
        ("losses.eye_enlarge", losses.eye_enlarge > 0, "must be positive"),
        (
            "losses.perceptual_size",
            losses.perceptual_size is None or losses.perceptual_size >= 32,
            "must be 32 or more (or null: full size)",
        ),
        ("optim.ema_decay", 0.0 <= optim.ema_decay < 1.0, "must be in [0, 1)"),
        ("optim.gamma", optim.gamma > 0, "must be positive"),
        ("train.iterations", train.iterations >= 1, "must be at least 1"),
        ("train.checkpoint_every", train.checkpoint_every >= 1, "must be at least 1"),
        ("train.keep_checkpoints", train.keep_checkpoints >= 1, "must be at least 1"),
        ("log.every", log.every >= 1, "must be at least 1"),
        ("log.val_every", log.val_every >= 0, "must be 0 or more"),
        ("log.val_images", log.val_images >= 0, "must be 0 or more"),
        ("log.grid_images", log.grid_images >= 0, "must be 0 or more"),
    ]
    for name in ("l1", "perceptual", "style", "gan", "r1", "component_gan", "component_style", "identity", "pyramid"):
        checks.append((f"losses.{name}", getattr(losses, name) >= 0, "must be 0 or more"))
    for name in ("lr_g", "lr_d", "lr_components"):
        checks.append((f"optim.{name}", getattr(optim, name) > 0, "must be positive"))
    checks.append(("optim.milestones", list(optim.milestones) == sorted(optim.milestones), "must be increasing"))
    for key, ok, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message} (got {_lookup(config, key)!r})")
    if model.freeze_decoder and model.prior is None and model.init is None:
        raise ConfigError(
            "model.freeze_decoder is true but there is no model.prior or model.init: the decoder would stay random",
            hint="set model.prior (a StyleGAN2 file) or model.freeze_decoder=false",
        )
    _check_arch(model)


def _lookup(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _check_arch(model: ModelConfig) -> None:
    """The restorer settings must build a valid :class:`RestorerConfig` (raises ConfigError)."""
    from minerrestore.errors import UsageError

    try:
        model.restorer()
    except UsageError as exc:
        raise ConfigError(f"model.scheme: {exc.message}", hint=exc.hint) from exc
    except ConfigError as exc:
        raise ConfigError(f"model: {exc.message}", hint=exc.hint) from exc


__all__ = [
    "CONFIG_FOLDER",
    "EMA_DECAY_GFPGAN",
    "Config",
    "DataConfig",
    "LogConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "from_dict",
    "load_config",
    "replace",
    "shipped_configs",
    "validate",
]
