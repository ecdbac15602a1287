"""RestorerNet networks: equivalence with official GFP-GAN, schemes A-G, fidelity, batching, precision."""

from __future__ import annotations

import itertools

import pytest
import torch

import minerrestore.compat  # noqa: F401  (before gfpgan)
from minerrestore.archs.precision import autocast, bfloat16_native, resolve_precision
from minerrestore.archs.profile import count_flops, count_parameters, scheme_table
from minerrestore.archs.restorer import (
    SCHEMES,
    RestorerConfig,
    RestorerNet,
    checkpoint_filter_fn,
    create_restorer,
    resolve_config,
    to_official_state_dict,
)
from minerrestore.archs.sft import SqueezeExcitation
from minerrestore.archs.stylegan2 import StyleGAN2Generator
from minerrestore.archs.unetpp import NestedNode
from minerrestore.errors import ConfigError, UsageError

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def official_gfpgan(out_size: int, channel_multiplier: int, narrow: float = 1.0) -> torch.nn.Module:
    """gfpgan's GFPGANv1Clean with the v1.3/v1.4 settings and random weights (biases too)."""
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    net = GFPGANv1Clean(
        out_size=out_size,
        num_style_feat=512,
        channel_multiplier=channel_multiplier,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=narrow,
        sft_half=True,
    ).eval()
    with torch.no_grad():  # official init zeroes biases and noise strengths: make them matter
        for name, parameter in net.named_parameters():
            if name.endswith("bias") or parameter.numel() == 1:
                parameter.normal_(0.0, 0.2)
    return net


def tiny(name: str = "D", size: int = 32, **overrides: object) -> RestorerNet:
    return create_restorer(name, out_size=size, narrow=0.25, **overrides).eval()


def faces(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


def assert_matches_official(size: int, channel_multiplier: int, narrow: float, batch: int) -> None:
    torch.manual_seed(size + batch)
    official = official_gfpgan(size, channel_multiplier, narrow)
    ours = create_restorer("A", out_size=size, channel_multiplier=channel_multiplier, narrow=narrow).eval()
    ours.load_state_dict(checkpoint_filter_fn(official.state_dict()), strict=True)
    x = faces(batch, size)
    with torch.inference_mode():
        expected, expected_rgbs = official(x, return_rgb=True, randomize_noise=False)
        image, rgbs = ours(x, return_rgb=True)
    assert expected.abs().max() > 0.05  # a real signal, not zeros
    assert (image - expected).abs().max().item() <= 1e-5
    assert len(rgbs) == len(expected_rgbs) == ours.removal.num_levels
    for ours_rgb, official_rgb in zip(rgbs, expected_rgbs, strict=True):
        assert (ours_rgb - official_rgb).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("channel_multiplier", "batch"), [(2, 1), (2, 3), (1, 2)])
def test_scheme_a_matches_official_gfpgan_small(channel_multiplier: int, batch: int) -> None:
    # batch 1 folds the style into the weight, batch > 1 modulates activations: both must match
    assert_matches_official(32, channel_multiplier, 0.5, batch)


def test_scheme_a_matches_official_gfpgan_at_512() -> None:
    assert_matches_official(512, 1, 1.0, 1)


def test_state_dict_converts_back_to_official_layout() -> None:
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    ours = create_restorer("A", out_size=32, channel_multiplier=2, narrow=0.5)
    official = GFPGANv1Clean(out_size=32, channel_multiplier=2, narrow=0.5, different_w=True, sft_half=True)
    official.load_state_dict(to_official_state_dict(ours.state_dict()), strict=True)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_scheme_builds_runs_and_trains_at_64px(name: str) -> None:
    model = create_restorer(name, out_size=64, narrow=0.25)
    x = faces(2, 64)
    image, rgbs = model(x, randomize_noise=True, return_rgb=True)
    assert image.shape == (2, 3, 64, 64) and image.dtype == torch.float32
    assert [rgb.shape[-1] for rgb in rgbs] == [8, 16, 32, 64]
    (image.mean() + sum(rgb.mean() for rgb in rgbs)).backward()
    removal_grad = model.removal.conv_body_first.weight.grad
    assert removal_grad is not None and removal_grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_scheme_builds_at_512px(name: str) -> None:
    with torch.device("meta"):  # shapes only: no memory, no random initialisation cost
        model = create_restorer(name)
    assert model.config.out_size == 512 and len(model.condition_scale) == 7
    assert model.stylegan_decoder.num_latent == 16


def test_parameter_counts() -> None:
    rows = {row["scheme"]: row for row in scheme_table(sizes=(512,)) if row["kind"] == "architecture"}
    counts = {name: row["parameters"] for name, row in rows.items()}
    assert counts["gfpgan-clean"] == 86_444_252  # the official v1.3/v1.4 network (GFPGANv1Clean, cmul 2)
    assert counts["A"] == 76_207_244  # paper setting: channel multiplier 1
    assert counts["D"] == counts["E"] and counts["C"] == counts["G"]
    assert counts["A"] < counts["B"] < counts["D"] and counts["A"] < counts["C"] < counts["D"] < counts["F"]
    assert rows["D"]["gflops_512"] > rows["A"]["gflops_512"] > 100


def test_flops_match_the_official_network() -> None:
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        official = GFPGANv1Clean(
            out_size=128, channel_multiplier=2, different_w=True, input_is_latent=True, sft_half=True
        )
        x = torch.zeros(1, 3, 128, 128)
    counter = FlopCounterMode(display=False)
    with counter:
        official.requires_grad_(False)(x, return_rgb=False)
    ours = count_flops(resolve_config("gfpgan-clean", out_size=128))
    # identical convolutions, except that our up-ResBlock runs its 1x1 skip before upsampling
    assert 0.97 * counter.get_total_flops() < ours <= counter.get_total_flops()


def test_scheme_d_has_nested_unetpp_nodes_and_se_blocks_that_matter() -> None:
    torch.manual_seed(1)
    model = tiny("D", 32)
    levels = model.removal.num_levels
    nodes = [m for m in model.modules() if isinstance(m, NestedNode)]
    se_blocks = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    assert len(nodes) == levels * (levels + 1) // 2 and len(se_blocks) == levels
    x = faces(1, 32)
    with torch.inference_mode():
        before = model(x).image
    for module in (se_blocks[-1].fc2, model.removal.nested_nodes["x0_1"].fuse):  # an inner node, off the diagonal
        with torch.no_grad():
            module.weight.add_(torch.randn_like(module.weight))
        with torch.inference_mode():
            after = model(x).image
        assert (after - before).abs().max() > 1e-4
        before = after


def test_unetpp_node_inputs_follow_the_nested_formula() -> None:
    model = tiny("C", 64)
    channels = model.removal.channels
    # x(j, k) = H([x(j, 0..k-1), Up(x(j + 1, k - 1))]): k inputs of level j plus one from below
    node = model.removal.nested_nodes["x1_2"]
    assert node.fuse.in_channels == 2 * channels[32] + channels[16]
    assert set(model.removal.nested_nodes) == {f"x{j}_{k}" for k in range(1, 5) for j in range(5 - k)}


def test_nested_node_computes_h_of_the_concatenation() -> None:
    import torch.nn.functional as F

    from minerrestore.archs.stylegan2 import upsample2x

    node = NestedNode(2 * 8 + 16, 8)
    same = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16)]
    below = torch.randn(2, 16, 8, 8)
    fused = F.leaky_relu(node.fuse(torch.cat([*same, upsample2x(below)], dim=1)), 0.2)
    expected = fused + F.leaky_relu(node.conv(fused), 0.2)
    assert torch.allclose(node(same, below), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["A", "D"])
def test_fidelity_changes_the_output_monotonically(name: str) -> None:
    torch.manual_seed(2)
    model = tiny(name, 32)
    x = faces(2, 32, seed=3)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    with torch.inference_mode():
        images = [model(x, fidelity=level).image for level in levels]
        removed = model.removal(x.contiguous(memory_format=torch.channels_last), return_rgb=False)
        pure_prior = model.stylegan_decoder(removed.latent, input_is_latent=True)
    from_prior = [float((image - images[0]).abs().mean()) for image in images]
    from_full = [float((image - images[-1]).abs().mean()) for image in images]
    assert all(a < b for a, b in itertools.pairwise(from_prior)), from_prior
    assert all(a > b for a, b in itertools.pairwise(from_full)), from_full
    assert from_prior[-1] > 1e-3
    assert torch.allclose(images[0], pure_prior, atol=1e-6)


def test_fidelity_outside_unit_interval_is_refused() -> None:
    with pytest.raises(UsageError, match="fidelity"):
        tiny("A")(faces(1, 32), fidelity=1.5)


def test_batch_gives_the_same_faces_as_one_by_one() -> None:
    model = tiny("B", 32)
    x = faces(3, 32, seed=4)
    with torch.inference_mode():
        batched = model(x).image
        single = torch.cat([model(x[i : i + 1]).image for i in range(3)])
    assert (batched - single).abs().max() <= 1e-5


def test_fixed_noise_is_deterministic_random_noise_is_not() -> None:
    model = tiny("A")
    with torch.no_grad():  # noise strengths start at zero, as in StyleGAN2
        model.stylegan_decoder.style_convs[-1].weight.fill_(0.5)
    x = faces(1, 32)
    with torch.inference_mode():
        assert torch.equal(model(x).image, model(x).image)
        assert not torch.equal(model(x, randomize_noise=True).image, model(x, randomize_noise=True).image)


def test_bfloat16_autocast_is_close_to_float32() -> None:
    model = tiny("D", 32)
    x = faces(2, 32)
    with torch.inference_mode():
        reference = model(x).image
        with autocast("bfloat16", CPU) as dtype:
            low = model(x).image
    assert dtype == torch.bfloat16 and low.dtype == torch.float32
    difference = float((low - reference).abs().mean() * 127.5)  # 0-255 scale
    assert 0 < difference < 2.0


def test_precision_names() -> None:
    assert resolve_precision("float32", CPU) == torch.float32
    assert resolve_precision("bfloat16", CPU) == torch.bfloat16
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if bfloat16_native(CPU) else torch.float32)
    assert resolve_precision("auto", torch.device("meta")) == torch.float32
    with pytest.raises(UsageError):
        resolve_precision("half", CPU)


def test_unknown_scheme_names_the_close_matches() -> None:
    with pytest.raises(UsageError) as info:
        create_restorer("gfpgan-clen")
    assert "gfpgan-clean" in str(info.value)
    assert resolve_config("scheme-d") == resolve_config("d") == SCHEMES["D"]


def test_invalid_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown restorer setting"):
        create_restorer("A", out_sise=64)
    with pytest.raises(ConfigError, match="out_size"):
        RestorerConfig(out_size=100)
    with pytest.raises(ConfigError, match="modulation"):
        RestorerConfig(modulation="adain")  # type: ignore[arg-type]
    config = RestorerConfig.from_dict(SCHEMES["F"].to_dict())
    assert config == SCHEMES["F"]


def test_stylegan2_generator_samples_and_truncates() -> None:
    torch.manual_seed(0)
    generator = StyleGAN2Generator(32, num_style_feat=64, num_mlp=2, narrow=0.125).eval()
    z = torch.randn(2, 64)
    with torch.inference_mode():
        image = generator(z)
        mean = generator.mean_latent(64)
        truncated = generator(z, truncation=0.0, truncation_latent=mean)
    assert image.shape == (2, 3, 32, 32)
    assert torch.allclose(truncated[0], truncated[1], atol=1e-5)  # psi = 0: every sample is the mean face
    assert count_parameters(generator) > 0


def test_input_skip_starts_as_the_identity_learns_a_correction_and_survives_a_round_trip(tmp_path) -> None:
    from minerrestore.archs.checkpoints import load_restorer, save_restorer

    net = tiny("D", size=32, input_skip=True)
    x = faces(2, 32)
    with torch.no_grad():
        assert torch.equal(net(x).image, x)  # untrained: the input comes back
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):  # the first step moves only the zeroed RGB layers, the second everything
        optimiser.zero_grad()
        (net(x).image - 0.5).abs().mean().backward()
        optimiser.step()
    with torch.no_grad():
        moved = net.eval()(x).image
        assert not torch.equal(moved, x)
        path = save_restorer(tmp_path / "skip.safetensors", net)
        loaded = load_restorer(path)
        assert loaded.config.input_skip and torch.equal(loaded(x).image, moved)
    assert not tiny("D", size=32).config.input_skip  # off by default: official layouts unchanged
