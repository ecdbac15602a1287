"""Degradation presets: which degradations are drawn, how often, and from which ranges.

A preset is a YAML file (read with ``yaml.safe_load``) with one section per degradation
stage. Each section has a ``prob`` (chance that the stage is applied to an image, 1.0 when
omitted) and the ranges its parameters are drawn from, uniformly. Sizes are in pixels of
the output image (the presets are tuned for 512 px faces).

Built-in presets, shipped as package data beside this file:

- ``paper``: Eq. 14 of the paper (METHOD.md §1.2): Gaussian blur sigma U[0.2, 10] with
  a 41-tap kernel (the size GFP-GAN uses), downsampling factor U[1, 8] and back to size,
  Gaussian noise std U[0, 15] on the 0-255 scale, JPEG quality U{60..100}.
- ``miner``: ``paper`` plus the conditions of pit cameras the paper names but does not
  model: coal dust, lamp colour cast, low light, motion blur, greyscale.
- ``mild``: ``paper`` at clean to mild levels (blur sigma U[0.2, 1.5], downsampling U[1, 2],
  noise U[0, 5], JPEG U{80..100}), so that a network also sees good faces to leave alone.

A user preset is any ``.yml`` file. ``base: miner`` inherits a preset (a built-in name or a
path relative to the file) and overrides it key by key, section by section; a section set
to ``null`` removes that stage. Files are read by the generic reader of
:mod:`minerrestore.settings` (``base:`` chains, type checks and coercion): unknown sections or
keys are rejected with :class:`~minerrestore.errors.ConfigError`, naming the file, the key
path (``blur.sigma``) and the closest known names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, make_dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from minerrestore.errors import ConfigError
from minerrestore.settings import InvalidSetting, build, find_yaml, read_yaml_chain

Range = tuple[float, float]
IntRange = tuple[int, int]
Colours = tuple[tuple[float, float, float], ...]

BUILTIN_PRESETS = ("paper", "miner", "mild")
PRESET_FOLDER = Path(str(resources.files(__package__)))
"""The built-in presets' folder (``paper.yml``, ``miner.yml``, ``mild.yml``)."""
_DECIMALS = 4  # drawn values are rounded so manifests stay readable; the rounded value is applied
_SEED_LIMIT = 2**31  # per-stage seeds stay exact in any JSON reader


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return round(float(rng.uniform(bounds[0], bounds[1])), _DECIMALS)


def _stage_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, _SEED_LIMIT))


@dataclass(frozen=True)
class StageSpec:
    """Base of every section: the chance ``prob`` in [0, 1] that the stage is applied.

    Subclasses list their ranges as fields and declare ``limits``: the allowed interval of
    each field (both ends of a range must lie inside it). A spec checks its values when it is
    made.
    """

    limits: ClassVar[dict[str, tuple[float, float]]] = {}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw this stage's parameters (JSON-ready) from ``rng``."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        """Raise :class:`~minerrestore.settings.InvalidSetting` naming the first field outside its limits."""
        for item in fields(self):
            value = getattr(self, item.name)
            low, high = {"prob": (0.0, 1.0), **self.limits}.get(item.name, (-math.inf, math.inf))
            numbers = [value] if isinstance(value, (int, float)) else list(np.ravel(value))
            is_range = isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], tuple)
            if is_range and value[0] > value[1]:
                raise InvalidSetting(item.name, f"range [{value[0]}, {value[1]}] has low > high")
            for number in numbers:
                if not low <= number <= high:
                    raise InvalidSetting(item.name, f"{number} is outside [{low}, {high}]")


@dataclass(frozen=True)
class DustSpec(StageSpec):
    """Coal dust: dark specks concentrated on the face and a light haze.

    ``specks``: number of specks; ``radius``: largest speck radius (px; each speck gets
    30-100 % of it); ``darkness``: largest speck opacity; ``haze``: blend weight towards
    the grey level ``haze_level`` (0-1).
    """

    specks: IntRange
    radius: Range
    darkness: Range
    haze: Range
    haze_level: Range
    prob: float = 1.0
    limits: ClassVar = {
        "specks": (0, 100_000),
        "radius": (0.1, 50.0),
        "darkness": (0.0, 1.0),
        "haze": (0.0, 1.0),
        "haze_level": (0.0, 1.0),
    }

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "specks": int(rng.integers(self.specks[0], self.specks[1] + 1)),
            "radius": _uniform(rng, self.radius),
            "darkness": _uniform(rng, self.darkness),
            "haze": _uniform(rng, self.haze),
            "haze_level": _uniform(rng, self.haze_level),
            "seed": _stage_seed(rng),
        }


@dataclass(frozen=True)
class CastSpec(StageSpec):
    """Lamp colour cast: per-channel gains ``1 - s + s * colour`` (colour scaled to max 1).

    ``colours``: RGB lamp colours, one picked per image; ``strength``: s.
    """

    colours: Colours
    strength: Range
    prob: float = 1.0
    limits: ClassVar = {"colours": (0.0, 1.0), "strength": (0.0, 1.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        colour = np.asarray(self.colours[int(rng.integers(len(self.colours)))], dtype=np.float64)
        strength = _uniform(rng, self.strength)
        gains = 1.0 - strength + strength * colour / max(float(colour.max()), 1e-6)
        return {"gains": [round(float(g), _DECIMALS) for g in gains]}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.colours or any(len(colour) != 3 for colour in self.colours):
            raise InvalidSetting("colours", "give a list of [r, g, b] triples in 0-1")


@dataclass(frozen=True)
class LowLightSpec(StageSpec):
    """Low light: ``exposure * x ** gamma`` (x in 0-1), then signal-dependent sensor noise.

    ``shot``: noise variance per unit of signal on the 0-255 scale (Poisson-like:
    std = sqrt(shot * signal)).
    """

    exposure: Range
    gamma: Range
    shot: Range
    prob: float = 1.0
    limits: ClassVar = {"exposure": (0.01, 1.0), "gamma": (0.1, 10.0), "shot": (0.0, 100.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "exposure": _uniform(rng, self.exposure),
            "gamma": _uniform(rng, self.gamma),
            "shot": _uniform(rng, self.shot),
            "seed": _stage_seed(rng),
        }


@dataclass(frozen=True)
class BlurSpec(StageSpec):
    """Gaussian blur k_sigma of Eq. 14: ``kernel_size`` taps (odd), ``sigma`` in pixels.

    With probability ``anisotropic_prob`` the kernel is anisotropic (sigma_x, sigma_y drawn
    independently, rotation theta U[0, pi)), as in GFP-GAN's mixed kernels.
    """

    sigma: Range
    kernel_size: int = 41
    anisotropic_prob: float = 0.0
    prob: float = 1.0
    limits: ClassVar = {"sigma": (0.01, 100.0), "kernel_size": (3, 401), "anisotropic_prob": (0.0, 1.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        sigma_x = _uniform(rng, self.sigma)
        if rng.random() < self.anisotropic_prob:
            sigma_y = _uniform(rng, self.sigma)
            theta = round(float(rng.uniform(0.0, math.pi)), _DECIMALS)
        else:
            sigma_y, theta = sigma_x, 0.0
        return {"kernel_size": self.kernel_size, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size % 2 == 0:
            raise InvalidSetting("kernel_size", f"{self.kernel_size} must be odd")


@dataclass(frozen=True)
class MotionSpec(StageSpec):
    """Linear motion blur: a line kernel of ``length`` pixels at ``angle`` degrees."""

    length: Range
    angle: Range = (0.0, 180.0)
    prob: float = 1.0
    limits: ClassVar = {"length": (1.0, 200.0), "angle": (-360.0, 360.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"length": _uniform(rng, self.length), "angle": _uniform(rng, self.angle)}


@dataclass(frozen=True)
class DownsampleSpec(StageSpec):
    """Downsampling by ``factor`` (bilinear, as GFP-GAN), later resized back to the GT size."""

    factor: Range
    prob: float = 1.0
    limits: ClassVar = {"factor": (1.0, 64.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"factor": _uniform(rng, self.factor)}


@dataclass(frozen=True)
class GreySpec(StageSpec):
    """Greyscale camera (infrared or monochrome): luma, and grey sensor noise after it."""

    prob: float = 1.0

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class NoiseSpec(StageSpec):
    """Additive white Gaussian noise n_delta of Eq. 14, std ``sigma`` on the 0-255 scale."""

    sigma: Range
    prob: float = 1.0
    limits: ClassVar = {"sigma": (0.0, 255.0)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"sigma": _uniform(rng, self.sigma), "seed": _stage_seed(rng)}


@dataclass(frozen=True)
class JpegSpec(StageSpec):
    """JPEG compression of Eq. 14 at an integer ``quality`` drawn from the inclusive range."""

    quality: IntRange
    prob: float = 1.0
    limits: ClassVar = {"quality": (1, 100)}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"quality": int(rng.integers(self.quality[0], self.quality[1] + 1))}


SECTIONS: dict[str, type[StageSpec]] = {
    "dust": DustSpec,
    "cast": CastSpec,
    "lowlight": LowLightSpec,
    "blur": BlurSpec,
    "motion": MotionSpec,
    "downsample": DownsampleSpec,
    "grey": GreySpec,
    "noise": NoiseSpec,
    "jpeg": JpegSpec,
}
"""Every section a preset may have, in the order the stages are drawn and applied."""

_PresetFile = make_dataclass(
    "PresetFile",
    [("description", str, ""), *((section, spec | None, None) for section, spec in SECTIONS.items())],
    frozen=True,
)
"""What a preset file holds (after its ``base:`` chain): a description and the sections; null removes one."""


@dataclass(frozen=True)
class Preset:
    """A loaded, validated preset: its name, description and one spec per enabled stage."""

    name: str
    description: str
    stages: tuple[tuple[str, StageSpec], ...]

    def spec(self, section: str) -> StageSpec | None:
        """The spec of ``section``, or None when the preset does not use that stage."""
        return dict(self.stages).get(section)


def load_preset(spec: str | Path | Preset) -> Preset:
    """Load a built-in preset by name or a user preset from a YAML path.

    Args:
        spec: ``"paper"``, ``"miner"``, a path to a ``.yml`` file, or an already loaded Preset.

    Raises:
        ConfigError: unknown name, missing file, invalid YAML, unknown section or key,
            missing range, or a value outside its allowed interval.
    """
    if isinstance(spec, Preset):
        return spec
    if isinstance(spec, str) and spec in BUILTIN_PRESETS:
        return _builtin(spec)
    return _load(spec, find_yaml(spec, PRESET_FOLDER, kind="preset"))


@lru_cache(maxsize=len(BUILTIN_PRESETS))
def _builtin(name: str) -> Preset:
    return _load(name, PRESET_FOLDER / f"{name}.yml")  # presets are frozen, so the packaged ones are read once


def _load(spec: str | Path, path: Path) -> Preset:
    data = read_yaml_chain(path, PRESET_FOLDER, kind="preset")  # its errors name the file
    try:
        loaded = build(_PresetFile, data, kind="preset key")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from exc
    stages = tuple((section, getattr(loaded, section)) for section in SECTIONS if getattr(loaded, section) is not None)
    return Preset(name=str(spec), description=loaded.description, stages=stages)


__all__ = ["BUILTIN_PRESETS", "PRESET_FOLDER", "SECTIONS", "Preset", "StageSpec", "load_preset"]
