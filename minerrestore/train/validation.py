"""Validation during training: the fixed validation pairs restored by the EMA generator, their metrics and grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from minerrestore import losses as L
from minerrestore.data.datasets import DataPlan, FacePairs, to_tensor
from minerrestore.train.config import Config


def _to_uint8(images: Tensor) -> Tensor:
    """NCHW in [-1, 1] -> NCHW uint8 (rounded, clamped)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _grid(columns: Sequence[Tensor]) -> np.ndarray:
    """Rows of faces side by side: each tensor (N, 3, H, W) uint8 becomes a column -> HxWx3 uint8."""
    rows = torch.cat([torch.cat(list(column), dim=2) for column in zip(*columns, strict=True)], dim=1)
    return rows.permute(1, 2, 0).cpu().numpy()


@dataclass
class Validator:
    """Restores the fixed validation pairs with the EMA generator and measures them.

    Attributes:
        lq: (N, 3, S, S) degraded faces in [-1, 1] (CPU).
        gt: (N, 3, S, S) ground truth in [-1, 1] (CPU).
        batch_size: faces per forward.
        grid_images: faces in the PNG grid.
        lpips: LPIPS metric (restored, gt uint8 NCHW) -> (N,) or None without its weights.
        lpips_name: what the LPIPS figure is.
    """

    lq: Tensor
    gt: Tensor
    batch_size: int
    grid_images: int
    lpips: Callable[[Tensor, Tensor], Tensor] | None = None
    lpips_name: str = ""

    @torch.no_grad()
    def run(self, generator: nn.Module, device: torch.device) -> tuple[dict[str, float], np.ndarray | None]:
        """Metrics (PSNR/SSIM on RGB, no border crop; LPIPS) of input and output, and the grid."""
        from minerrestore.metrics.psnr_ssim import psnr, ssim

        if self.lq.shape[0] == 0:
            return {}, None
        was_training = generator.training
        generator.eval()
        restored = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for start in range(0, self.lq.shape[0], self.batch_size):
                batch = self.lq[start : start + self.batch_size].to(device)
                restored.append(_to_uint8(generator(batch).image).cpu())
        generator.train(was_training)
        output, gt, lq = torch.cat(restored), _to_uint8(self.gt), _to_uint8(self.lq)
        metrics = {
            "psnr": float(psnr(output, gt).mean()),
            "ssim": float(ssim(output, gt).mean()),
            "psnr_input": float(psnr(lq, gt).mean()),
            "ssim_input": float(ssim(lq, gt).mean()),
        }
        if self.lpips is not None:
            metrics[f"lpips_{self.lpips_name}"] = float(self.lpips(output, gt).mean())
            metrics[f"lpips_{self.lpips_name}_input"] = float(self.lpips(lq, gt).mean())
        count = min(self.grid_images, output.shape[0])
        grid = _grid([lq[:count], output[:count], gt[:count]]) if count else None
        return metrics, grid


def build_validator(config: Config, plan: DataPlan) -> Validator:
    """Degrade the validation faces once (epoch 0, no flip) and set up the metrics."""
    data, size, cleaning = config.data, config.model.out_size, config.model.restorer().input_denoise
    dataset = FacePairs(plan.val, size, data.presets, config.train.seed, False, 1.0, data.degrade_scales, cleaning)
    pairs = [dataset.pair(index, 0) for index in range(len(dataset))]
    lq = torch.stack([to_tensor(p[0]) for p in pairs]) if pairs else torch.zeros(0, 3, size, size)
    gt = torch.stack([to_tensor(p[1]) for p in pairs]) if pairs else torch.zeros(0, 3, size, size)
    lpips, name = L.create_lpips_metric()
    batch = max(1, config.data.batch_size)
    return Validator(lq, gt, batch, config.log.grid_images, lpips, name)


__all__ = ["Validator", "build_validator"]
