"""Identity networks (MobileFaceNet, ArcFace ResNet-18) and the identity-similarity metric."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from minerrestore.archs.identity import (
    MobileFaceNet,
    ResNetArcFace,
    arcface_input,
    load_arcface_resnet18,
    load_mobilefacenet,
)
from minerrestore.errors import WeightsError
from minerrestore.face.align import FFHQ_TEMPLATE_512
from minerrestore.metrics.identity import face_crops, ffhq_to_arcface, identity_similarity, similarity_transform


@pytest.fixture(scope="module")
def mobilefacenet() -> MobileFaceNet:
    return load_mobilefacenet()


def test_mobilefacenet_matches_onnx_release(shared_dir: Path, mobilefacenet: MobileFaceNet) -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(
        str(shared_dir / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"), providers=["CPUExecutionProvider"]
    )
    batch = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = np.concatenate([session.run(None, {"input0": image[None].numpy()})[0] for image in batch])
    with torch.no_grad():
        ours = mobilefacenet(batch).numpy()
    assert ours.shape == (2, 128)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert np.abs(reference).max() > 0.5  # a real embedding, not zeros


def _official_arcface_file(path: Path) -> dict[str, torch.Tensor]:
    """A random ArcFace ResNet-18 in the official layout: DataParallel ``module.`` keys, a .pth."""
    torch.manual_seed(0)
    network = ResNetArcFace().eval()
    for module in network.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    torch.save(state, path)
    return network.state_dict()


def test_arcface_loads_official_layout(tmp_path: Path) -> None:
    expected = _official_arcface_file(tmp_path / "arcface_resnet18.pth")
    assert "module.layer2.0.downsample.0.weight" in torch.load(tmp_path / "arcface_resnet18.pth", weights_only=True)
    assert not any(".se." in key for key in expected)  # use_se=False, as GFP-GAN
    network = load_arcface_resnet18(tmp_path / "arcface_resnet18.pth")
    assert all(torch.equal(network.state_dict()[k], v) for k, v in expected.items())
    faces = torch.rand(2, 3, 512, 512) * 2 - 1
    grey = arcface_input(faces)
    assert grey.shape == (2, 1, 128, 128)
    with torch.no_grad():
        embedding = network(grey)
    assert embedding.shape == (2, 512) and torch.isfinite(embedding).all()
    assert not any(p.requires_grad for p in network.parameters())


def test_arcface_missing_or_wrong_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from minerrestore.models import files

    for attribute in ("REPO_WEIGHTS_DIR", "INSTALLED_WEIGHTS_DIR", "USER_WEIGHTS_DIR"):
        monkeypatch.setattr(files, attribute, tmp_path / "none")
    monkeypatch.delenv(files.WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError, match=r"arcface_resnet18\.pth.*github\.com/TencentARC"):
        load_arcface_resnet18()
    torch.save({"conv1.weight": torch.zeros(64, 1, 3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightsError, match="does not match ResNetArcFace"):
        load_arcface_resnet18(tmp_path / "wrong.pth")


def test_fixed_alignment_maps_ffhq_onto_arcface_template() -> None:
    matrix = ffhq_to_arcface(256, 256)
    points = FFHQ_TEMPLATE_512.astype(np.float64) / 2
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    from minerrestore.archs.identity import ARCFACE_TEMPLATE_112

    assert np.abs(mapped - ARCFACE_TEMPLATE_112).max() < 3  # the two templates are not exactly similar
    exact = similarity_transform(points, points * 0.5 + 7)
    np.testing.assert_allclose(exact, [[0.5, 0, 7], [0, 0.5, 7]], atol=1e-9)


def _aligned_faces(shared_dir: Path, count: int, size: int = 128) -> np.ndarray:
    """FFHQ-aligned crops of the first portraits of ../shared/data/faces (YuNet landmarks)."""
    files = sorted((shared_dir / "data" / "faces").glob("*.jpg"))[:count]
    detector = cv2.FaceDetectorYN.create(
        str(shared_dir / "weights" / "yunet" / "face_detection_yunet.onnx"), "", (0, 0)
    )
    crops = []
    for path in files:
        bgr = cv2.imread(str(path))
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = detector.detect(bgr)
        landmarks = found[0][4:14].reshape(5, 2).astype(np.float64)
        if landmarks[0, 0] > landmarks[1, 0]:  # order as the template: image-left eye first
            landmarks = landmarks[[1, 0, 2, 4, 3]]
        template = FFHQ_TEMPLATE_512.astype(np.float64) * size / 512
        crop = cv2.warpAffine(bgr, similarity_transform(landmarks, template), (size, size))
        crops.append(crop[..., ::-1])
    return np.stack(crops)


def test_identity_similarity_same_vs_different_people(shared_dir: Path, mobilefacenet: MobileFaceNet) -> None:
    faces = _aligned_faces(shared_dir, 4)
    cosine, degrees = identity_similarity(faces, faces, mobilefacenet)
    np.testing.assert_allclose(cosine, 1.0, atol=1e-5)
    assert np.all(degrees < 0.3)
    blurred = np.stack([cv2.GaussianBlur(face, (0, 0), 1.0) for face in faces])
    same_person, _ = identity_similarity(blurred, faces, mobilefacenet)
    other_person, other_degrees = identity_similarity(faces, np.roll(faces, 1, axis=0), mobilefacenet)
    assert same_person.min() > 0.8
    assert other_person.max() < 0.5 and other_degrees.min() > 60
    assert face_crops(faces).shape == (4, 112, 112, 3)
    assert face_crops(faces, aligned=False).shape == (4, 112, 112, 3)


def test_dlib_identity_same_vs_different_people(shared_dir: Path) -> None:
    """dlib's descriptor distance (optional packages): 0 for the same image, small for a blurred copy."""
    pytest.importorskip("dlib")
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed")
    from minerrestore.metrics.identity import DlibIdentity

    dlib = DlibIdentity()
    faces = _aligned_faces(shared_dir, 3)
    np.testing.assert_allclose(dlib.distances(faces, faces), 0, atol=1e-6)
    blurred = np.stack([cv2.GaussianBlur(face, (0, 0), 1.0) for face in faces])
    same_person = dlib.distances(blurred, faces)
    other_person = dlib.distances(faces, np.roll(faces, 1, axis=0))
    assert same_person.max() < other_person.min()
    assert dlib.distances(faces[0], faces[0]).shape == (1,)
