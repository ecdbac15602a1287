"""Loading, converting, initialising and inspecting restorer checkpoints.

Supported files (all read through :func:`minerrestore.models.files.load_state_dict`: safetensors,
or ``torch.load(weights_only=True)``; a pickle that carries code is refused, never run):

- official GFP-GAN v1.3 / v1.4 (``GFPGANv1.3.pth``, ``GFPGANv1.4.pth``): ``{"params_ema": ...}``
  (else ``"params"``) in the GFPGANv1Clean layout; they load with ``strict=True`` into scheme A
  with channel multiplier 2;
- our own restorer checkpoints (:func:`save_restorer`: safetensors whose metadata holds the
  :class:`~minerrestore.archs.restorer.RestorerConfig`);
- StyleGAN2 priors: basicsr's original layout (``StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth``,
  equalised learning rate, compiled up-sampling) converted by :func:`convert_stylegan2_original`,
  or the clean layout.

The original-to-clean conversion is ours, derived from ``basicsr/archs/stylegan2_arch.py``
(Apache-2.0): equalised-learning-rate scales are folded into the weights, StyleGAN2's
``sqrt(2) * leaky_relu(x + b)`` becomes the clean layer's ``leaky_relu(sqrt(2) x + sqrt(2) b)``
(exact, leaky ReLU is positively homogeneous), and the kernels of up-sampling convolutions are
flipped (a transposed convolution followed by the [1, 3, 3, 1] blur equals bilinear x2
up-sampling followed by a convolution with the flipped kernel). The result is exact away from
the image border; at the border the clean network's bilinear resampling (edge clamping) differs
from the zero padding of the original ``upfirdn2d``, as in GFP-GAN's own clean models.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from minerrestore.archs.profile import count_parameters
from minerrestore.archs.restorer import (
    SCHEMES,
    RestorerConfig,
    RestorerNet,
    checkpoint_filter_fn,
    resolve_config,
)
from minerrestore.archs.stylegan2 import StyleGAN2Generator, stylegan2_channels
from minerrestore.errors import ConfigError, WeightsError
from minerrestore.models.files import load_state_dict, save_state_dict, sniff_format

STATE_DICT_KEYS = ("params_ema", "params")  # basicsr / GFP-GAN checkpoints, EMA weights first
MODEL_FORMAT = "minerrestore.restorer"  # safetensors metadata: format=MODEL_FORMAT, arch=RestorerConfig JSON
ORIGINAL_LR_MLP = 0.01  # basicsr StyleGAN2Generator's learning-rate multiplier of the mapping MLP
SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Checkpoint:
    """A state dict read from a file, with what is known about it.

    Attributes:
        path: the file.
        state_dict: the tensors (unwrapped from ``params_ema``/``params`` when present).
        source_key: ``params_ema``, ``params`` or None (a bare state dict).
        layout: see :func:`detect_layout`.
        config: the restorer configuration stored in the file, if any.
    """

    path: Path
    state_dict: dict[str, Tensor]
    source_key: str | None
    layout: str
    config: RestorerConfig | None = None


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_from_checkpoint` did.

    Attributes:
        loaded: model keys filled from the file.
        new: model keys the file does not have (they keep their random initialisation).
        mismatched: keys present in both with different shapes (left random).
        unused: file keys the model does not have.
    """

    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts, and the new/mismatched/unused keys grouped by module prefix."""
        return {
            "loaded": len(self.loaded),
            "new": len(self.new),
            "mismatched": len(self.mismatched),
            "unused": len(self.unused),
            "new_modules": group_keys(self.new),
            "mismatched_modules": group_keys(self.mismatched),
            "unused_modules": group_keys(self.unused),
        }


def group_keys(keys: list[str]) -> dict[str, int]:
    """Count keys per module prefix with indices removed (``modulations.3.se.fc1.weight`` -> ``modulations.*.se``)."""
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")[:-1]
        prefix = ".".join("*" if part.isdigit() else part for part in parts[:3]) or key
        groups[prefix] = groups.get(prefix, 0) + 1
    return groups


def detect_layout(state_dict: Mapping[str, Tensor]) -> str:
    """``restorer`` (ours or GFPGANv1Clean), ``gfpgan-v1-original`` (GFPGANv1.pth, not supported),
    ``stylegan2-original``, ``stylegan2-clean`` or ``unknown``."""
    if "stylegan_decoder.constant_input.weight" in state_dict and any(
        key.startswith(("conv_body_first.", "removal.conv_body_first.")) for key in state_dict
    ):
        # GFP-GAN v1 (GFPGANv1.pth) uses the original StyleGAN2 layers (fused activations)
        original = "stylegan_decoder.style_conv1.activate.bias" in state_dict
        return "gfpgan-v1-original" if original else "restorer"
    if "constant_input.weight" in state_dict:
        return "stylegan2-original" if "style_conv1.activate.bias" in state_dict else "stylegan2-clean"
    return "unknown"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely and unwrap its state dict.

    Raises:
        WeightsError: missing or unreadable file, code-carrying pickle, no state dict inside.
    """
    path = Path(path)
    loaded = load_state_dict(path)
    modules = loaded.get("modules")
    if isinstance(modules, Mapping) and isinstance(modules.get("generator_ema"), Mapping):
        source_key, raw = "modules.generator_ema", modules["generator_ema"]  # a training checkpoint: its EMA
    else:
        source_key = next((key for key in STATE_DICT_KEYS if isinstance(loaded.get(key), Mapping)), None)
        raw = loaded[source_key] if source_key else loaded
    state_dict = {key: value for key, value in raw.items() if isinstance(value, Tensor)}
    if not state_dict:
        raise WeightsError(
            f"{path}: no tensors found (top-level keys: {', '.join(list(loaded)[:8])})",
            hint="expected a state dict, or a dict with 'params_ema' or 'params'",
        )
    config = _stored_config(path, loaded)
    layout = detect_layout(state_dict)
    if layout == "restorer":
        state_dict = checkpoint_filter_fn(state_dict)
    return Checkpoint(path, state_dict, source_key, layout, config)


def _stored_config(path: Path, loaded: Mapping[str, Any]) -> RestorerConfig | None:
    """The restorer config saved with the file: safetensors metadata ``arch``, or a ``config`` entry."""
    values: Any = loaded.get("config")
    if sniff_format(path) == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        text = metadata.get("arch") if metadata.get("format") == MODEL_FORMAT else None
        values = json.loads(text) if text else None
    if not isinstance(values, Mapping):
        return None
    try:
        return RestorerConfig.from_dict(values)
    except ConfigError as exc:
        raise WeightsError(f"{path}: invalid restorer configuration stored in the file ({exc})") from exc


def infer_config(state_dict: Mapping[str, Tensor]) -> RestorerConfig:
    """The :class:`RestorerConfig` a restorer state dict (our names) was made with, from its shapes.

    Raises:
        WeightsError: the tensors do not describe a restorer.
    """
    try:
        levels = sum(1 for key in state_dict if re.fullmatch(r"removal\.toRGB\.\d+\.weight", key))
        out_size = 2 ** (levels + 2)
        modulation_weight = state_dict["stylegan_decoder.style_conv1.modulated_conv.modulation.weight"]
        num_style_feat = modulation_weight.shape[1]
        narrow = state_dict["stylegan_decoder.constant_input.weight"].shape[1] / 512
        num_mlp = sum(1 for key in state_dict if re.fullmatch(r"stylegan_decoder\.style_mlp\.\d+\.weight", key))
        channel_multiplier = 1
        if out_size >= 64:  # channels above 32 px reveal the multiplier
            channels_64 = state_dict["stylegan_decoder.to_rgbs.3.modulated_conv.weight"].shape[2]
            channel_multiplier = max(1, round(channels_64 / (256 * narrow)))
        decoder_channels_8 = stylegan2_channels(channel_multiplier, narrow)[8]
        split = state_dict["condition_scale.0.2.weight"].shape[0] * 2 == decoder_channels_8
        se_hidden = state_dict.get("modulations.0.se.fc1.weight")
        if se_hidden is None:
            modulation = "cs-sft" if split else "sft"
            se_reduction = RestorerConfig.se_reduction
        else:
            modulation = "se-cssft" if split else "se-sft"
            se_reduction = decoder_channels_8 // se_hidden.shape[0]
        removal = "unetpp" if any(key.startswith("removal.nested_nodes.") for key in state_dict) else "unet"
        return RestorerConfig(
            removal=removal,
            modulation=modulation,
            out_size=out_size,
            channel_multiplier=channel_multiplier,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            narrow=narrow,
            se_reduction=se_reduction,
        )
    except (KeyError, IndexError, ConfigError) as exc:
        raise WeightsError(f"the tensors do not describe a restorer ({type(exc).__name__}: {exc})") from exc


def scheme_name(config: RestorerConfig) -> str | None:
    """The first scheme name whose config equals ``config`` (E and G resolve to D and C)."""
    return next((name for name, scheme in SCHEMES.items() if scheme == config), None)


def _strict_load(model: torch.nn.Module, state_dict: Mapping[str, Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)``, with a :class:`WeightsError` naming what does not match."""
    own = model.state_dict()
    problems = {
        "missing": [key for key in own if key not in state_dict],
        "unexpected": [key for key in state_dict if key not in own],
        "wrong shape": [key for key, value in state_dict.items() if key in own and own[key].shape != value.shape],
    }
    if any(problems.values()):
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in problems.items()
            if keys
        )
        raise WeightsError(
            f"{path}: does not match the network ({details})",
            hint="use the architecture the file was trained with, or init_from_checkpoint for partial loading",
        )
    model.load_state_dict(state_dict, strict=True)


def load_restorer(path: str | Path, config: RestorerConfig | str | None = None) -> RestorerNet:
    """Build a :class:`RestorerNet` and load ``path`` into it with strict matching (eval mode, CPU).

    Args:
        path: official GFP-GAN v1.3/v1.4 file or a restorer checkpoint of ours.
        config: architecture; default: stored in the file, else inferred from the tensor shapes.

    Raises:
        WeightsError: unreadable or unsafe file, or tensors that do not match the architecture.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.layout != "restorer":
        raise WeightsError(
            f"{checkpoint.path}: not a restorer checkpoint of a supported layout (looks like {checkpoint.layout})",
            hint="official files: use GFPGANv1.3.pth or GFPGANv1.4.pth; a StyleGAN2 prior loads with load_prior",
        )
    if config is None:
        config = checkpoint.config or infer_config(checkpoint.state_dict)
    model = RestorerNet(resolve_config(config))
    _strict_load(model, checkpoint.state_dict, checkpoint.path)
    return model.eval()


def save_restorer(path: str | Path, model: RestorerNet, metadata: Mapping[str, str] | None = None) -> Path:
    """Save ``model``'s weights as safetensors, its configuration in the metadata (atomic).

    The metadata holds ``format`` (``minerrestore.restorer``), ``arch`` (the config as JSON) and
    any extra ``metadata`` strings; :func:`load_restorer` rebuilds the architecture from it.
    """
    header = {**(metadata or {}), "format": MODEL_FORMAT, "arch": json.dumps(model.config.to_dict())}
    return save_state_dict(path, model.state_dict(), metadata=header)


def init_from_checkpoint(model: RestorerNet, path: str | Path) -> InitReport:
    """Fill ``model`` from a restorer checkpoint wherever names and shapes match (schemes B-G from A).

    Returns:
        :class:`InitReport` listing loaded, new, mismatched and unused keys.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.layout != "restorer":
        raise WeightsError(f"{checkpoint.path}: not a restorer checkpoint (looks like {checkpoint.layout})")
    report = _compare(model, checkpoint.state_dict)
    model.load_state_dict({key: checkpoint.state_dict[key] for key in report.loaded}, strict=False)
    return report


def _conv_flipped(key: str) -> bool:
    """Up-sampling style convolutions (``style_convs.0``, ``.2``, ...) have their kernel flipped."""
    match = re.fullmatch(r"style_convs\.(\d+)\.modulated_conv\.weight", key)
    return match is not None and int(match.group(1)) % 2 == 0


def convert_stylegan2_original(state_dict: Mapping[str, Tensor], lr_mlp: float = ORIGINAL_LR_MLP) -> dict[str, Tensor]:
    """Convert basicsr's original StyleGAN2Generator state dict to our clean generator's names and scales.

    Args:
        state_dict: original layout (``style_mlp.1..N``, ``*.activate.bias``, unscaled weights).
        lr_mlp: learning-rate multiplier the mapping MLP was trained with (basicsr default 0.01).

    Returns:
        State dict for :class:`~minerrestore.archs.stylegan2.StyleGAN2Generator`.
    """
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        value = value.float()
        mlp = re.fullmatch(r"style_mlp\.(\d+)\.(weight|bias)", key)
        if mlp:  # EqualLinear(lr_mul) + sqrt(2)-scaled leaky ReLU -> nn.Linear + leaky ReLU
            index, name = int(mlp.group(1)), mlp.group(2)
            scale = lr_mlp * SQRT2 / (math.sqrt(value.shape[1]) if name == "weight" else 1.0)
            converted[f"style_mlp.{2 * index - 1}.{name}"] = value * scale
        elif key.endswith("modulation.weight"):  # EqualLinear, lr_mul 1
            converted[key] = value / math.sqrt(value.shape[1])
        elif key.endswith("modulated_conv.weight"):  # (1, out, in, k, k), scale 1/sqrt(in k k)
            weight = value / math.sqrt(value[0].numel() / value.shape[1])
            converted[key] = weight.flip(3, 4) if _conv_flipped(key) else weight
        elif key.endswith(".activate.bias"):  # fused leaky ReLU bias -> StyleConv bias times sqrt(2)
            converted[key.removesuffix("activate.bias") + "bias"] = value.view(1, -1, 1, 1) * SQRT2
        elif re.fullmatch(r"(style_conv1|style_convs\.\d+)\.weight", key):  # noise strength, times sqrt(2)
            converted[key] = value * SQRT2
        else:  # constant input, noise buffers, to_rgb biases, modulation biases
            converted[key] = value
    return converted


def load_prior(model: RestorerNet | StyleGAN2Generator, path: str | Path) -> InitReport:
    """Load a StyleGAN2 prior (original or clean layout) into a generator or a restorer's decoder, strictly.

    Raises:
        WeightsError: not a StyleGAN2 file, or its size does not match the decoder.
    """
    checkpoint = read_checkpoint(path)
    decoder = model.stylegan_decoder if isinstance(model, RestorerNet) else model
    if checkpoint.layout == "stylegan2-original":
        state_dict = convert_stylegan2_original(checkpoint.state_dict)
    elif checkpoint.layout == "stylegan2-clean":
        state_dict = checkpoint.state_dict
    elif checkpoint.layout == "restorer":
        prefix = "stylegan_decoder."
        state_dict = {k.removeprefix(prefix): v for k, v in checkpoint.state_dict.items() if k.startswith(prefix)}
    else:
        raise WeightsError(f"{checkpoint.path}: not a StyleGAN2 checkpoint")
    _strict_load(decoder, state_dict, checkpoint.path)
    return InitReport(loaded=sorted(state_dict))


def inspect_checkpoint(path: str | Path, target: RestorerConfig | str | None = None) -> dict[str, Any]:
    """Describe a checkpoint: layout, architecture, parameters, and what loads into ``target``.

    Args:
        path: any supported checkpoint.
        target: architecture to load into (scheme name or config); default: the file's own.

    Returns:
        JSON-serialisable dict: ``path``, ``layout``, ``source_key``, ``tensors``,
        ``file_parameters``, ``architecture`` (config dict or None), ``scheme``, and for
        restorer files ``target``, ``target_scheme``, ``target_parameters`` and the
        :meth:`InitReport.summary` of loading into the target.
    """
    checkpoint = read_checkpoint(path)
    info: dict[str, Any] = {
        "path": str(checkpoint.path),
        "layout": checkpoint.layout,
        "source_key": checkpoint.source_key,
        "tensors": len(checkpoint.state_dict),
        "file_parameters": sum(v.numel() for k, v in checkpoint.state_dict.items() if "noises." not in k),
        "architecture": None,
        "scheme": None,
    }
    if checkpoint.layout != "restorer":
        return info
    config = checkpoint.config or infer_config(checkpoint.state_dict)
    info["architecture"] = config.to_dict()
    info["scheme"] = scheme_name(config)
    target_config = resolve_config(target) if target is not None else config
    if target is not None and not isinstance(target, RestorerConfig) and target_config.out_size != config.out_size:
        target_config = resolve_config(target_config, out_size=config.out_size)
    with torch.device("meta"):
        model = RestorerNet(target_config)
    report = _compare(model, checkpoint.state_dict)
    info["target"] = target_config.to_dict()
    info["target_scheme"] = scheme_name(target_config)
    info["target_parameters"] = count_parameters(model)
    info.update(report.summary())
    return info


def _compare(model: RestorerNet, state_dict: Mapping[str, Tensor]) -> InitReport:
    """What :func:`init_from_checkpoint` would load, without loading."""
    own = model.state_dict()
    matching = [k for k, v in state_dict.items() if k in own and own[k].shape == v.shape]
    return InitReport(
        loaded=sorted(matching),
        new=sorted(set(own) - set(state_dict)),
        mismatched=sorted(k for k in state_dict if k in own and own[k].shape != state_dict[k].shape),
        unused=sorted(set(state_dict) - set(own)),
    )
