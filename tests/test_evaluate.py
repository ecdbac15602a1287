"""``minerrestore evaluate``: pairing, errors, per-image values, compare table, outputs, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minerrestore.cli import main
from minerrestore.errors import UsageError
from minerrestore.evaluate import choose_metrics, evaluate, pair_images
from minerrestore.metrics import niqe_score, psnr, ssim


def _smooth(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    coarse = torch.from_numpy(rng.integers(0, 256, (count, 3, size // 8, size // 8)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _write(folder: Path, images: np.ndarray, names: list[str], suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in zip(names, images, strict=True):
        paths.append(folder / f"{name}{suffix}")
        Image.fromarray(image).save(paths[-1])
    return paths


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> dict[str, Path]:
    """gt/ (PNG), a/ (noisy PNG), b/ (blurred, saved as lossless WebP) with three 200x200 images."""
    names = ["x1", "x2", "x3"]
    truth = _smooth(rng, 3, 200)
    noisy = np.clip(truth + rng.normal(0, 8, truth.shape), 0, 255).astype(np.uint8)
    blurred = torch.nn.functional.avg_pool2d(
        torch.from_numpy(truth).permute(0, 3, 1, 2).float(), 5, stride=1, padding=2, count_include_pad=False
    )
    blurred = blurred.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    _write(tmp_path / "gt", truth, names)
    _write(tmp_path / "a", noisy, names)
    for name, image in zip(names, blurred, strict=True):
        (tmp_path / "b").mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / "b" / f"{name}.webp", lossless=True)
    return {"gt": tmp_path / "gt", "a": tmp_path / "a", "b": tmp_path / "b", "root": tmp_path}


def test_pairing_by_stem_and_clear_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    images = _smooth(rng, 3, 16)
    _write(tmp_path / "gt", images, ["a", "b", "c"], ".png")
    _write(tmp_path / "out", images, ["a", "b", "c"], ".jpg")
    pairs = pair_images(tmp_path / "out", tmp_path / "gt")
    assert [(p.name, p.restored.suffix, p.gt.suffix) for p in pairs] == [(n, ".jpg", ".png") for n in "abc"]

    _write(tmp_path / "more", images, ["a", "b", "z"])
    with pytest.raises(UsageError, match=r"1 image\(s\) in .*more have no ground truth.*: z"):
        pair_images(tmp_path / "more", tmp_path / "gt")
    _write(tmp_path / "fewer", images[:2], ["a", "b"])
    with pytest.raises(UsageError, match=r"ground-truth image\(s\) .* have no restored image .*: c"):
        pair_images(tmp_path / "fewer", tmp_path / "gt")
    _write(tmp_path / "twice", images[:2], ["a", "a2"])
    (tmp_path / "twice" / "a2.png").rename(tmp_path / "twice" / "a.jpg")
    with pytest.raises(UsageError, match="share the name 'a'"):
        pair_images(tmp_path / "twice", tmp_path / "gt")
    _write(tmp_path / "big", _smooth(rng, 3, 24), ["a", "b", "c"])
    with pytest.raises(UsageError, match=r"a\.png is 24x24 but its ground truth .*a\.png is 16x16"):
        pair_images(tmp_path / "big", tmp_path / "gt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        pair_images(tmp_path / "empty", None)


def test_metric_selection() -> None:
    assert choose_metrics(None, has_gt=True, has_reference=True) == ("psnr", "ssim", "lpips", "fid", "niqe", "identity")
    assert choose_metrics(None, has_gt=False, has_reference=False) == ("niqe",)
    assert choose_metrics(["NIQE", " fid"], has_gt=False, has_reference=True) == ("niqe", "fid")
    with pytest.raises(UsageError, match="unknown metric"):
        choose_metrics(["psnr", "brisque"], True, True)
    with pytest.raises(UsageError, match="add gt GT_DIR"):
        choose_metrics(["ssim"], False, True)
    with pytest.raises(UsageError, match="reference set"):
        choose_metrics(["fid"], True, False)


def test_evaluate_compare_all_metrics_and_outputs(dataset: dict[str, Path]) -> None:
    stats = dataset["root"] / "ref.npz"
    report = evaluate(
        dataset["a"], dataset["gt"], compare=[dataset["b"]], save_ref_stats=stats, crop_border=2, quiet=True
    )
    assert [m.name for m in report.methods] == ["a", "b"]
    assert report.metrics == ("psnr", "ssim", "lpips", "fid", "niqe", "identity")
    # per-image values are the metric functions' values on the same files
    truth = np.stack([np.asarray(Image.open(dataset["gt"] / f"x{i}.png")) for i in (1, 2, 3)])
    noisy = np.stack([np.asarray(Image.open(dataset["a"] / f"x{i}.png")) for i in (1, 2, 3)])
    first = report.methods[0]
    np.testing.assert_allclose([r["psnr"] for r in first.rows], psnr(noisy, truth, 2).numpy())
    np.testing.assert_allclose([r["ssim"] for r in first.rows], ssim(noisy, truth, 2).numpy())
    np.testing.assert_allclose([r["niqe"] for r in first.rows], niqe_score(noisy, 2))
    assert first.summary["psnr"].mean == pytest.approx(np.mean(psnr(noisy, truth, 2).numpy()))
    assert first.summary["psnr"].std == pytest.approx(np.std(psnr(noisy, truth, 2).numpy(), ddof=1))
    for method in report.methods:
        assert method.fid is not None and method.fid > 0 and method.fid_count == 3
        assert {"lpips", "identity_cos", "identity_deg"} <= set(method.summary)
    # the variant of every metric is stated
    assert "RGB" in report.variants["psnr"] and "crop 2 px" in report.variants["ssim"]
    assert "AlexNet" in report.variants["lpips"] and "Inception-V3" in report.variants["fid"]
    assert "Y channel" in report.variants["niqe"] and "MobileFaceNet" in report.variants["identity"]
    assert any("FID on 3" in note and "biased" in note for note in report.notes)

    report.write_csv(dataset["root"] / "values.csv")
    rows = list(csv.DictReader((dataset["root"] / "values.csv").open()))
    assert len(rows) == 6 and rows[0]["method"] == "a" and float(rows[0]["psnr"]) == first.rows[0]["psnr"]
    document = json.loads(json.dumps(report.to_dict()))
    assert document["methods"][1]["fid"]["images"] == 3 and document["variants"]["lpips"]
    chart = report.write_chart(dataset["root"] / "chart.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(dataset["root"].glob(".minerrestore-tmp-*"))

    # cached reference statistics give the same FID
    again = evaluate(dataset["b"], metrics=["fid"], ref_stats=stats, quiet=True)
    assert again.methods[0].fid == pytest.approx(report.methods[1].fid, rel=1e-6)


def test_niqe_undefined_on_small_images_is_reported(tmp_path: Path, rng: np.random.Generator) -> None:
    _write(tmp_path / "small", _smooth(rng, 2, 96), ["p", "q"])
    report = evaluate(tmp_path / "small", metrics=["niqe"], quiet=True)
    summary = report.methods[0].summary["niqe"]
    assert summary.count == 0 and summary.excluded == 2
    assert any("NIQE undefined" in note for note in report.notes)
    assert report.to_dict()["methods"][0]["per_image"][0]["niqe"] is None


def test_cli_table_json_and_errors(dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", str(dataset["a"]), "--gt", str(dataset["gt"]), "--metrics", "psnr,ssim", "--y-channel"]
    assert main([*args, "--compare", str(dataset["b"]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "PSNR ↑" in out and "SSIM ↑" in out and "Y (MATLAB BT.601)" in out
    assert main([*args, "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["methods"][0]["summary"]["psnr"]["count"] == 3
    (dataset["gt"] / "x3.png").rename(dataset["gt"] / "other.png")
    assert main(args) == 2
    assert "no ground truth" in capsys.readouterr().err


def test_compare_several_pairs_only_no_size_check_for_niqe_and_recursive(
    dataset: dict[str, Path], rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: ``--compare A B`` as the README writes it, ``--pairs-only``, NIQE alone, ``--recursive``."""
    from minerrestore.cli.evaluate import spread_compare

    assert spread_compare(["evaluate", "r", "--compare", "a", "b", "--gt", "g", "--compare", "c"]) == [
        *("evaluate", "r", "--compare", "a", "--compare", "b", "--gt", "g", "--compare", "c")
    ]
    gt, a, b = dataset["gt"], dataset["a"], dataset["b"]
    args = ["evaluate", str(a), "--gt", str(gt), "--metrics", "psnr", "--device", "cpu", "--json", "-"]
    assert main([*args, "--compare", str(b), str(gt)]) == 0
    assert [m["method"] for m in json.loads(capsys.readouterr().out)["methods"]] == ["a", "b", "gt"]
    _write(gt, _smooth(rng, 1, 200), ["extra"])  # ground truth with one more file
    assert main(args) == 2
    assert main([*args, "--pairs-only"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["methods"][0]["summary"]["psnr"]["count"] == 3
    assert any("extra (not restored)" in note for note in document["notes"])
    _write(gt, _smooth(rng, 1, 64), ["x1"])  # a ground truth of another size: NIQE does not care
    niqe = ["evaluate", str(a), "--gt", str(gt), "--metrics", "niqe", "--device", "cpu", "--json", "-"]
    assert main(niqe) == 0
    capsys.readouterr()
    nested = dataset["root"] / "nested"
    (nested / "sub").mkdir(parents=True)
    for path in a.iterdir():
        (nested / "sub" / path.name).write_bytes(path.read_bytes())
    plain = ["evaluate", str(nested), "--metrics", "niqe", "--device", "cpu", "--json", "-"]
    assert main(plain) == 2
    assert "--recursive" in capsys.readouterr().err
    assert main([*plain, "--recursive"]) == 0
    assert json.loads(capsys.readouterr().out)["methods"][0]["summary"]["niqe"]["count"] == 3


@pytest.fixture
def no_user_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Weight lookup limited to the repository's weights/ (no arcface_resnet18.pth); returns a folder for
    ``MINERRESTORE_WEIGHTS``."""
    from minerrestore.models import files

    for attribute in ("INSTALLED_WEIGHTS_DIR", "USER_WEIGHTS_DIR"):
        monkeypatch.setattr(files, attribute, tmp_path / "none")
    monkeypatch.delenv(files.WEIGHTS_ENV, raising=False)
    assert not (files.REPO_WEIGHTS_DIR / "arcface_resnet18.pth").exists()
    return tmp_path / "user_weights"


def _random_arcface_file(folder: Path) -> Path:
    from minerrestore.archs.identity import ResNetArcFace

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in ResNetArcFace().state_dict().items()}  # the official layout
    torch.save(state, folder / "arcface_resnet18.pth")
    return folder / "arcface_resnet18.pth"


def test_identity_network_auto_arcface_mobilefacenet(
    dataset: dict[str, Path],
    no_user_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16: ``auto`` is ArcFace (the papers' view) when its file is present, else MobileFaceNet with a note."""
    import cv2

    from minerrestore.archs.identity import load_arcface_resnet18
    from minerrestore.errors import WeightsError
    from minerrestore.models import files

    a, gt = dataset["a"], dataset["gt"]
    fallback = evaluate(a, gt, metrics=["identity"], quiet=True)
    assert fallback.identity_network == "mobilefacenet"
    assert "MobileFaceNet" in fallback.variants["identity"] and "not comparable" in fallback.variants["identity"]
    assert any("arcface_resnet18.pth not found" in note for note in fallback.notes)
    assert {"identity_cos", "identity_deg"} <= set(fallback.methods[0].summary)
    with pytest.raises(WeightsError, match=r"arcface_resnet18\.pth.*not found") as missing:
        evaluate(a, gt, metrics=["identity"], identity_network="arcface", quiet=True)
    assert "github.com/TencentARC" in missing.value.hint and files.WEIGHTS_ENV in missing.value.hint
    args = ["evaluate", str(a), "--gt", str(gt), "--metrics", "identity", "--device", "cpu"]
    assert main([*args, "--identity-net", "arcface"]) == 2
    assert "arcface_resnet18.pth" in capsys.readouterr().err
    assert main([*args, "--identity-net", "facenet"]) == 2
    assert "--identity-net 'facenet' is not one of auto, arcface" in capsys.readouterr().err

    path = _random_arcface_file(no_user_weights)
    monkeypatch.setenv(files.WEIGHTS_ENV, str(no_user_weights))
    report = evaluate(a, gt, compare=[gt], metrics=["identity"], quiet=True)
    assert report.identity_network == "arcface" and not report.notes
    assert "ArcFace ResNet-18" in report.variants["identity"] and "'Deg.' view of papers" in report.variants["identity"]
    # the papers' recipe (VQFR calculate_cos_dist): whole face, grey, bilinear 128x128, [-1, 1], angle in degrees
    network = load_arcface_resnet18(path)

    def embedding(file: Path) -> np.ndarray:
        grey = cv2.cvtColor(np.asarray(Image.open(file).convert("RGB")), cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_LINEAR) / 127.5 - 1
        with torch.no_grad():
            return network(torch.from_numpy(grey)[None, None])[0].numpy()

    for row in report.methods[0].rows:
        one, two = embedding(Path(row["restored"])), embedding(Path(row["gt"]))
        cosine = float(one @ two / np.linalg.norm(one) / np.linalg.norm(two))
        assert row["identity_cos"] == pytest.approx(cosine, abs=2e-3)
        assert row["identity_deg"] == pytest.approx(np.degrees(np.arccos(row["identity_cos"])), abs=1e-6)
    assert report.methods[1].summary["identity_deg"].mean < 0.1  # the ground truth against itself
    document = report.to_dict()
    assert document["identity_network"] == "arcface" and "identity_cos" in document["methods"][0]["summary"]
    assert main([*args, "--compare", str(gt)]) == 0
    out = capsys.readouterr().out
    assert "ArcFace cos ↑" in out and "ArcFace deg ↓" in out and "'Deg.' view of papers" in out
    assert main([*args, "--identity-net", "mobilefacenet", "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["identity_network"] == "mobilefacenet" and "MobileFaceNet" in document["variants"]["identity"]
    assert document["methods"][0]["summary"]["identity_cos"]["count"] == 3
    assert evaluate(a, gt, metrics=["psnr"], quiet=True).to_dict()["identity_network"] is None


def test_identity_network_dlib(dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--identity-net dlib``: dlib's descriptor distance as ``identity_dist`` (lower is better)."""
    pytest.importorskip("dlib")
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed")
    from minerrestore.metrics.identity import DlibIdentity

    a, gt = dataset["a"], dataset["gt"]
    report = evaluate(a, gt, compare=[gt], metrics=["identity"], identity_network="dlib", quiet=True)
    assert report.identity_network == "dlib" and [c.key for c in report.columns] == ["identity_dist"]
    assert "dlib" in report.variants["identity"] and "lower is better" in report.variants["identity"]
    truth = np.stack([np.asarray(Image.open(gt / f"x{i}.png")) for i in (1, 2, 3)])
    noisy = np.stack([np.asarray(Image.open(a / f"x{i}.png")) for i in (1, 2, 3)])
    expected = DlibIdentity().distances(noisy, truth)
    np.testing.assert_allclose([row["identity_dist"] for row in report.methods[0].rows], expected, rtol=1e-6)
    assert np.all(expected > 0) and report.methods[1].summary["identity_dist"].mean == pytest.approx(0, abs=1e-6)
    assert "identity_cos" not in report.methods[0].summary
    args = ["evaluate", str(a), "--gt", str(gt), "--metrics", "identity", "--identity-net", "dlib", "--device", "cpu"]
    assert main([*args, "--csv", str(dataset["root"] / "ids.csv")]) == 0
    assert "dlib dist ↓" in capsys.readouterr().out
    assert "identity_dist" in (dataset["root"] / "ids.csv").read_text().splitlines()[0]


def test_identity_network_dlib_missing_packages(dataset: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib raises ImportError
    with pytest.raises(UsageError, match="needs dlib") as missing:
        evaluate(dataset["a"], dataset["gt"], metrics=["identity"], identity_network="dlib", quiet=True)
    assert "pip install dlib-bin face-recognition-models" in missing.value.hint
