"""The restorer: degradation removal + StyleGAN2 prior + spatial modulation (GFP-GAN family).

One class, :class:`RestorerNet`, configured by :class:`RestorerConfig`: ``removal`` is ``unet``
(GFP-GAN) or ``unetpp`` (the miner-face paper), ``modulation`` is ``sft``, ``cs-sft``
(GFP-GAN), ``se-sft`` or ``se-cssft`` (the paper). The paper's ablation schemes A-G
(METHOD.md section 2) are named configurations; :func:`create_restorer` builds one by name.

Scheme A with ``channel_multiplier=2`` is the official GFPGANv1Clean as released in GFP-GAN
v1.3/v1.4 (``gfpgan/archs/gfpganv1_clean_arch.py``, Apache-2.0, TencentARC): same
computation, same parameter names except that the removal network's parameters carry a
``removal.`` prefix (:func:`checkpoint_filter_fn` converts official state dicts). Unlike the
official network, :meth:`RestorerNet.forward` has a working ``fidelity`` control and uses fixed
noise unless asked otherwise. The code is our own (MIT).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn

from minerrestore.archs.sft import (
    MODULATION_LAYERS,
    MODULATIONS,
    SE_REDUCTION,
    SFT,
    ModulationName,
    build_modulation,
    condition_branch,
)
from minerrestore.archs.stylegan2 import StyleGAN2Generator, stylegan2_channels
from minerrestore.archs.unet import DegradationRemoval, UNet
from minerrestore.archs.unetpp import UNetPlusPlus
from minerrestore.errors import UsageError
from minerrestore.settings import InvalidSetting, build

RemovalName = Literal["unet", "unetpp"]
REMOVALS: tuple[str, ...] = get_args(RemovalName)
REMOVAL_NETWORKS: dict[str, type[DegradationRemoval]] = {"unet": UNet, "unetpp": UNetPlusPlus}

# top-level names of the official GFPGANv1Clean that belong to our ``removal`` sub-network
OFFICIAL_REMOVAL_NAMES = ("conv_body_first", "conv_body_down", "final_conv", "conv_body_up", "toRGB", "final_linear")


MAX_INPUT_DENOISE = 30.0  # non-local-means h beyond which a face is smeared, not cleaned


@dataclass(frozen=True)
class RestorerConfig:
    """Architecture of a :class:`RestorerNet` (JSON-serialisable, see :meth:`to_dict`).

    Attributes:
        removal: degradation-removal network, ``unet`` or ``unetpp``.
        modulation: ``sft``, ``cs-sft``, ``se-sft`` or ``se-cssft``.
        out_size: input and output resolution, a power of two from 16 to 1024.
        channel_multiplier: StyleGAN2 channel multiplier (paper: 1; official GFP-GAN v1.3/v1.4: 2).
        num_style_feat: style code dimension.
        num_mlp: layers of StyleGAN2's mapping MLP (unused by restoration, kept for the prior).
        narrow: scales every channel count (below 1 for tiny test models).
        se_reduction: reduction ratio of the squeeze-and-excitation blocks.
        input_skip: add the degraded input to the decoder's image (a global residual; not in the
            paper or GFP-GAN). The decoder's RGB layers start at zero, so an untrained network
            returns its input and training only learns the correction: what a short CPU budget
            can afford without losing the input's detail and identity.
        input_denoise: non-local-means strength ``h`` the aligned uint8 faces are cleaned with
            before the network (:func:`minerrestore.baselines.nlm_denoise`; 0: none). Not a layer:
            the input the network was trained on, stored with its weights so that training and
            ``restore`` feed it the same faces (``restore`` raises it for dark faces:
            :func:`minerrestore.severity.input_cleaning`).
    """

    removal: RemovalName = "unetpp"
    modulation: ModulationName = "se-cssft"
    out_size: int = 512
    channel_multiplier: int = 1
    num_style_feat: int = 512
    num_mlp: int = 8
    narrow: float = 1.0
    se_reduction: int = SE_REDUCTION
    input_skip: bool = False
    input_denoise: float = 0.0

    def __post_init__(self) -> None:
        for key, choices in (("removal", REMOVALS), ("modulation", MODULATIONS)):
            if getattr(self, key) not in choices:
                raise InvalidSetting(key, f"{getattr(self, key)!r} is not one of {', '.join(choices)}")
        size = self.out_size
        if not isinstance(size, int) or size < 16 or size > 1024 or size & (size - 1):
            raise InvalidSetting("out_size", f"must be a power of two from 16 to 1024, got {size!r}")
        if not 0.0 <= self.input_denoise <= MAX_INPUT_DENOISE:
            raise InvalidSetting("input_denoise", f"must be in [0, {MAX_INPUT_DENOISE:g}], got {self.input_denoise!r}")
        for key, least in (("channel_multiplier", 1), ("num_style_feat", 1), ("num_mlp", 0), ("se_reduction", 1)):
            if getattr(self, key) < least:
                raise InvalidSetting(key, f"must be at least {least}, got {getattr(self, key)!r}")
        prior_channels = stylegan2_channels(self.channel_multiplier, self.narrow)[size]
        if not 0 < self.narrow <= 4 or prior_channels < 2 or prior_channels % 2:
            raise InvalidSetting(
                "narrow",
                f"{self.narrow} gives {prior_channels} channels at {size} px",
                hint="channels must be even and at least 2: raise narrow or channel_multiplier",
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RestorerConfig:
        """Build from a mapping (a YAML section, a file's stored JSON) with :func:`minerrestore.settings.build`.

        Raises:
            ConfigError: unknown key (with close matches), wrong type or invalid value, named by its key.
        """
        return build(cls, values, kind="restorer setting")


SCHEMES: dict[str, RestorerConfig] = {
    "A": RestorerConfig(removal="unet", modulation="cs-sft"),
    "B": RestorerConfig(removal="unet", modulation="se-cssft"),
    "C": RestorerConfig(removal="unetpp", modulation="cs-sft"),
    "D": RestorerConfig(removal="unetpp", modulation="se-cssft"),
    "E": RestorerConfig(removal="unetpp", modulation="se-cssft"),
    "F": RestorerConfig(removal="unetpp", modulation="se-sft"),
    "G": RestorerConfig(removal="unetpp", modulation="cs-sft"),
    "gfpgan-clean": RestorerConfig(removal="unet", modulation="cs-sft", channel_multiplier=2),
}
"""Named architectures: the paper's schemes A-G (channel multiplier 1, 512 px) and the
official GFP-GAN v1.3/v1.4 network (scheme A with channel multiplier 2). Their catalogue names
and descriptions (``scheme-a`` ... ``scheme-g``, ``gfpgan-clean``): :mod:`minerrestore.models.catalogue`."""


class RestorerOutput(NamedTuple):
    """Output of :meth:`RestorerNet.forward`.

    Attributes:
        image: restored faces (B, 3, out_size, out_size), roughly in [-1, 1].
        rgbs: intermediate RGB images of the removal network, 8 px ... out_size (empty unless asked).
    """

    image: Tensor
    rgbs: list[Tensor]


class RestorerNet(nn.Module):
    """Blind face restorer of the GFP-GAN family.

    Args:
        config: the architecture.
    """

    def __init__(self, config: RestorerConfig) -> None:
        super().__init__()
        self.config = config
        removal = REMOVAL_NETWORKS[config.removal]
        self.removal = removal(config.out_size, config.num_style_feat, config.channel_multiplier, config.narrow)
        self.stylegan_decoder = StyleGAN2Generator(
            config.out_size,
            num_style_feat=config.num_style_feat,
            num_mlp=config.num_mlp,
            channel_multiplier=config.channel_multiplier,
            narrow=config.narrow,
        )
        layer = MODULATION_LAYERS[config.modulation]
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        self.modulations = nn.ModuleList()
        for res in self.removal.level_resolutions:
            feature_channels = self.removal.channels[res]
            prior_channels = self.stylegan_decoder.channels[res]
            condition_channels = layer.condition_channels(prior_channels)
            self.condition_scale.append(condition_branch(feature_channels, condition_channels))
            self.condition_shift.append(condition_branch(feature_channels, condition_channels))
            self.modulations.append(build_modulation(config.modulation, prior_channels, config.se_reduction))
        if config.input_skip:
            self.stylegan_decoder.zero_rgb_layers()

    def forward(
        self, x: Tensor, fidelity: float = 1.0, randomize_noise: bool = False, return_rgb: bool = False
    ) -> RestorerOutput:
        """Restore degraded faces.

        Args:
            x: aligned degraded faces (B, 3, out_size, out_size), RGB in [-1, 1].
            fidelity: weight of the spatial modulation in [0, 1]: 0 gives the pure prior
                (StyleGAN2 driven by the predicted latent codes only), 1 the full conditioning
                (the trained behaviour); features are interpolated linearly in between.
            randomize_noise: fresh StyleGAN2 noise per call (training); default: stored noise.
            return_rgb: also return the removal network's intermediate RGB images.

        Returns:
            :class:`RestorerOutput` (restored image, intermediate RGB list).
        """
        if not 0.0 <= fidelity <= 1.0:
            raise UsageError(f"fidelity must be in [0, 1], got {fidelity}")
        # channels-last (NHWC) is the fast layout of oneDNN and cuDNN; every layer keeps it
        removed = self.removal(x.contiguous(memory_format=torch.channels_last), return_rgb=return_rgb)
        modulate = None
        if fidelity > 0.0:
            conditions = [
                (scale(feat), shift(feat))
                for scale, shift, feat in zip(self.condition_scale, self.condition_shift, removed.features, strict=True)
            ]
            modulate = functools.partial(self._modulate_level, conditions, fidelity)
        image = self.stylegan_decoder(
            removed.latent, input_is_latent=True, randomize_noise=randomize_noise, modulate=modulate
        )
        if self.config.input_skip:
            image = image + x.to(image.dtype)
        return RestorerOutput(image, removed.rgbs)

    def _modulate_level(
        self, conditions: list[tuple[Tensor, Tensor]], fidelity: float, level: int, feature: Tensor
    ) -> Tensor:
        scale, shift = conditions[level]
        layer: SFT = self.modulations[level]
        modulated = layer(feature, scale.to(feature.dtype), shift.to(feature.dtype))
        return modulated if fidelity == 1.0 else torch.lerp(feature, modulated, fidelity)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official GFPGANv1Clean state dict to ours (adds ``removal.``); ours pass unchanged."""
    renamed = {}
    for key, value in state_dict.items():
        top = key.split(".", 1)[0]
        renamed[f"removal.{key}" if top in OFFICIAL_REMOVAL_NAMES else key] = value
    return renamed


def to_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our scheme-A state dict with GFPGANv1Clean's names (drops the ``removal.`` prefix)."""
    return {key.removeprefix("removal."): value for key, value in state_dict.items()}


def resolve_config(name_or_config: str | RestorerConfig | Mapping[str, Any], **overrides: Any) -> RestorerConfig:
    """A :class:`RestorerConfig` from a scheme name, a config or a mapping, with field overrides.

    Raises:
        UsageError: unknown scheme name (the message lists close matches).
        ConfigError: unknown or invalid override.
    """
    if isinstance(name_or_config, RestorerConfig):
        config = name_or_config
    elif isinstance(name_or_config, Mapping):
        config = RestorerConfig.from_dict(name_or_config)
    else:
        config = scheme_config(name_or_config)
    if overrides:
        config = RestorerConfig.from_dict({**config.to_dict(), **overrides})
    return config


def scheme_config(name: str) -> RestorerConfig:
    """The configuration of scheme ``name`` (``A``-``G`` case-insensitive, ``scheme-d``, ``gfpgan-clean``)."""
    key = name.strip()
    key = key.removeprefix("scheme-").removeprefix("scheme_")
    key = key.upper() if len(key) == 1 else key.lower()
    if key in SCHEMES:
        return SCHEMES[key]
    close = difflib.get_close_matches(name, list(SCHEMES), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(SCHEMES)}"
    raise UsageError(f"unknown restorer {name!r}", hint=hint)


def create_restorer(name_or_config: str | RestorerConfig | Mapping[str, Any] = "D", **overrides: Any) -> RestorerNet:
    """Build a randomly initialised :class:`RestorerNet`.

    Examples: ``create_restorer("D")`` (the paper's model, 512 px),
    ``create_restorer("A", out_size=64, narrow=0.25)`` (tiny), ``create_restorer("gfpgan-clean")``.
    Load weights with :mod:`minerrestore.archs.checkpoints`.
    """
    return RestorerNet(resolve_config(name_or_config, **overrides))


def freeze_constant_input_at_zero(generator: nn.Module) -> None:
    """Set the restorer's StyleGAN2 4 x 4 constant input to zero and stop training it.

    Trained without a prior, the constant learns the training set's average face, which the
    decoder paints over every input (``model.zero_constant_input``, ``export --zero-constant-input``).
    """
    constant = generator.stylegan_decoder.constant_input.weight
    constant.requires_grad_(False)
    with torch.no_grad():
        constant.zero_()
