"""Background upsampler: tiles without seams, and restore --bg-upsampler realesrgan end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from minerrestore.archs.rrdbnet import RRDBNet
from minerrestore.background import BackgroundUpsampler, model_for_upscale, tiled_upscale, tiles
from minerrestore.errors import UsageError, WeightsError
from minerrestore.models import files
from tests.conftest import SOLVAY, needs_shared, patch_entry

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _photo(height: int, width: int) -> np.ndarray:
    """A smooth random photo (noise blurred, so the network sees structure at every scale)."""
    import cv2

    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def _net(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    return RRDBNet(scale, num_feat=8, num_block=1, num_grow_ch=4).eval()


def _away_from_borders(height: int, width: int, tile: int, margin: int) -> np.ndarray:
    """Mask of the pixels farther than ``margin`` from every inner tile border (input pixels)."""
    rows, cols = np.arange(height), np.arange(width)
    near_rows = np.zeros(height, bool)
    near_cols = np.zeros(width, bool)
    for border in range(tile, height, tile):
        near_rows |= np.abs(rows - border) < margin
    for border in range(tile, width, tile):
        near_cols |= np.abs(cols - border) < margin
    return ~near_rows[:, None] & ~near_cols[None, :]


def test_tiles_cover_the_image_once_on_aligned_corners() -> None:
    covered = np.zeros((45, 70), int)
    for top, left, bottom, right in tiles(45, 70, 17, align=2):
        assert top % 2 == 0 and left % 2 == 0
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_untiled_away_from_tile_borders(scale: int) -> None:
    net, photo, tile = _net(scale), _photo(96, 130), 40
    align = 2 if scale == 2 else 1
    whole = tiled_upscale(net, photo, scale, tile=0, align=align).astype(int)
    tiled = tiled_upscale(net, photo, scale, tile=tile, overlap=16, align=align).astype(int)
    assert tiled.shape == whole.shape == (96 * scale, 130 * scale, 3)
    away = np.repeat(np.repeat(_away_from_borders(96, 130, tile, margin=8), scale, 0), scale, 1)
    assert np.abs(tiled - whole)[away].max() <= 1  # within 1/255
    wide = tiled_upscale(net, photo, scale, tile=tile, overlap=48, align=align).astype(int)
    assert np.abs(wide - whole).max() <= 1  # context beyond the receptive field: equal everywhere
    seams = tiled_upscale(net, photo, scale, tile=tile, overlap=0, align=align).astype(int)
    assert np.abs(seams - whole).max() > 1  # without overlap the tiles show: the check can fail


def test_upsampler_settings_and_model_choice() -> None:
    assert model_for_upscale(1.5) == "realesrgan-x2plus" and model_for_upscale(2) == "realesrgan-x2plus"
    assert model_for_upscale(3) == "realesrgan-x4plus"
    with pytest.raises(UsageError, match="must not be negative"):
        BackgroundUpsampler(tile=-1)


def _official_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Official-layout GFPGANv1.4.pth (64 px, narrow 0.25) and RealESRGAN_x2plus.pth of random weights.

    Their names resolve through the catalogue, whose published SHA-256 are swapped for theirs.
    """
    from tests.archs.test_restorer import official_gfpgan

    torch.manual_seed(0)
    gfpgan = folder / "GFPGANv1.4.pth"
    torch.save({"params_ema": official_gfpgan(64, channel_multiplier=2, narrow=0.25).state_dict()}, gfpgan)
    realesrgan = folder / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": _net(2).state_dict()}, realesrgan)
    monkeypatch.setenv(files.WEIGHTS_ENV, str(folder))
    patch_entry(monkeypatch, "gfpgan-v1.4", sha256=files.sha256_of(gfpgan))
    patch_entry(monkeypatch, "realesrgan-x2plus", sha256=files.sha256_of(realesrgan))


def test_missing_upsampler_file_says_how_to_get_it(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minerrestore.restore import Restorer

    monkeypatch.setattr(files, "search_dirs", lambda: [tmp_path, files.REPO_WEIGHTS_DIR])  # the user folders: empty
    with pytest.raises(WeightsError, match=r"RealESRGAN_x2plus\.pth") as info:
        Restorer(tiny_model, device="cpu", bg_upsampler="realesrgan").load()
    assert "minerrestore weights download realesrgan-x2plus" in str(info.value)
    with pytest.raises(UsageError, match="bg upsampler"):
        Restorer(tiny_model, bg_upsampler="esrgan")


@needs_shared
def test_restore_gfpgan_v14_with_realesrgan_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acceptance: the CLI restores a whole photo; the tiled background equals the untiled one."""
    import cv2

    from minerrestore.cli import main
    from minerrestore.io import read_image

    _official_files(tmp_path, monkeypatch)
    photo = read_image(SOLVAY).rgb[:, :640]  # the left half of the group photo, 640x568: many faces
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    outputs = {}
    for tile in (0, 160):
        out = tmp_path / f"out{tile}"
        args = ["restore", str(tmp_path / "photo.png"), "--out", str(out), "--model", "gfpgan-v1.4"]
        args += ["--bg-upsampler", "realesrgan", "--bg-tile", str(tile), "--device", "cpu", "--quiet"]
        assert main(args) == 0
        outputs[tile] = read_image(out / "restored_imgs" / "photo.png").rgb.astype(int)
    assert outputs[0].shape == (568 * 2, 640 * 2, 3)
    away = np.repeat(np.repeat(_away_from_borders(568, 640, 160, margin=8), 2, 0), 2, 1)
    assert np.abs(outputs[160] - outputs[0])[away].max() <= 1
    lanczos = tmp_path / "lanczos"
    args = ["restore", str(tmp_path / "photo.png"), "--out", str(lanczos), "--model", "gfpgan-v1.4", "--quiet"]
    assert main([*args, "--device", "cpu"]) == 0
    assert np.abs(read_image(lanczos / "restored_imgs" / "photo.png").rgb.astype(int) - outputs[0]).mean() > 1


@needs_shared
def test_grey_photo_keeps_a_grey_realesrgan_background(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from minerrestore.io import read_image
    from minerrestore.restore import Restorer

    _official_files(tmp_path, monkeypatch)
    grey = cv2.cvtColor(read_image(SOLVAY).rgb[:200, :300], cv2.COLOR_RGB2GRAY)
    result = Restorer(tiny_model, device="cpu", bg_upsampler="realesrgan", bg_tile=96, upscale=1.5).restore(grey)
    assert result.image.shape == (300, 450, 3) and result.is_grey and "background" in result.timings
    assert (result.image[..., 0] == result.image[..., 1]).all() and (result.image[..., 1] == result.image[..., 2]).all()
