"""Face detection: YuNet on the shared examples, dark frames, large images, options, RetinaFace loading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from minerrestore.errors import UsageError, WeightsError
from minerrestore.face import Face, detect_faces, get_center_face, get_largest_face, load_detector
from minerrestore.face.detect import DETECTORS, detector_info
from minerrestore.io import read_image
from tests.conftest import SHARED

SOLVAY = SHARED / "data" / "examples" / "Solvay_conference_1927.png"
PORTRAITS = sorted((SHARED / "data" / "faces").glob("*.jpg"))[:400:80]

needs_shared = pytest.mark.skipif(not SOLVAY.is_file() or not PORTRAITS, reason="../shared data absent")


def _check_landmarks(face: Face) -> None:
    x0, y0, x1, y1 = face.box
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]  # template order, as seen
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    margin = 0.25 * (x1 - x0)
    assert np.all(face.landmarks >= [x0 - margin, y0 - margin]) and np.all(face.landmarks <= [x1 + margin, y1 + margin])


@needs_shared
def test_solvay_group_photo_finds_at_least_27_of_29_faces() -> None:
    image = read_image(SOLVAY)
    faces = detect_faces(image.rgb)
    assert 27 <= len(faces) <= 31
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for face in faces:
        _check_landmarks(face)
        assert 20 < face.width < 60  # the faces of this photo are 30-40 px
    centres = np.array([f.center for f in faces])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(faces)) * 1e9
    assert distances.min() > 15  # no face reported twice


@needs_shared
@pytest.mark.parametrize("path", PORTRAITS, ids=lambda p: p.name)
def test_portrait_has_exactly_one_face(path: Path) -> None:
    faces = detect_faces(read_image(path).rgb)
    assert len(faces) == 1
    _check_landmarks(faces[0])
    assert faces[0].to_dict()["landmarks"] == np.round(faces[0].landmarks.astype(np.float64), 2).tolist()


@needs_shared
def test_very_dark_portraits_are_found_on_a_brightened_copy() -> None:
    found = 0
    for path in PORTRAITS:
        rgb = read_image(path).rgb
        dark = np.rint(rgb * 0.04).astype(np.uint8)  # mean luminance about 4/255
        assert dark.mean() < 8
        faces = detect_faces(dark)
        found += len(faces) == 1
        if faces:
            reference = detect_faces(rgb)[0]
            assert np.abs(faces[0].landmarks - reference.landmarks).max() < 0.1 * reference.width
    assert found >= len(PORTRAITS) - 1


@needs_shared
def test_grey_input_and_large_image_detected_on_reduced_copy() -> None:
    rgb = read_image(PORTRAITS[0]).rgb
    reference = detect_faces(rgb)[0]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert len(detect_faces(grey)) == 1
    big = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    faces = detect_faces(big, max_side=400)  # detected at ~1.45x the original, mapped back to 4x
    assert len(faces) == 1
    expected = (reference.landmarks + 0.5) * 4 - 0.5
    assert np.abs(faces[0].landmarks - expected).max() < 0.06 * faces[0].width


@needs_shared
def test_threshold_min_face_and_max_faces_are_honoured() -> None:
    rgb = read_image(SOLVAY).rgb
    every = detect_faces(rgb, threshold=0.5)
    top = detect_faces(rgb, threshold=0.5, max_faces=5)
    assert [f.score for f in top] == [f.score for f in every[:5]]
    assert all(f.score >= 0.91 for f in detect_faces(rgb, threshold=0.91))
    assert detect_faces(rgb, min_face=100) == []


def test_selection_helpers() -> None:
    landmarks = np.zeros((5, 2), np.float32)
    small_centre = Face((45.0, 45.0, 55.0, 55.0), 0.9, landmarks)
    big_corner = Face((0.0, 0.0, 40.0, 40.0), 0.8, landmarks)
    assert get_largest_face([small_centre, big_corner]) is big_corner
    assert get_center_face([small_centre, big_corner], (100, 100)) is small_centre
    # clipped to the image, the corner face is smaller than the central one
    off_image = Face((-100.0, -100.0, 5.0, 5.0), 0.8, landmarks)
    assert get_largest_face([small_centre, off_image], (100, 100)) is small_centre
    with pytest.raises(ValueError):
        get_largest_face([])


def test_unknown_detector_name_suggests_close_match() -> None:
    with pytest.raises(UsageError) as caught:
        detector_info("retinaface")
    assert "retinaface_resnet50" in str(caught.value)
    assert set(DETECTORS) == {"yunet", "retinaface_resnet50"}


def test_missing_retinaface_file_says_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from minerrestore.models import files

    monkeypatch.setattr(files, "locate", lambda entry: None)
    with pytest.raises(WeightsError) as caught:
        load_detector("retinaface_resnet50", device="cpu")
    message = str(caught.value)
    assert "detection_Resnet50_Final.pth" in message and "6d1de9c2944f2ccd" in message


@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision deprecations inside facexlib
def test_retinaface_builds_from_a_local_file_without_downloading(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import minerrestore.compat  # noqa: F401

    retinaface = pytest.importorskip("facexlib.detection.retinaface")
    state = retinaface.RetinaFace(network_name="resnet50", half=False, device="cpu").state_dict()
    path = tmp_path / "detection_Resnet50_Final.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # the official file's key prefix
    detector = load_detector("retinaface_resnet50", path=str(path))
    assert detector.default_threshold == 0.97
    image = np.full((64, 80, 3), 128, np.uint8)
    faces = detect_faces(image, detector=detector, threshold=0.0, min_face=0, max_faces=3)
    assert len(faces) <= 3 and all(f.landmarks.shape == (5, 2) for f in faces)
