"""minerrestore.settings: the generic YAML reader works for any dataclass tree, not only training configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from minerrestore.errors import ConfigError
from minerrestore.settings import (
    InvalidSetting,
    apply_overrides,
    build,
    find_yaml,
    parse_override,
    read_yaml_chain,
    shipped_names,
    to_dict,
    to_yaml,
)


@dataclass(frozen=True)
class Blur:
    sigma: tuple[float, float] = (0.2, 10.0)
    kernel: int = 41


@dataclass(frozen=True)
class Recipe:
    name: str = "recipe"
    mode: Literal["fast", "exact"] = "fast"
    sizes: tuple[int, ...] = (1,)
    blur: Blur = field(default_factory=Blur)
    note: str | None = None


@dataclass(frozen=True)
class Stage:
    """A section with a required key and its own check, as a degradation preset's."""

    sigma: tuple[float, float]
    taps: int = 3

    def __post_init__(self) -> None:
        if self.taps % 2 == 0:
            raise InvalidSetting("taps", f"{self.taps} must be odd", hint="use 3, 5 ...")


@dataclass(frozen=True)
class Stages:
    blur: Stage | None = None


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "plain.yml").write_text("name: plain\nblur:\n  kernel: 21\n", encoding="utf-8")
    (folder / "strong.yml").write_text("base: plain\nblur:\n  sigma: [1, 20]\n", encoding="utf-8")
    return folder


def test_a_base_chain_merges_section_by_section_and_builds_typed_values(shipped: Path, tmp_path: Path) -> None:
    assert shipped_names(shipped) == ["plain", "strong"]
    data = read_yaml_chain("strong", shipped, kind="recipe")
    assert data == {"name": "plain", "blur": {"kernel": 21, "sigma": [1, 20]}}
    recipe = build(Recipe, apply_overrides(data, ["sizes=[1, 2.0]", "mode=exact", "note=null"]))
    assert recipe == Recipe("plain", "exact", (1, 2), Blur((1.0, 20.0), 21), None)
    assert build(Recipe, yaml.safe_load(to_yaml(recipe))) == recipe
    assert to_dict(recipe)["blur"] == {"sigma": [1.0, 20.0], "kernel": 21}
    child = tmp_path / "child.yml"
    child.write_text("base: strong\nsizes: 3\n", encoding="utf-8")  # a single value for a tuple
    assert build(Recipe, read_yaml_chain(child, shipped)).sizes == (3,)


def test_errors_name_the_key_path_and_the_kind_of_file(shipped: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'blur\.kernal'") as caught:
        build(Recipe, {"blur": {"kernal": 3}})
    assert caught.value.hint == "did you mean blur.kernel?"
    with pytest.raises(ConfigError, match=r"blur\.sigma\[1\]: expected a number"):
        build(Recipe, {"blur": {"sigma": [1, "x"]}})
    with pytest.raises(ConfigError, match=r"mode: 'slow' is not one of fast, exact"):
        build(Recipe, {"mode": "slow"})
    with pytest.raises(ConfigError, match="recipe stong: no such file or shipped recipe") as caught:
        find_yaml("stong", shipped, kind="recipe")
    assert caught.value.hint == "did you mean strong?"
    loop = tmp_path / "loop.yml"
    loop.write_text("base: loop.yml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="circular"):
        read_yaml_chain(loop, shipped)
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        parse_override("blur.kernel")


def test_required_keys_own_checks_and_the_kind_of_key_are_named_with_their_path() -> None:
    assert build(Stages, {"blur": {"sigma": [1, 2.5], "taps": 5.0}}) == Stages(Stage((1.0, 2.5), 5))
    assert build(Stages, {"blur": None}) == Stages()
    with pytest.raises(ConfigError, match="blur: needs sigma"):
        build(Stages, {"blur": {"taps": 3}})
    with pytest.raises(InvalidSetting, match=r"^blur\.taps: 4 must be odd ") as caught:
        build(Stages, {"blur": {"sigma": [1, 2], "taps": 4}})
    assert (caught.value.key, caught.value.problem, caught.value.hint) == ("blur.taps", "4 must be odd", "use 3, 5 ...")
    with pytest.raises(InvalidSetting, match=r"^taps: 4 must be odd "):
        build(Stage, {"sigma": [1, 2], "taps": 4})
    with pytest.raises(ConfigError, match=r"blur\.sigma: expected a list of 2 values, got 5"):
        build(Stages, {"blur": {"sigma": 5}})
    with pytest.raises(ConfigError, match=r"unknown stage key 'blur\.sigmaa'") as caught:
        build(Stages, {"blur": {"sigmaa": [1, 2]}}, kind="stage key")
    assert caught.value.hint == "did you mean blur.sigma?"  # kept through the optional section
