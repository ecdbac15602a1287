"""Training configs: shipped files, typed loading, unknown keys, overrides without eval, round trips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from minerrestore.errors import ConfigError
from minerrestore.settings import parse_override, to_dict, to_yaml
from minerrestore.train.config import EMA_DECAY_GFPGAN, Config, from_dict, load_config, replace, shipped_configs

PAPER_SCHEMES = {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E", "f": "F", "g": "G"}


def test_every_shipped_config_loads_and_round_trips() -> None:
    names = shipped_configs()
    assert {"tiny", "default128", "paper512", *(f"paper512_{s}" for s in PAPER_SCHEMES)} <= set(names)
    for name in names:
        config = load_config(name)
        assert isinstance(config, Config)
        assert from_dict(yaml.safe_load(to_yaml(config))) == config


@pytest.mark.parametrize("suffix", sorted(PAPER_SCHEMES))
def test_paper_configs_follow_the_paper(suffix: str) -> None:
    config = load_config(f"paper512_{suffix}")
    assert config.model.scheme == PAPER_SCHEMES[suffix]
    assert config.model.out_size == 512 and config.model.arch == {"channel_multiplier": 1}
    assert config.model.freeze_decoder and config.model.prior == "stylegan2-ffhq512"
    assert config.optim.lr_g == 2e-3 and config.data.batch_size == 12 and config.train.iterations == 400_000
    assert config.optim.betas_g == (0.0, 0.99) and config.optim.betas_components == (0.9, 0.99)
    assert config.optim.ema_decay == pytest.approx(EMA_DECAY_GFPGAN)
    losses = config.losses
    assert (losses.l1, losses.perceptual, losses.gan, losses.r1, losses.r1_every) == (0.1, 1.0, 0.1, 10.0, 16)
    assert (losses.component_gan, losses.component_style, losses.identity) == (1.0, 200.0, 10.0)
    assert (losses.pyramid, losses.pyramid_until) == (1.0, 50_000)
    assert config.train.out_dir == f"runs/paper512_{suffix}"


def test_small_configs() -> None:
    tiny = load_config("tiny")
    assert tiny.model.out_size == 64 and tiny.train.device == "cpu" and tiny.data.num_workers == 0
    assert tiny.model.prior is None and not tiny.model.freeze_decoder
    default = load_config("default128")
    assert default.model.scheme == "D" and default.model.out_size == 128
    assert default.data.presets == ("miner", "paper") and not default.model.zero_constant_input
    stage2 = load_config("default128_stage2")
    assert stage2.model.init == default.train.out_dir and not stage2.model.zero_constant_input
    assert (stage2.losses.perceptual, stage2.losses.identity, stage2.train.iterations) == (0.0, 0.0, 600)
    assert dataclasses.replace(stage2.losses, perceptual=1.0, identity=default.losses.identity) == default.losses
    assert (stage2.data, stage2.optim) == (default.data, default.optim)
    stage3 = load_config("default128_stage3")
    assert stage3.data == dataclasses.replace(stage2.data, degrade_scales=(1, 2))
    assert (stage3.losses, stage3.optim, stage3.train.iterations) == (stage2.losses, stage2.optim, 600)
    assert stage3.model.init == "runs/default128_stage2.safetensors" and stage3.train.out_dir != stage2.train.out_dir


def test_default256_stage4_is_stage3_with_the_discriminator() -> None:
    stage3, stage4 = load_config("default256_stage3"), load_config("default256_stage4")
    assert (stage4.data, stage4.model.arch, stage4.model.scheme) == (stage3.data, stage3.model.arch, "D")
    assert stage4.model.init == "weights/stages/default256_d_stage3.safetensors"  # stage 3's export
    assert dataclasses.replace(stage4.losses, gan=0.0, r1=0.0) == stage3.losses
    assert (stage4.losses.gan, stage4.losses.r1, stage4.losses.component_gan) == (1.0, 10.0, 0.0)
    assert (stage4.optim.lr_g, stage4.optim.lr_d) == (1e-4, 1e-3)
    grey = load_config("default256_stage4_grey")
    assert grey.losses == dataclasses.replace(stage4.losses, gan_grey=True) and not stage4.losses.gan_grey
    assert (grey.data, grey.model, grey.optim) == (stage4.data, stage4.model, stage4.optim)
    assert grey.train == dataclasses.replace(stage4.train, out_dir=grey.train.out_dir) != stage4.train


def test_unknown_keys_are_rejected_with_their_path_and_close_matches(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.lrg.*did you mean optim\.lr_g"):
        load_config("tiny", ["optim.lrg=1e-3"])
    bad = tmp_path / "bad.yml"
    bad.write_text("base: tiny\nlosses:\n  identiy: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"losses\.identiy.*losses\.identity"):
        load_config(bad)
    bad.write_text("trian: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'trian'.*train"):
        load_config(bad)


def test_types_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"data\.batch_size: expected an integer"):
        load_config("tiny", ["data.batch_size=1.5"])
    with pytest.raises(ConfigError, match=r"optim\.betas_g: expected 2 values"):
        load_config("tiny", ["optim.betas_g=[0.5]"])
    with pytest.raises(ConfigError, match=r"losses\.perceptual_backbone"):
        load_config("tiny", ["losses.perceptual_backbone=alexnet"])
    with pytest.raises(ConfigError, match=r"data\.hflip: expected true or false"):
        load_config("tiny", ["data.hflip=1"])
    with pytest.raises(ConfigError, match=r"model\.scheme"):
        load_config("tiny", ["model.scheme=Z"])
    with pytest.raises(ConfigError, match=r"model: unknown restorer setting"):
        load_config("tiny", ["model.arch.no_such_field=1"])
    with pytest.raises(ConfigError, match=r"model\.out_size: must be a power of 2"):
        load_config("tiny", ["model.out_size=100"])
    with pytest.raises(ConfigError, match=r"losses\.gan: must be 0 or more"):
        load_config("tiny", ["losses.gan=-1"])
    with pytest.raises(ConfigError, match=r"losses\.perceptual_size: must be 32 or more"):
        load_config("tiny", ["losses.perceptual_size=0"])
    assert load_config("tiny", ["losses.perceptual_size=64"]).losses.perceptual_size == 64


def test_overrides_are_yaml_values_never_code() -> None:
    config = load_config(
        "tiny",
        ["optim.lr_g=1e-3", "data.presets=[miner, paper]", "optim.milestones=[10, 20]", "model.prior=null"],
    )
    assert config.optim.lr_g == 1e-3  # YAML 1.1 reads "1e-3" as a string: accepted for a float field
    assert config.data.presets == ("miner", "paper") and config.optim.milestones == (10, 20)
    assert parse_override("name=__import__('os').system('false')") == (["name"], "__import__('os').system('false')")
    with pytest.raises(ConfigError, match="expected a number"):
        load_config("tiny", ["optim.lr_g=__import__('os')"])
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        parse_override("optim.lr_g")
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        parse_override("optim..lr_g=1")
    assert load_config("tiny", ["data.presets=miner"]).data.presets == ("miner",)


def test_replace_and_base_chain(tmp_path: Path) -> None:
    child = tmp_path / "child.yml"
    child.write_text("base: tiny\nname: child\nmodel:\n  scheme: A\n", encoding="utf-8")
    config = load_config(child)
    tiny = load_config("tiny")
    assert config.name == "child" and config.model.scheme == "A"
    assert config.model.out_size == tiny.model.out_size == 64  # inherited, section merged key by key
    changed = replace(config, ["train.iterations=7"])
    assert changed.train.iterations == 7 and changed.model == config.model
    assert to_dict(changed)["train"]["iterations"] == 7
    loop = tmp_path / "loop.yml"
    loop.write_text("base: loop.yml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def test_missing_config_suggests_shipped_names() -> None:
    with pytest.raises(ConfigError, match="tiny"):
        load_config("tyni")
