"""minerrestore.data.augment: each operation checked numerically, the folder command, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minerrestore.cli import main
from minerrestore.data.augment import (
    AUGMENT_MANIFEST,
    OPS,
    AugmentSettings,
    adjust_brightness,
    adjust_contrast,
    apply_op,
    augment_folder,
    hflip,
    rotate,
    translate,
)
from minerrestore.data.folders import image_seed, read_manifest
from minerrestore.errors import UsageError
from minerrestore.io import write_image
from minerrestore.preview import contact_sheet


def _textured(rng: np.random.Generator, height: int = 48, width: int = 40, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels else (height, width)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _blob_image(centre: tuple[float, float], size: int = 101) -> np.ndarray:
    """A dark image with one bright Gaussian blob at (x, y)."""
    yy, xx = np.mgrid[0:size, 0:size]
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 2.5**2))
    return np.rint(blob * 250).astype(np.uint8)


def _centroid(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return float((xx * weights).sum() / weights.sum()), float((yy * weights).sum() / weights.sum())


def _write_faces(folder: Path, count: int, rng: np.random.Generator, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"face{index:02d}{suffix}"
        Image.fromarray(_textured(rng, 36, 30)).save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- operations


@pytest.mark.parametrize("channels", [0, 3, 4])
def test_flip_equals_mirrored_array(rng: np.random.Generator, channels: int) -> None:
    image = _textured(rng, channels=channels)
    flipped = hflip(image)
    assert flipped.shape == image.shape
    assert np.array_equal(flipped, image[:, ::-1])
    assert np.array_equal(hflip(flipped), image)


@pytest.mark.parametrize("angle", [10.0, -10.0, 25.0])
def test_rotation_angle_is_recovered(angle: float) -> None:
    size = 101
    centre = (size - 1) / 2
    start = (centre + 30.0, centre)  # 30 px right of the centre
    rotated = rotate(_blob_image(start, size), angle, border="constant")
    assert rotated.shape == (size, size)
    x, y = _centroid(rotated)
    # angle as displayed: counter-clockwise positive, image y axis pointing down
    measured = math.degrees(math.atan2(-(y - centre), x - centre))
    assert measured == pytest.approx(angle, abs=0.2)
    assert math.hypot(x - centre, y - centre) == pytest.approx(30.0, abs=0.2)


@pytest.mark.parametrize(("dx", "dy"), [(20, 20), (-20, 20), (20, -20), (-7, -3)])
def test_translation_is_recovered_exactly(rng: np.random.Generator, dx: int, dy: int) -> None:
    image = _textured(rng, 64, 72)
    shifted = translate(image, dx, dy)
    assert shifted.shape == image.shape
    height, width = image.shape[:2]
    source = image[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    target = shifted[max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)]
    assert np.array_equal(source, target)


def test_reflect_border_fills_from_the_image_not_black(rng: np.random.Generator) -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    assert translate(image, 20, 20).min() == 200  # reflection: no black band
    assert rotate(image, 10).min() == 200
    assert translate(image, 20, 20, border="constant")[:20].max() == 0
    with pytest.raises(UsageError):
        rotate(image, 10, border="wrap")


@pytest.mark.parametrize("factor", [1.2, 0.8])
def test_contrast_factor_holds(rng: np.random.Generator, factor: float) -> None:
    image = rng.integers(80, 176, size=(30, 30, 3), dtype=np.uint8)  # mid-range: nothing clips
    out = adjust_contrast(image, factor)
    mean = float((image.reshape(-1, 3).astype(np.float64) @ [0.299, 0.587, 0.114]).mean())
    expected = mean + factor * (image.astype(np.float64) - mean)
    assert np.abs(out - expected).max() <= 0.5 + 1e-6
    assert out.std() / image.std() == pytest.approx(factor, rel=0.01)


@pytest.mark.parametrize("factor", [1.2, 0.8])
def test_brightness_factor_holds(rng: np.random.Generator, factor: float) -> None:
    image = rng.integers(0, 200, size=(30, 30), dtype=np.uint8)
    out = adjust_brightness(image, factor)
    assert np.abs(out - image.astype(np.float64) * factor).max() <= 0.5 + 1e-6
    assert out.mean() / image.mean() == pytest.approx(factor, rel=0.01)


def test_brightness_and_contrast_clip_to_uint8() -> None:
    image = np.array([[0, 128, 250]], np.uint8)
    assert adjust_brightness(image, 1.2).tolist() == [[0, 154, 255]]
    assert adjust_contrast(image, 1.2).dtype == np.uint8


def test_draw_signs_follow_seed_and_option() -> None:
    settings = AugmentSettings()
    first = settings.draw(np.random.default_rng(5))
    assert [op for op, _ in first] == list(OPS)
    assert first == settings.draw(np.random.default_rng(5))
    params = dict(first)
    assert abs(params["rotate"]["angle"]) == 10.0
    assert abs(params["translate"]["dx"]) == abs(params["translate"]["dy"]) == 20
    assert params["contrast"]["factor"] in (0.8, 1.2) and params["brightness"]["factor"] in (0.8, 1.2)
    seen = {dict(settings.draw(np.random.default_rng(seed)))["brightness"]["factor"] for seed in range(40)}
    assert seen == {0.8, 1.2}  # both directions occur
    plus = dict(AugmentSettings(sign="plus").draw(np.random.default_rng(5)))
    assert plus["rotate"]["angle"] == 10.0 and plus["brightness"]["factor"] == 1.2
    minus = dict(AugmentSettings(sign="minus", brightness=0.3).draw(np.random.default_rng(5)))
    assert minus["translate"] == {"dx": -20, "dy": -20, "border": "reflect"} and minus["brightness"]["factor"] == 0.7
    subset = dict(AugmentSettings(ops=("brightness",)).draw(np.random.default_rng(5)))
    assert subset == {"brightness": params["brightness"]}  # choosing ops keeps the others' directions


@pytest.mark.parametrize(
    "kwargs", [{"ops": ("orig", "zoom")}, {"ops": ()}, {"sign": "up"}, {"border": "wrap"}, {"contrast": 1.5}]
)
def test_bad_settings_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        AugmentSettings(**kwargs)


def test_image_seed_is_stable_and_name_dependent() -> None:
    assert image_seed(0, "a.png") == image_seed(0, "a.png")
    assert len({image_seed(0, "a.png"), image_seed(1, "a.png"), image_seed(0, "b.png"), image_seed(0, "a.png", 1)}) == 4
    assert image_seed(0, "a.png") < 2**53  # exact in any JSON reader


# --------------------------------------------------------------------------- folders


def _all_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ten_faces_give_sixty_images(shared_dir: Path, tmp_path: Path) -> None:
    faces = sorted((shared_dir / "data" / "faces").glob("*.jpg"))[:10]
    if len(faces) < 10:
        pytest.skip("fewer than 10 shared faces")
    source = tmp_path / "in"
    source.mkdir()
    for face in faces:
        (source / face.name).write_bytes(face.read_bytes())
    report = augment_folder(source, tmp_path / "out", seed=3, quiet=True)
    assert len(report.done) == 10 and not report.failed
    outputs = sorted(p.name for p in (tmp_path / "out").glob("*.jpg"))
    assert len(outputs) == 60
    assert outputs[:6] == [f"{faces[0].stem}_{op}.jpg" for op in sorted(OPS)]
    rows = [json.loads(line) for line in (tmp_path / "out" / AUGMENT_MANIFEST).read_text().splitlines()]
    assert len(rows) == 60 and {row["op"] for row in rows} == set(OPS)
    assert all({"source", "output", "op", "params", "seed"} <= set(row) for row in rows)
    assert (tmp_path / "out" / f"{faces[0].stem}_orig.jpg").read_bytes() == faces[0].read_bytes()
    with Image.open(tmp_path / "out" / f"{faces[0].stem}_rotate.jpg") as rotated, Image.open(faces[0]) as original:
        assert rotated.size == original.size


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", 3, rng)
    augment_folder(tmp_path / "in", tmp_path / "a", seed=7, quiet=True)
    augment_folder(tmp_path / "in", tmp_path / "b", seed=7, quiet=True, workers=2)
    augment_folder(tmp_path / "in", tmp_path / "c", seed=8, quiet=True)
    first = _all_bytes(tmp_path / "a")
    assert len(first) == 3 * 6 + 1
    assert first == _all_bytes(tmp_path / "b")
    assert first != _all_bytes(tmp_path / "c")


def test_outputs_match_the_pure_operations(tmp_path: Path, rng: np.random.Generator) -> None:
    (path,) = _write_faces(tmp_path / "in", 1, rng)
    augment_folder(tmp_path / "in", tmp_path / "out", seed=1, quiet=True)
    image = np.asarray(Image.open(path))
    for line in (tmp_path / "out" / AUGMENT_MANIFEST).read_text().splitlines():
        row = json.loads(line)
        written = np.asarray(Image.open(tmp_path / "out" / row["output"]))
        assert np.array_equal(written, apply_op(image, row["op"], row["params"])), row["op"]


def test_grey_and_rgba_inputs(tmp_path: Path, rng: np.random.Generator) -> None:
    source = tmp_path / "in"
    source.mkdir()
    grey = _textured(rng, 30, 20, channels=0)
    rgba = _textured(rng, 30, 20, channels=4)
    Image.fromarray(grey, "L").save(source / "grey.png")
    Image.fromarray(rgba, "RGBA").save(source / "rgba.png")
    report = augment_folder(source, tmp_path / "out", settings=AugmentSettings(sign="plus"), quiet=True)
    assert not report.failed
    with Image.open(tmp_path / "out" / "grey_flip.png") as flipped:
        assert flipped.mode == "L"
        assert np.array_equal(np.asarray(flipped), grey[:, ::-1])
    with Image.open(tmp_path / "out" / "rgba_flip.png") as flipped:
        assert flipped.mode == "RGBA"
        assert np.array_equal(np.asarray(flipped), rgba[:, ::-1])
    with Image.open(tmp_path / "out" / "rgba_brightness.png") as brighter:
        assert np.array_equal(np.asarray(brighter)[..., 3], rgba[..., 3])  # alpha untouched by photometric ops


def test_skip_existing_keeps_the_manifest_whole(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", 2, rng)
    augment_folder(tmp_path / "in", tmp_path / "out", quiet=True)
    manifest = (tmp_path / "out" / AUGMENT_MANIFEST).read_text()
    report = augment_folder(tmp_path / "in", tmp_path / "out", quiet=True, skip_existing=True)
    assert len(report.skipped) == 2 and not report.done
    assert (tmp_path / "out" / AUGMENT_MANIFEST).read_text() == manifest


def test_refuses_unsafe_outputs(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", 1, rng)
    with pytest.raises(UsageError, match="input folder"):
        augment_folder(tmp_path / "in", tmp_path / "in", quiet=True)
    Image.fromarray(_textured(rng)).save(tmp_path / "in" / "face00.jpg")  # face00.png and face00.jpg
    with pytest.raises(UsageError, match="both write"):
        augment_folder(tmp_path / "in", tmp_path / "out", ext="png", quiet=True)


def test_cli_augment_preview_and_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    _write_faces(tmp_path / "in", 2, rng)
    code = main(["augment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1", "-q"])
    assert code == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 12
    code = main(["augment", str(tmp_path / "in"), "--preview", str(tmp_path / "sheet.png"), "--ops", "orig,flip"])
    assert code == 0
    two_by_two = contact_sheet([[("", np.zeros((4, 4), np.uint8))] * 2] * 2)
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.size == (two_by_two.shape[1], two_by_two.shape[0])  # two inputs x (orig, flip)
    assert not (tmp_path / "sheet").exists()
    assert main(["augment", str(tmp_path / "in")]) == 2  # no --out
    assert main(["augment", str(tmp_path / "in"), "--out", str(tmp_path / "x"), "--ops", "zoom"]) == 2


def test_ctrl_c_stops_with_exit_130_keeps_finished_outputs_and_resumes(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import minerrestore.data.augment as augment

    _write_faces(tmp_path / "in", 3, rng)
    real_one = augment._augment_one
    calls = []

    def interrupted_on_the_second(job, workers: int = 1):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_one(job, workers=workers)

    monkeypatch.setattr(augment, "_augment_one", interrupted_on_the_second)
    args = ["augment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1", "-q"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted by Ctrl-C after 1 of 3" in err and "--skip-existing" in err and "Traceback" not in err
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".jsonl"] + [".png"] * 6  # one face, no temp
    assert len(read_manifest(tmp_path / "out" / AUGMENT_MANIFEST)) == 6  # the finished face is recorded
    monkeypatch.setattr(augment, "_augment_one", real_one)
    assert main([*args, "--skip-existing"]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 18


def test_augment_folder_refuses_other_settings(tmp_path: Path, rng: np.random.Generator) -> None:
    """Issue 20: the augment manifest owns its folder; overwrite removes the old outputs first."""
    _write_faces(tmp_path / "in", 2, rng)
    augment_folder(tmp_path / "in", tmp_path / "out", AugmentSettings(ops=("orig", "rotate")), quiet=True)
    with pytest.raises(UsageError, match=r"holds a run with other settings .*params differ"):
        augment_folder(
            tmp_path / "in",
            tmp_path / "out",
            AugmentSettings(ops=("orig", "rotate"), angle=9.0),
            skip_existing=True,
            quiet=True,
        )
    augment_folder(tmp_path / "in", tmp_path / "out", AugmentSettings(ops=("orig", "flip")), overwrite=True, quiet=True)
    ops = sorted(p.stem.rsplit("_", 1)[1] for p in (tmp_path / "out").glob("*.png"))
    assert ops == ["flip", "flip", "orig", "orig"]
    assert {row["op"] for row in read_manifest(tmp_path / "out" / AUGMENT_MANIFEST)} == {"orig", "flip"}


@pytest.mark.parametrize(
    ("option", "value"), [("--angle", "-5"), ("--angle", "200"), ("--angle", "nan"), ("--shift", "-3")]
)
def test_angle_and_shift_out_of_range_are_usage_errors(
    tmp_path: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    write_image(source / "a.png", np.full((32, 32, 3), 128, np.uint8))
    code = main(["augment", str(source), "-o", str(tmp_path / "out"), option, value, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") <= 2 and option in err
    assert not (tmp_path / "out").exists()
