"""Shared test fixtures: paths to ../shared, small synthetic images, a tiny restorer model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SOLVAY = SHARED / "data" / "examples" / "Solvay_conference_1927.png"
FACES = SHARED / "data" / "faces"
PORTRAITS = ["A000014.jpg", "A000022.jpg", "A000055.jpg"]

needs_shared = pytest.mark.skipif(not SOLVAY.is_file() or not FACES.is_dir(), reason="../shared data absent")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repository (skips the test when absent)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared, loaded 2-core machine extra threads mostly spin."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_restorer():
    """A random scheme-D restorer at 64 px in eval mode, the same weights on every call."""
    import torch

    from minerrestore.archs.restorer import create_restorer

    torch.manual_seed(0)
    return create_restorer("D", out_size=64, narrow=0.125, num_style_feat=32, num_mlp=1).eval()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_restorer` saved with its architecture (about 3 MB)."""
    from minerrestore.archs.checkpoints import save_restorer

    return save_restorer(tmp_path_factory.mktemp("model") / "tiny.safetensors", tiny_restorer())


@pytest.fixture
def portraits(tmp_path: Path) -> Path:
    """A folder with three shared portraits."""
    import shutil

    if not FACES.is_dir():
        pytest.skip("../shared data absent")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in PORTRAITS:
        shutil.copy(FACES / name, folder / name)
    return folder


def patch_entry(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object):
    """Replace catalogue entry ``name`` for one test (e.g. ``sha256`` of a random-weights file); returns it."""
    import dataclasses

    from minerrestore.models import catalogue

    old = catalogue.get_entry(name)
    new = dataclasses.replace(old, **changes)
    monkeypatch.setattr(catalogue, "CATALOGUE", tuple(new if entry is old else entry for entry in catalogue.CATALOGUE))
    for key in (old.name, *old.aliases):
        monkeypatch.setitem(catalogue._BY_NAME, key.lower(), new)
    return new
