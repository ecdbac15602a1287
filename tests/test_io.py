"""Image I/O and the batch conventions on a corpus of good and bad files."""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minerrestore.batch import run_batch
from minerrestore.errors import ImageReadError, UsageError
from minerrestore.io import atomic_path, list_images, read_image, write_image


def _gradient(width: int = 48, height: int = 32) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    rgb = np.stack([x[None, :].repeat(height, 0), y[:, None].repeat(width, 1), np.full((height, width), 77.0)], 2)
    return rgb.astype(np.uint8)


def _png_with_size(path: Path, width: int, height: int) -> None:
    """A valid PNG header declaring huge dimensions (a decompression bomb)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def make_corpus(folder: Path) -> tuple[list[str], list[str]]:
    """Write good and bad files; return (good names, bad names)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _gradient()
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(rgb).save(folder / "full.jpg", quality=95)
    full = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (folder / "text.png").write_text("this is not an image\n")
    _png_with_size(folder / "bomb.png", 100_000, 100_000)
    Image.fromarray(np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 40).save(folder / "deep16.png")
    Image.new("CMYK", (40, 30), (10, 200, 30, 5)).save(folder / "cmyk.jpg")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(rgb).save(folder / "лицо_шахтёра.png")
    good = ["alpha.png", "cmyk.jpg", "deep16.png", "full.jpg", "rotated.jpg", "лицо_шахтёра.png"]
    bad = ["bomb.png", "empty.png", "text.png", "truncated.jpg"]
    return good, bad


def copy_as_png(path: Path, out_dir: Path) -> dict:
    """Batch step used by the tests: read an image and write it as PNG."""
    image = read_image(path)
    write_image(out_dir / f"{path.stem}.png", image.rgb, alpha=image.alpha, grey=image.is_grey, protect=[path])
    return {"notes": image.notes}


def test_corpus_through_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = make_corpus(tmp_path / "in")
    out = tmp_path / "out"
    items = list_images(tmp_path / "in")
    assert [p.name for p in items] == sorted(good + bad)
    report = run_batch(items, functools.partial(copy_as_png, out_dir=out), description="copy")
    assert report.exit_code == 1
    assert sorted(Path(r.item).name for r in report.done) == sorted(good)
    assert sorted(Path(r.item).name for r in report.failed) == sorted(bad)
    err = capsys.readouterr().err
    for name in bad:
        assert sum(name in line for line in err.splitlines()) >= 1, name
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{Path(n).stem}.png" for n in good)  # no partial or temp file left


def test_corpus_with_worker_processes(tmp_path: Path) -> None:
    good, bad = make_corpus(tmp_path / "in")
    out = tmp_path / "out"
    report = run_batch(list_images(tmp_path / "in"), functools.partial(copy_as_png, out_dir=out), workers=2, quiet=True)
    assert report.exit_code == 1 and len(report.done) == len(good) and len(report.failed) == len(bad)
    assert [r.item for r in report.results] == [str(p) for p in list_images(tmp_path / "in")]
    assert len(list(out.iterdir())) == len(good)


def test_skip_existing_resumes(tmp_path: Path) -> None:
    make_corpus(tmp_path / "in")
    out = tmp_path / "out"
    step = functools.partial(copy_as_png, out_dir=out)
    items = [p for p in list_images(tmp_path / "in") if p.name in ("full.jpg", "alpha.png")]
    run_batch(items[:1], step, quiet=True)
    report = run_batch(items, step, quiet=True, skip=lambda p: (out / f"{p.stem}.png").exists())
    assert len(report.skipped) == 1 and len(report.done) == 1 and report.exit_code == 0


def test_reader_conversions(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    rgb = _gradient()
    rotated = read_image(tmp_path / "rotated.jpg")
    with Image.open(tmp_path / "rotated.jpg") as reference:
        from PIL import ImageOps

        expected = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    assert rotated.rgb.shape == (48, 32, 3)
    np.testing.assert_array_equal(rotated.rgb, expected)
    alpha = read_image(tmp_path / "alpha.png")
    assert alpha.alpha is not None and int(alpha.alpha[0, 0]) == 128
    np.testing.assert_array_equal(alpha.rgb, rgb)
    with pytest.warns(UserWarning, match="16-bit"):
        deep = read_image(tmp_path / "deep16.png")
    assert deep.is_grey and deep.rgb.dtype == np.uint8 and deep.rgb.max() > 200
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.rgb.shape == (30, 40, 3) and any("CMYK" in n for n in cmyk.notes)
    assert read_image(tmp_path / "лицо_шахтёра.png").rgb.shape == (32, 48, 3)


def test_sixteen_bit_colour_png_is_scaled(tmp_path: Path) -> None:
    import cv2

    deep = np.zeros((8, 8, 3), np.uint16)
    deep[..., 2] = 65535  # red in BGR order
    cv2.imwrite(str(tmp_path / "red16.png"), deep)
    with pytest.warns(UserWarning):
        image = read_image(tmp_path / "red16.png")
    assert image.rgb[0, 0].tolist() == [255, 0, 0]


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    for name, reason in [("empty.png", "empty"), ("text.png", "not an image"), ("bomb.png", "exceeds")]:
        with pytest.raises(ImageReadError, match=reason) as info:
            read_image(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "truncated.jpg")


def test_write_is_atomic_and_protects_inputs(tmp_path: Path) -> None:
    rgb = _gradient()
    source = write_image(tmp_path / "a.png", rgb)
    with pytest.raises(UsageError, match="overwrite an input"):
        write_image(tmp_path / "a.png", rgb, protect=[source])
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.png") as temp:
        temp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    grey = write_image(tmp_path / "g.png", np.repeat(rgb[..., :1], 3, 2), grey=True)
    with Image.open(grey) as image:
        assert image.mode == "L"


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list_images(tmp_path / "nowhere")
