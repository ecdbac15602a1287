"""RRDBNet: equal to basicsr's on tiny random networks, official files load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import minerrestore.compat  # noqa: F401  (before basicsr)
from minerrestore.archs.rrdbnet import RRDBNet, load_rrdbnet, rrdbnet_from_state_dict
from minerrestore.errors import WeightsError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("scale", [2, 4])
def test_matches_basicsr_rrdbnet(scale: int) -> None:
    from basicsr.archs.rrdbnet_arch import RRDBNet as Reference

    torch.manual_seed(scale)
    reference = Reference(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4).eval()
    ours = rrdbnet_from_state_dict(reference.state_dict()).eval()  # sizes read from the shapes, strict
    assert (ours.scale, len(ours.body), ours.conv_first.out_channels) == (scale, 2, 8)
    x = torch.rand(1, 3, 12, 18)
    with torch.inference_mode():
        expected = reference(x)
        got = ours(x)
    assert got.shape == (1, 3, 12 * scale, 18 * scale)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_official_file_layout_loads_params_ema(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ema, other = RRDBNet(2, 8, 1, 4), RRDBNet(2, 8, 1, 4)
    path = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": ema.state_dict(), "params": other.state_dict()}, path)
    loaded = load_rrdbnet(path)
    assert not loaded.training and torch.equal(loaded.conv_last.weight, ema.conv_last.weight)
    state = ema.state_dict()
    del state["conv_hr.bias"]
    with pytest.raises(WeightsError, match="does not load"):
        rrdbnet_from_state_dict(state)
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="not a Real-ESRGAN"):
        load_rrdbnet(path)
