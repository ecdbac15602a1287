"""What a training run reports: console lines, ``log.jsonl`` records, TensorBoard scalars, and the loss-curve plot."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from minerrestore.io import atomic_path
from minerrestore.train.run import RunLayout


class RunLog:
    """Rank 0's outputs: rich console lines, JSON lines and TensorBoard scalars.

    Args:
        layout: the run folder.
        enabled: False on ranks other than 0.
        quiet: no console output.
        tensorboard: write TensorBoard events when the package is installed.
    """

    def __init__(self, layout: RunLayout, enabled: bool, quiet: bool, tensorboard: bool) -> None:
        from rich.console import Console

        self.layout = layout
        self.enabled = enabled
        self.console = Console(stderr=True, quiet=quiet or not enabled)
        self.writer: Any = None
        self.tensorboard = tensorboard

    def open(self) -> None:
        """Open the TensorBoard writer (rank 0, when installed)."""
        if not (self.enabled and self.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.note("TensorBoard is not installed: logging to log.jsonl only (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(self.layout.tensorboard))

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def record(self, event: str, iteration: int, **values: Any) -> None:
        """Append one JSON record (and the numbers to TensorBoard under ``event/``)."""
        if not self.enabled:
            return
        row = {"event": event, "iteration": iteration, "time": round(time.time(), 3), **values}
        with open(self.layout.log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{event}/{key}", value, iteration)

    def note(self, message: str) -> None:
        """A line for the user (console only)."""
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a run's ``log.jsonl``; after a resume, later records of an iteration replace earlier ones."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("event", ""), int(row.get("iteration", 0)))] = row
    return sorted(latest.values(), key=lambda r: (r["iteration"], r["event"]))


def plot_loss_curves(log_path: str | Path, out_path: str | Path) -> Path | None:
    """Plot every training loss of ``log.jsonl`` against the iteration into a PNG (None without data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_log(log_path) if r["event"] == "train"]
    if not rows:
        return None
    keys = sorted({k for r in rows for k, v in r.items() if k.startswith(("g_", "d_")) and isinstance(v, float)})
    if not keys:
        return None
    columns = min(4, len(keys))
    lines = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.4 * lines), squeeze=False)
    for axis, key in zip(axes.flat, keys, strict=False):
        points = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
        if points:
            steps, values = (np.asarray(v) for v in zip(*points, strict=True))
            window = len(values) // 50  # long runs: raw values faint, a moving average on top
            marker = "." if len(values) < 30 else None
            axis.plot(steps, values, linewidth=0.8, marker=marker, alpha=0.35 if window > 1 else 1.0)
            if window > 1:
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                axis.plot(steps[window - 1 :], smooth, linewidth=1.2, color="C1")
        axis.set_title(key, fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(keys) :]:
        axis.axis("off")
    figure.tight_layout()
    out_path = Path(out_path)
    with atomic_path(out_path) as temp:
        figure.savefig(temp, format="png", dpi=100)
    plt.close(figure)
    return out_path


__all__ = ["RunLog", "plot_loss_curves", "read_log"]
