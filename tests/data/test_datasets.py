"""minerrestore.data.datasets: on-the-fly pairs equal the written ones; paired folders; batching to NCHW."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from minerrestore.data.datasets import DegradedFaceDataset, PairedFaceDataset, to_tensor
from minerrestore.data.degradation import DegradationSettings
from minerrestore.data.pairs import degrade_folder
from minerrestore.errors import UsageError

SIZE = 32


@pytest.fixture
def faces(tmp_path: Path, rng: np.random.Generator) -> Path:
    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(4):
        image = rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"f{index}.png")
    return folder


def test_to_tensor_maps_uint8_to_minus_one_one() -> None:
    tensor = to_tensor(np.array([[[0, 255, 128]]], np.uint8))
    assert tensor.shape == (3, 1, 1) and tensor.dtype == torch.float32
    assert tensor.flatten().tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)


def test_degraded_dataset_is_deterministic_and_matches_degrade(faces: Path, tmp_path: Path) -> None:
    settings = DegradationSettings(preset="miner", size=SIZE, seed=3)
    dataset = DegradedFaceDataset(faces, settings)
    assert len(dataset) == 4
    sample = dataset[1]
    assert set(sample) == {"lq", "gt", "path"}
    assert sample["lq"].shape == sample["gt"].shape == (3, SIZE, SIZE)
    assert sample["lq"].min() >= -1 and sample["lq"].max() <= 1
    assert torch.equal(sample["lq"], dataset[1]["lq"])
    degrade_folder(faces, tmp_path / "pairs", settings, quiet=True)
    for index in range(len(dataset)):
        name = Path(dataset[index]["path"]).with_suffix(".png").name
        lq, gt = dataset.pair(index)  # epoch 0 is exactly what minerrestore degrade writes
        assert np.array_equal(lq, np.asarray(Image.open(tmp_path / "pairs" / "lq" / name).convert("RGB")))
        assert np.array_equal(gt, np.asarray(Image.open(tmp_path / "pairs" / "gt" / name).convert("RGB")))
    dataset.set_epoch(1)
    assert torch.equal(dataset[1]["gt"], sample["gt"])
    assert not torch.equal(dataset[1]["lq"], sample["lq"])  # fresh degradation per epoch
    assert dataset.params(1) != DegradedFaceDataset(faces, settings).params(1)


def test_loader_batches_to_nchw(faces: Path) -> None:
    loader = DataLoader(DegradedFaceDataset(faces, DegradationSettings(size=SIZE)), batch_size=2, shuffle=False)
    batch = next(iter(loader))
    assert batch["lq"].shape == batch["gt"].shape == (2, 3, SIZE, SIZE)
    assert batch["lq"].dtype == torch.float32 and len(batch["path"]) == 2


def test_paired_dataset_reads_degrade_output(faces: Path, tmp_path: Path) -> None:
    degrade_folder(faces, tmp_path / "pairs", DegradationSettings(size=SIZE), split=0.5, quiet=True)
    train = PairedFaceDataset(tmp_path / "pairs" / "train")
    test = PairedFaceDataset(tmp_path / "pairs" / "test")
    assert len(train) + len(test) == 4
    sample = train[0]
    assert sample["lq"].shape == sample["gt"].shape == (3, SIZE, SIZE)
    gt = np.asarray(Image.open(train.gt_paths[0]).convert("RGB"))
    assert torch.equal(sample["gt"], to_tensor(gt))
    assert not torch.equal(sample["lq"], sample["gt"])


def test_bad_folders_are_usage_errors(faces: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="gt/ and lq/"):
        PairedFaceDataset(faces)
    degrade_folder(faces, tmp_path / "pairs", DegradationSettings(size=SIZE), quiet=True)
    next((tmp_path / "pairs" / "lq").iterdir()).unlink()
    with pytest.raises(UsageError, match="without a low-quality twin"):
        PairedFaceDataset(tmp_path / "pairs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        DegradedFaceDataset(tmp_path / "empty")
