"""The results of ``minerrestore evaluate``: per-method scores, the table, JSON, CSV and chart.

:func:`minerrestore.evaluate.evaluate` fills an :class:`EvaluationReport`; this module turns
it into the outputs (the rich table with the best value in bold, a JSON document, per-image
CSV, a bar chart PNG), all written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from minerrestore import __version__
from minerrestore.batch import stderr_console
from minerrestore.io import atomic_path, atomic_write_text


@dataclass(frozen=True)
class Column:
    """One reported quantity: its key in outputs, table label, direction and number format."""

    key: str
    label: str
    higher_is_better: bool
    digits: int


# table order as the paper's Table 3 (LPIPS, FID, NIQE, PSNR, SSIM), identity last
COLUMNS = {
    "lpips": Column("lpips", "LPIPS", False, 4),
    "fid": Column("fid", "FID", False, 2),
    "niqe": Column("niqe", "NIQE", False, 3),
    "psnr": Column("psnr", "PSNR", True, 2),
    "ssim": Column("ssim", "SSIM", True, 4),
    "identity_cos": Column("identity_cos", "ID cos", True, 4),
    "identity_deg": Column("identity_deg", "ID deg", False, 2),
    "identity_dist": Column("identity_dist", "ID dist", False, 4),
}
_IDENTITY_COLUMNS = {"dlib": ("identity_dist",)}  # identity columns per network; default cosine and angle
_IDENTITY_NAMES = {"arcface": "ArcFace", "mobilefacenet": "MobileFaceNet", "dlib": "dlib"}


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1) over the images with a finite value."""

    mean: float
    std: float
    count: int
    excluded: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        array = np.asarray(values, dtype=np.float64)
        finite = array[np.isfinite(array)]
        std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
        mean = float(finite.mean()) if len(finite) else math.nan
        return cls(mean, std, len(finite), len(array) - len(finite))


@dataclass
class MethodResult:
    """Scores of one folder of restored images."""

    name: str
    restored_dir: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Summary]
    fid: float | None = None
    fid_count: int = 0

    def value(self, key: str) -> float | None:
        """The table value of a column: the mean, or FID."""
        if key == "fid":
            return self.fid
        return self.summary[key].mean if key in self.summary else None


@dataclass
class EvaluationReport:
    """Everything ``evaluate`` measured, with the description of each metric variant."""

    methods: list[MethodResult]
    metrics: tuple[str, ...]
    gt_dir: Path | None
    variants: dict[str, str]
    identity_network: str | None = None
    """The network of the identity columns (``arcface``, ``mobilefacenet``, ``dlib``), None without identity."""
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0

    @property
    def columns(self) -> list[Column]:
        """Reported columns in table order."""
        identity = _IDENTITY_COLUMNS.get(self.identity_network or "", ("identity_cos", "identity_deg"))
        keys = [key for metric in self.metrics for key in (identity if metric == "identity" else (metric,))]
        return [column for key, column in COLUMNS.items() if key in keys]

    def label(self, column: Column) -> str:
        """A column's heading with its direction; identity columns name their network (``ArcFace cos ↑``)."""
        label = column.label
        if column.key.startswith("identity_") and self.identity_network in _IDENTITY_NAMES:
            label = label.replace("ID", _IDENTITY_NAMES[self.identity_network], 1)
        return f"{label} {'↑' if column.higher_is_better else '↓'}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (non-finite numbers become null)."""
        return {
            "tool": f"minerrestore {__version__} evaluate",
            "gt": str(self.gt_dir) if self.gt_dir else None,
            "metrics": list(self.metrics),
            "variants": self.variants,
            "identity_network": self.identity_network,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            "std": "sample standard deviation over images (ddof=1)",
            "notes": self.notes,
            "methods": [
                {
                    "method": method.name,
                    "restored": str(method.restored_dir),
                    "images": len(method.rows),
                    "summary": {
                        key: {
                            "mean": _finite(item.mean),
                            "std": _finite(item.std),
                            "count": item.count,
                            "excluded": item.excluded,
                        }
                        for key, item in method.summary.items()
                    },
                    "fid": None if method.fid is None else {"value": _finite(method.fid), "images": method.fid_count},
                    "per_image": [{k: _finite(v) for k, v in row.items()} for row in method.rows],
                }
                for method in self.methods
            ],
        }

    def write_csv(self, path: str | Path) -> Path:
        """Per-image values, one row per (method, image), written atomically."""
        keys = [column.key for column in self.columns if column.key != "fid"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "image", "restored", "gt", *keys])
        for method in self.methods:
            for row in method.rows:
                values = [_csv_number(row.get(key)) for key in keys]
                writer.writerow([method.name, row["image"], row["restored"], row.get("gt") or "", *values])
        return atomic_write_text(path, buffer.getvalue())

    def table(self) -> Table:
        """A rich table: one row per method, mean over ``± std`` per metric (best in bold)."""
        columns = self.columns
        title = f"{len(self.methods[0].rows)} images" + (f" vs ground truth {self.gt_dir}" if self.gt_dir else "")
        table = Table(title=title)
        table.add_column("method")
        for column in columns:
            table.add_column(self.label(column), justify="right")
        best = {column.key: _best(self.methods, column) for column in columns}
        for method in self.methods:
            cells = []
            for column in columns:
                value = method.value(column.key)
                if value is None or not math.isfinite(value):
                    cells.append("n/a")
                    continue
                text = f"{value:.{column.digits}f}"
                if len(self.methods) > 1 and value == best[column.key]:
                    text = f"[bold]{text}[/bold]"
                if column.key in method.summary:
                    text += f"\n[dim]± {method.summary[column.key].std:.{column.digits}f}[/dim]"
                cells.append(text)
            table.add_row(method.name, *cells)
        return table

    def write_chart(self, path: str | Path) -> Path:
        """Bar chart PNG: one panel per metric, one bar per method (error bars: std), atomic."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        columns = self.columns
        figure = Figure(figsize=(2.6 * len(columns) + 0.6, 3.6), layout="constrained")
        axes = figure.subplots(1, len(columns), squeeze=False)[0]
        names = [method.name for method in self.methods]
        positions = np.arange(len(names))
        for axis, column in zip(axes, columns, strict=True):
            values = [method.value(column.key) for method in self.methods]
            heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
            errors = [m.summary[column.key].std for m in self.methods] if column.key != "fid" else None
            colours = [f"C{index % 10}" for index in range(len(names))]
            axis.bar(positions, heights, yerr=errors, capsize=3, color=colours)
            axis.set_title(self.label(column))
            axis.set_xticks(positions, names, rotation=30, ha="right")
        figure.suptitle(f"{len(self.methods[0].rows)} images per method")
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png", dpi=120)
        return Path(path)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_number(value: Any) -> str:
    return "" if value is None else repr(float(value))


def _best(methods: list[MethodResult], column: Column) -> float | None:
    values = [v for v in (m.value(column.key) for m in methods) if v is not None and math.isfinite(v)]
    if not values:
        return None
    return max(values) if column.higher_is_better else min(values)


def print_report(report: EvaluationReport) -> None:
    """Table to stdout; notes to stderr."""
    console = Console()
    console.print(report.table())
    for name, text in report.variants.items():
        console.print(f"{name}: {text}", highlight=False, soft_wrap=True)
    for note in report.notes:
        stderr_console.print(f"[yellow]note[/yellow] {note}", highlight=False, soft_wrap=True)
