"""Device parsing and seeding."""

from __future__ import annotations

import pytest
import torch

from minerrestore.device import default_workers, resolve_device, seed_everything
from minerrestore.errors import UsageError


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_seed_everything_repeats() -> None:
    seed_everything(7)
    first = torch.rand(3)
    seed_everything(7)
    assert torch.equal(first, torch.rand(3))
    assert default_workers() >= 1
