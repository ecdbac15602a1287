"""Training losses: values against closed forms and against GFP-GAN/basicsr, geometry of the component boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minerrestore.compat  # noqa: F401  (before any basicsr import)
from minerrestore import losses as L
from minerrestore.errors import WeightsError
from minerrestore.face import template_for
from tests.conftest import patch_entry


def test_gan_losses_match_basicsr_softplus_and_vanilla() -> None:
    from basicsr.losses.gan_loss import GANLoss

    torch.manual_seed(0)
    real, fake = torch.randn(6, 1), torch.randn(6, 1)
    for kind in ("wgan_softplus", "vanilla"):  # GFP-GAN: softplus for D, vanilla for the components
        reference = GANLoss(kind, loss_weight=1.0)
        assert L.generator_gan_loss(fake).item() == pytest.approx(reference(fake, True, is_disc=False).item(), rel=1e-6)
        expected = reference(real, True, is_disc=True) + reference(fake, False, is_disc=True)
        assert L.discriminator_gan_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_penalty_matches_closed_form_and_basicsr() -> None:
    from basicsr.losses.gan_loss import r1_penalty

    torch.manual_seed(1)
    weight = torch.randn(1, 3, 8, 8, requires_grad=True)  # the discriminator's parameter
    images = torch.randn(4, 3, 8, 8, requires_grad=True)
    logits = (images * weight).flatten(1).sum(1, keepdim=True)  # D(x) = <w, x>: gradient w everywhere
    penalty = L.r1_penalty(logits, images)
    assert penalty.item() == pytest.approx(weight.pow(2).sum().item(), rel=1e-5)
    assert penalty.item() == pytest.approx(r1_penalty(logits, images).item(), rel=1e-6)
    penalty.backward()  # second order: the penalty trains the discriminator
    torch.testing.assert_close(weight.grad, 2 * weight.detach())


def test_gram_matrix_and_pyramid() -> None:
    features = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    flat = features.reshape(2, 3, 20)
    expected = torch.stack([f @ f.T for f in flat]) / (3 * 4 * 5)
    torch.testing.assert_close(L.gram_matrix(features), expected)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    rgbs = [F.interpolate(target, size=s, mode="bilinear", align_corners=False) for s in (8, 16, 32)]
    assert L.pyramid_l1(rgbs, target).item() == pytest.approx(0.0, abs=1e-7)
    assert L.pyramid_l1([r + 0.5 for r in rgbs], target).item() == pytest.approx(1.5, rel=1e-5)


def test_component_boxes_on_the_ffhq_template() -> None:
    template = template_for(512)
    boxes = L.component_boxes(template, eye_enlarge=1.4)
    assert boxes.shape == (3, 4) and boxes.dtype == np.float32
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5  # back to OpenCV pixel coordinates
    np.testing.assert_allclose(centres[0], template[0], atol=1e-3)
    np.testing.assert_allclose(centres[1], template[1], atol=1e-3)
    np.testing.assert_allclose(centres[2], (template[3] + template[4]) / 2, atol=1e-3)
    sides = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(sides, boxes[:, 3] - boxes[:, 1], rtol=1e-6)  # square
    # eyes about GFP-GAN's 80 px patches at 512, the mouth box spans the mouth corners
    assert 70 < sides[0] < 100 and sides[0] == pytest.approx(sides[1])
    assert sides[2] == pytest.approx(np.linalg.norm(template[4] - template[3]), rel=1e-4)
    assert np.all(boxes[:, :2] > 0) and np.all(boxes[:, 2:] < 512)


def test_flipped_landmarks_mirror_and_swap() -> None:
    template = template_for(64)
    mirrored = L.flip_landmarks(template, 64)
    np.testing.assert_allclose(L.flip_landmarks(mirrored, 64), template, atol=1e-5)
    np.testing.assert_allclose(mirrored[0, 0], 63 - template[1, 0], atol=1e-5)  # new left eye = old right eye
    np.testing.assert_allclose(mirrored[:, 1], template[[1, 0, 2, 4, 3], 1], atol=1e-5)
    # a flipped image's patches are the mirrored patches of the original, with the eyes swapped
    image = torch.rand(1, 3, 64, 64)
    boxes = torch.from_numpy(L.component_boxes(template, 1.4))[None]
    flipped_boxes = torch.from_numpy(L.component_boxes(mirrored, 1.4))[None]
    patches = L.crop_components(image, boxes, 12, 18)
    flipped = L.crop_components(image.flip(-1), flipped_boxes, 12, 18)
    torch.testing.assert_close(flipped[0], patches[1].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(flipped[2], patches[2].flip(-1), atol=1e-5, rtol=0)


def test_crop_components_cuts_the_boxes() -> None:
    image = torch.zeros(2, 3, 64, 64)
    image[0, :, 10:20, 30:40] = 1.0  # 10x10 square, continuous coordinates x 30..40, y 10..20
    boxes = torch.tensor([[30.0, 10.0, 40.0, 20.0], [0.0, 0.0, 64.0, 64.0], [28.0, 8.0, 42.0, 22.0]])
    boxes = boxes.expand(2, 3, 4)
    eye, _, mouth = L.crop_components(image, boxes, 5, 7)
    assert eye.shape == (2, 3, 5, 5) and mouth.shape == (2, 3, 7, 7)
    torch.testing.assert_close(eye[0], torch.ones(3, 5, 5))
    assert eye[1].abs().max() == 0
    assert mouth[0, 0, 3, 3] == 1 and mouth[0, 0, 0, 0] == 0  # the square in the middle of a wider box
    assert L.component_patch_sizes(512) == (80, 120) and L.component_patch_sizes(64) == (10, 15)


def test_component_style_loss_weights_like_gfpgan() -> None:
    torch.manual_seed(2)
    fake = [torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3)]
    real = [torch.randn(2, 4, 6, 6), torch.randn(2, 8, 3, 3)]
    expected = 0.5 * F.l1_loss(L.gram_matrix(fake[0]), L.gram_matrix(real[0])) + F.l1_loss(
        L.gram_matrix(fake[1]), L.gram_matrix(real[1])
    )
    torch.testing.assert_close(L.component_style_loss(fake, real), expected)
    assert L.component_style_loss(real, real).item() == 0


def test_vgg19_layout_matches_torchvision_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    reference = make_layers(cfgs["E"])  # torchvision's VGG-19 ``features``
    ours = L.VGG19Features()
    assert list(ours.features.state_dict()) == [k for k in reference.state_dict() if int(k.split(".")[0]) <= 34]
    weights = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, weights)
    monkeypatch.setenv("MINERRESTORE_WEIGHTS", str(tmp_path))
    patch_entry(monkeypatch, "vgg19", sha256=None)  # random weights under the official name: not the published file
    loaded = L.load_vgg19_features()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    normalised = ((x + 1) / 2 - torch.tensor(L._IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        L._IMAGENET_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(loaded(x)[-1], reference[:35](normalised))  # conv5_4, before its ReLU
    assert [f.shape[1] for f in loaded(x)] == [64, 128, 256, 512, 512]
    assert L.create_perceptual_loss("auto").name == "vgg19"  # auto prefers VGG-19 when the file is there
    torch.save({"classifier.0.weight": torch.zeros(1)}, weights)
    with pytest.raises(WeightsError, match="not a torchvision VGG-19"):
        L.load_vgg19_features()


def test_perceptual_loss_is_zero_on_equal_images_and_grads_only_the_output() -> None:
    torch.manual_seed(4)
    layers = {"conv1_2": 0.1, "conv2_2": 1.0}  # a short network keeps the test fast
    loss = L.PerceptualLoss(L.VGG19Features(tuple(layers)).eval().requires_grad_(False), layers, "vgg19")
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    perceptual, style = loss(target, target)
    assert perceptual.item() == 0 and style.item() == 0
    output = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    target.requires_grad_(True)
    perceptual, style = loss(output, target)
    (perceptual + style).backward()
    assert perceptual.item() > 0 and style.item() > 0
    assert output.grad is not None and output.grad.abs().sum() > 0 and target.grad is None
    assert loss(output, target, with_style=False)[1].item() == 0


def test_perceptual_loss_at_a_reduced_size_sees_reduced_faces() -> None:
    seen: list[tuple[int, ...]] = []

    class Recorder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            seen.append(tuple(x.shape))
            return [x]

    loss = L.PerceptualLoss(Recorder(), {"image": 1.0}, "recorder", size=32)
    output = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    perceptual, _ = loss(output, output.detach().flip(-1), with_style=False)
    perceptual.backward()
    assert seen == [(2, 3, 32, 32)] * 2 and output.grad is not None and output.grad.abs().sum() > 0
    small = torch.rand(2, 3, 16, 16)
    loss(small, small, with_style=False)
    assert seen[-1] == (2, 3, 16, 16)  # never enlarged


def test_offline_losses_are_available() -> None:
    perceptual = L.create_perceptual_loss("vgg16_lpips")
    assert perceptual.name == "vgg16_lpips" and len(perceptual.layer_weights) == 5
    identity = L.create_identity_loss("mobilefacenet", 64)
    assert identity.name == "mobilefacenet"
    faces = torch.rand(2, 3, 64, 64) * 2 - 1
    assert identity(faces, faces).item() == 0
    assert identity(faces, faces.flip(0)).item() > 0
    metric, name = L.create_lpips_metric()
    assert name == "vgg" and metric is not None
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert metric(images, images).abs().max() < 1e-6


@pytest.mark.parametrize("size", [64, 512])
def test_arcface_crop_equals_the_identity_metric_crop(size: int) -> None:
    from minerrestore.archs.identity import ARCFACE_TEMPLATE_112
    from minerrestore.metrics.identity import face_crops, ffhq_to_arcface

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (128 / size)
    image = np.stack([np.sin(xx / 9), np.cos(yy / 7), np.sin((xx + yy) / 11)], axis=2) * 127.5 + 127.5
    expected = face_crops(image.round().astype(np.uint8)[None])[0].astype(np.float32) / 127.5 - 1
    faces = torch.from_numpy(image.round() / 127.5 - 1).permute(2, 0, 1)[None].float()
    ours = L.ArcFaceCrop(size)(faces)[0].permute(1, 2, 0).numpy()
    assert ours.shape == (112, 112, 3)
    np.testing.assert_allclose(ours[4:-4, 4:-4], expected[4:-4, 4:-4], atol=0.03)  # uint8 and resampling
    affine = ffhq_to_arcface(size, size)  # the FFHQ eyes land on the ArcFace template's eyes
    eyes = template_for(size)[:2] @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(eyes, ARCFACE_TEMPLATE_112[:2], atol=1.5)


def test_cosine_identity_loss_is_one_minus_the_embedding_cosine() -> None:
    identity = L.create_identity_loss("mobilefacenet", 64, distance="cosine")
    assert identity.distance == "cosine" and "cosine" in repr(identity)
    faces = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    other = faces.flip(0)
    assert abs(identity(faces, faces).item()) < 1e-5
    with torch.no_grad():
        first, second = (identity.network(identity.preprocess(x)) for x in (faces, other))
    expected = 1 - torch.nn.functional.cosine_similarity(first, second, dim=1).mean()
    assert identity(faces, other).item() == pytest.approx(expected.item(), abs=1e-5)
    with pytest.raises(ValueError, match="l1 or cosine"):
        L.IdentityLoss(identity.network, identity.preprocess, "x", distance="l2")
