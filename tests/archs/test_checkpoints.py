"""Checkpoints: official GFP-GAN files, the original StyleGAN2 layout, init of B-G, inspect, safety."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import minerrestore.compat  # noqa: F401  (before basicsr/gfpgan)
from minerrestore.archs.checkpoints import (
    convert_stylegan2_original,
    infer_config,
    init_from_checkpoint,
    inspect_checkpoint,
    load_prior,
    load_restorer,
    read_checkpoint,
    save_restorer,
)
from minerrestore.archs.restorer import SCHEMES, checkpoint_filter_fn, create_restorer, resolve_config
from minerrestore.archs.stylegan2 import StyleGAN2Generator
from minerrestore.errors import WeightsError
from tests.archs.test_restorer import faces, official_gfpgan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ official GFP-GAN files


@pytest.fixture
def official_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A v1.3-style file ({'params_ema', 'params'}) of a 64 px GFPGANv1Clean with random weights.

    64 px is the smallest size whose shapes reveal the channel multiplier (it widens layers above 32 px).
    """
    torch.manual_seed(0)
    ema = official_gfpgan(64, channel_multiplier=2, narrow=0.25)
    trained = official_gfpgan(64, channel_multiplier=2, narrow=0.25)
    path = tmp_path / "GFPGANv1.3.pth"
    torch.save({"params_ema": ema.state_dict(), "params": trained.state_dict()}, path)
    return path, ema


def test_official_file_loads_params_ema_strictly_into_scheme_a(official_file: tuple[Path, torch.nn.Module]) -> None:
    path, ema = official_file
    model = load_restorer(path)
    assert model.config == resolve_config("gfpgan-clean", out_size=64, narrow=0.25)
    x = faces(1, 64)
    with torch.inference_mode():
        expected, _ = ema(x, randomize_noise=False)
        assert (model(x).image - expected).abs().max() <= 1e-5


def test_official_file_with_only_params(tmp_path: Path) -> None:
    net = official_gfpgan(32, channel_multiplier=2, narrow=0.5)
    path = tmp_path / "only_params.pth"
    torch.save({"params": net.state_dict()}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.source_key == "params" and checkpoint.layout == "restorer"
    model = load_restorer(path)
    assert torch.equal(model.removal.conv_body_first.weight, net.conv_body_first.weight)


def test_released_512px_layout_is_scheme_a_with_channel_multiplier_2() -> None:
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    with torch.device("meta"):  # the real v1.3/v1.4 shapes, without 345 MB of random numbers
        official = GFPGANv1Clean(out_size=512, channel_multiplier=2, different_w=True, sft_half=True)
        state_dict = checkpoint_filter_fn(official.state_dict())
        assert infer_config(state_dict) == SCHEMES["gfpgan-clean"]
        model = create_restorer("gfpgan-clean")
    model.load_state_dict(state_dict, strict=True, assign=True)


def test_wrong_architecture_is_a_clear_error(official_file: tuple[Path, torch.nn.Module]) -> None:
    path, _ = official_file
    with pytest.raises(WeightsError, match="does not match"):
        load_restorer(path, resolve_config("A", out_size=64, narrow=0.25))  # channel multiplier 1


def test_pickle_that_carries_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # runs on unpickling with weights_only=False
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_restorer(path)
    assert not marker.exists()


def test_file_without_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    torch.save({"params": {}}, path)
    with pytest.raises(WeightsError, match="no tensors"):
        read_checkpoint(path)


# ------------------------------------------------------------------ our files, init B-G, inspect


def test_save_and_load_keep_the_architecture(tmp_path: Path) -> None:
    model = create_restorer("D", out_size=32, narrow=0.25, se_reduction=8)
    path = save_restorer(tmp_path / "d.safetensors", model, metadata={"iteration": "7"})
    loaded = load_restorer(path)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert infer_config(loaded.state_dict()) == model.config  # shapes alone tell it too


@pytest.mark.parametrize("name", ["B", "C", "D", "F"])
def test_schemes_b_to_g_start_from_a_scheme_a_checkpoint(name: str, tmp_path: Path) -> None:
    scheme_a = create_restorer("A", out_size=32, narrow=0.25)
    path = save_restorer(tmp_path / "a.safetensors", scheme_a)
    model = create_restorer(name, out_size=32, narrow=0.25)
    report = init_from_checkpoint(model, path)
    state = model.state_dict()
    for key in report.loaded:
        assert torch.equal(state[key], scheme_a.state_dict()[key]), key
    assert "stylegan_decoder.style_mlp.1.weight" in report.loaded
    assert "removal.conv_body_first.weight" in report.loaded and "removal.final_linear.weight" in report.loaded
    has_se = name in ("B", "D", "F")
    assert any(".se." in key for key in report.new) == has_se
    assert any("nested_nodes" in key for key in report.new) == (name != "B")
    assert any("conv_body_up" in key for key in report.unused) == (name != "B")
    # SE-SFT modulates every channel: its alpha/beta convolutions are twice as wide
    assert bool(report.mismatched) == (name == "F")
    assert not report.new or set(report.summary()["new_modules"])


def test_inspect_reports_architecture_loaded_and_new(official_file: tuple[Path, torch.nn.Module]) -> None:
    path, _ = official_file
    info = inspect_checkpoint(path)
    assert info["layout"] == "restorer" and info["source_key"] == "params_ema"
    assert info["architecture"]["channel_multiplier"] == 2 and info["architecture"]["out_size"] == 64
    assert info["new"] == 0 and info["unused"] == 0 and info["loaded"] == info["tensors"]
    assert info["target_parameters"] == sum(p.numel() for p in official_file[1].parameters())
    towards_d = inspect_checkpoint(path, target="D")
    assert towards_d["target"]["removal"] == "unetpp" and towards_d["target"]["out_size"] == 64
    assert towards_d["new"] > 0 and "removal.nested_nodes.x0_1" in towards_d["new_modules"]
    assert towards_d["unused_modules"].get("removal.conv_body_up.*", 0) > 0


@pytest.mark.parametrize("name", list(SCHEMES))
def test_shapes_tell_the_scheme_at_512px(name: str) -> None:
    with torch.device("meta"):
        model = create_restorer(name)
    assert infer_config(model.state_dict()) == SCHEMES[name]


# ------------------------------------------------------------------ original StyleGAN2 layout

BASICSR_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
STYLE_DIM, NUM_MLP, NARROW = 64, 2, 0.125


def original_layout(out_size: int, style_dim: int, num_mlp: int, narrow: float) -> dict[str, torch.Tensor]:
    """A random state dict with the names and shapes of basicsr's StyleGAN2Generator (channel multiplier 1)."""
    generator = torch.Generator().manual_seed(5)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    channels = {res: int(value * narrow) for res, value in BASICSR_CHANNELS.items()}
    state = {}
    for index in range(1, num_mlp + 1):  # EqualLinear(lr_mul=0.01): weights stored divided by lr_mul
        state[f"style_mlp.{index}.weight"] = randn(style_dim, style_dim) / 0.01
        state[f"style_mlp.{index}.bias"] = randn(style_dim)
    state["constant_input.weight"] = randn(1, channels[4], 4, 4)

    def style_conv(prefix: str, cin: int, cout: int) -> None:
        state[f"{prefix}.weight"] = randn(1) * 0.3  # noise strength
        state[f"{prefix}.modulated_conv.weight"] = randn(1, cout, cin, 3, 3)
        state[f"{prefix}.modulated_conv.modulation.weight"] = randn(cin, style_dim)
        state[f"{prefix}.modulated_conv.modulation.bias"] = 1 + 0.1 * randn(cin)
        state[f"{prefix}.activate.bias"] = 0.2 * randn(cout)

    def to_rgb(prefix: str, cin: int) -> None:
        state[f"{prefix}.bias"] = 0.1 * randn(1, 3, 1, 1)
        state[f"{prefix}.modulated_conv.weight"] = randn(1, 3, cin, 1, 1)
        state[f"{prefix}.modulated_conv.modulation.weight"] = randn(cin, style_dim)
        state[f"{prefix}.modulated_conv.modulation.bias"] = 1 + 0.1 * randn(cin)

    style_conv("style_conv1", channels[4], channels[4])
    to_rgb("to_rgb1", channels[4])
    log_size = int(math.log2(out_size))
    cin = channels[4]
    for level, log_res in enumerate(range(3, log_size + 1)):
        cout = channels[2**log_res]
        style_conv(f"style_convs.{2 * level}", cin, cout)
        style_conv(f"style_convs.{2 * level + 1}", cout, cout)
        to_rgb(f"to_rgbs.{level}", cout)
        cin = cout
    for layer in range(2 * (log_size - 2) + 1):
        res = 2 ** ((layer + 5) // 2)
        state[f"noises.noise{layer}"] = randn(1, 1, res, res)
    return state


def clean_generator(out_size: int) -> StyleGAN2Generator:
    return StyleGAN2Generator(out_size, num_style_feat=STYLE_DIM, num_mlp=NUM_MLP, narrow=NARROW).eval()


def test_original_layout_converts_names_and_equalised_lr_scales() -> None:
    original = original_layout(32, STYLE_DIM, NUM_MLP, NARROW)
    converted = convert_stylegan2_original(original)
    clean_generator(32).load_state_dict(converted, strict=True)
    root2 = math.sqrt(2)
    mlp = original["style_mlp.2.weight"]
    assert torch.allclose(converted["style_mlp.3.weight"], mlp * 0.01 / math.sqrt(STYLE_DIM) * root2)
    assert torch.allclose(converted["style_mlp.3.bias"], original["style_mlp.2.bias"] * 0.01 * root2)
    modulation = original["style_convs.1.modulated_conv.modulation.weight"]
    assert torch.allclose(
        converted["style_convs.1.modulated_conv.modulation.weight"], modulation / math.sqrt(STYLE_DIM)
    )
    weight = original["style_convs.1.modulated_conv.weight"]
    fan_in = weight.shape[2] * 9
    assert torch.allclose(converted["style_convs.1.modulated_conv.weight"], weight / math.sqrt(fan_in))
    upsampling = original["style_convs.2.modulated_conv.weight"]  # transposed conv -> flipped kernel
    expected = upsampling.flip(3, 4) / math.sqrt(upsampling.shape[2] * 9)
    assert torch.allclose(converted["style_convs.2.modulated_conv.weight"], expected)
    assert torch.allclose(converted["style_convs.2.bias"].flatten(), original["style_convs.2.activate.bias"] * root2)
    assert torch.allclose(converted["style_conv1.weight"], original["style_conv1.weight"] * root2)
    assert torch.equal(converted["noises.noise4"], original["noises.noise4"])


@pytest.fixture
def basicsr_generator(monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """basicsr's original StyleGAN2Generator, its CUDA-only fused activation replaced by plain PyTorch."""
    import basicsr.archs.stylegan2_arch as original_arch
    import basicsr.ops.fused_act.fused_act as fused_act

    def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
        return F.leaky_relu(x + bias.view(1, -1, *([1] * (x.ndim - 2))), negative_slope) * scale

    monkeypatch.setattr(fused_act, "fused_leaky_relu", fused_leaky_relu)
    monkeypatch.setattr(original_arch, "fused_leaky_relu", fused_leaky_relu)
    generator = original_arch.StyleGAN2Generator(
        32, num_style_feat=STYLE_DIM, num_mlp=NUM_MLP, channel_multiplier=1, narrow=NARROW
    )
    return generator.eval()


def test_converted_original_generator_computes_the_same_layers(basicsr_generator: torch.nn.Module) -> None:
    original = original_layout(32, STYLE_DIM, NUM_MLP, NARROW)
    reference_shapes = {key: value.shape for key, value in basicsr_generator.state_dict().items()}
    assert reference_shapes == {key: value.shape for key, value in original.items()}  # our layout is basicsr's
    basicsr_generator.load_state_dict(original, strict=True)
    ours = clean_generator(32)
    ours.load_state_dict(convert_stylegan2_original(original), strict=True)
    z = torch.randn(2, STYLE_DIM)

    def close(a: torch.Tensor, b: torch.Tensor, border: int = 0) -> bool:
        if border:
            a, b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
        return bool((a - b).abs().max() <= 1e-4 * (1 + b.abs().max()))

    with torch.no_grad():
        w = basicsr_generator.style_mlp(z)
        assert close(ours.style_mlp(z), w)  # mapping network: exact
        x = torch.randn(2, int(512 * NARROW), 4, 4)
        noise = torch.randn(2, 1, 4, 4)
        assert close(ours.style_conv1(x, w, noise), basicsr_generator.style_conv1(x, w, noise))
        assert close(ours.to_rgb1(x, w), basicsr_generator.to_rgb1(x, w))
        for index, (ref_conv, our_conv) in enumerate(zip(basicsr_generator.style_convs, ours.style_convs, strict=True)):
            upsampling = index % 2 == 0
            size = x.shape[-1] * (2 if upsampling else 1)
            noise = torch.randn(2, 1, size, size)
            expected, actual = ref_conv(x, w, noise), our_conv(x, w, noise)
            # exact away from the border (bilinear clamps the edge, upfirdn2d zero-pads it)
            assert close(actual, expected, border=2 if upsampling else 0), index
            x = expected
        skip = torch.randn(2, 3, 16, 16)
        assert close(ours.to_rgbs[-1](x, w, skip), basicsr_generator.to_rgbs[-1](x, w, skip), border=2)


def test_prior_loads_into_a_restorer_decoder(tmp_path: Path) -> None:
    path = tmp_path / "StyleGAN2_32_original.pth"
    original = original_layout(32, STYLE_DIM, NUM_MLP, NARROW)
    torch.save({"params_ema": original, "params": original}, path)
    assert read_checkpoint(path).layout == "stylegan2-original"
    model = create_restorer("D", out_size=32, narrow=NARROW, num_style_feat=STYLE_DIM, num_mlp=NUM_MLP)
    report = load_prior(model, path)
    assert len(report.loaded) == len(model.stylegan_decoder.state_dict())
    expected = convert_stylegan2_original(original)["style_convs.2.modulated_conv.weight"]
    assert torch.equal(model.stylegan_decoder.style_convs[2].modulated_conv.weight, expected)
    wrong = create_restorer("D", out_size=64, narrow=NARROW, num_style_feat=STYLE_DIM, num_mlp=NUM_MLP)
    with pytest.raises(WeightsError, match="does not match"):
        load_prior(wrong, path)


def test_gfpgan_v1_original_layout_is_named_not_misloaded(tmp_path: Path) -> None:
    path = tmp_path / "GFPGANv1.pth"
    keys = (
        "conv_body_first.0.weight",
        "stylegan_decoder.constant_input.weight",
        "stylegan_decoder.style_conv1.activate.bias",
    )
    torch.save({"params_ema": {key: torch.zeros(2) for key in keys}}, path)
    assert read_checkpoint(path).layout == "gfpgan-v1-original"
    with pytest.raises(WeightsError, match="gfpgan-v1-original") as info:
        load_restorer(path)
    assert "GFPGANv1.4.pth" in str(info.value)
