"""Discriminators: same computation and names as basicsr's / gfpgan's, features for the style loss, R1."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import minerrestore.compat  # noqa: F401  (before basicsr/gfpgan)
from minerrestore.archs.discriminators import (
    COMPONENTS,
    FacialComponentDiscriminator,
    StyleGAN2Discriminator,
    build_component_discriminators,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def plain_fused_act(monkeypatch: pytest.MonkeyPatch) -> None:
    """basicsr's fused leaky ReLU is CUDA-only: replace it by its plain PyTorch meaning."""
    import basicsr.archs.stylegan2_arch as original_arch
    import basicsr.ops.fused_act.fused_act as fused_act

    def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
        return F.leaky_relu(x + bias.view(1, -1, *([1] * (x.ndim - 2))), negative_slope) * scale

    monkeypatch.setattr(fused_act, "fused_leaky_relu", fused_leaky_relu)
    monkeypatch.setattr(original_arch, "fused_leaky_relu", fused_leaky_relu)


def randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)


@pytest.mark.parametrize(("size", "batch"), [(32, 4), (64, 2), (32, 3)])
@pytest.mark.usefixtures("plain_fused_act")
def test_stylegan2_discriminator_matches_basicsr(size: int, batch: int) -> None:
    from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator as Reference

    torch.manual_seed(size)
    reference = Reference(size, channel_multiplier=1, narrow=0.125).eval()
    randomise(reference)
    ours = StyleGAN2Discriminator(size, channel_multiplier=1, narrow=0.125).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    assert actual.shape == (batch, 1)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.usefixtures("plain_fused_act")
def test_component_discriminator_matches_gfpgan_and_returns_style_features() -> None:
    from gfpgan.archs.gfpganv1_arch import FacialComponentDiscriminator as Reference

    torch.manual_seed(0)
    reference = Reference().eval()
    randomise(reference)
    ours = FacialComponentDiscriminator().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        expected, expected_features = reference(x, return_feats=True)
        logits, features = ours(x)
    assert torch.allclose(logits, expected, atol=1e-5, rtol=1e-4)
    assert [f.shape for f in features] == [(2, 128, 20, 20), (2, 256, 10, 10)]
    for ours_feature, reference_feature in zip(features, expected_features, strict=True):
        assert torch.allclose(ours_feature, reference_feature, atol=1e-5, rtol=1e-4)
    assert ours(x, return_feats=False).features == []


def test_component_discriminators_for_eyes_and_mouth() -> None:
    critics = build_component_discriminators()
    assert tuple(critics) == COMPONENTS == ("left_eye", "right_eye", "mouth")
    narrow = FacialComponentDiscriminator(narrow=0.25)
    assert narrow(torch.zeros(1, 3, 24, 24)).features[1].shape[1] == 64


def test_r1_penalty_needs_second_order_gradients() -> None:
    critic = StyleGAN2Discriminator(32, narrow=0.125)
    real = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    penalty = gradient.pow(2).sum(dim=(1, 2, 3)).mean()
    penalty.backward()
    assert critic.conv_body[0][0].weight.grad is not None
