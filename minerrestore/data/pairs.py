"""``minerrestore degrade`` on folders: (gt, lq) pairs, their manifest, train/test splits, replay, preview.

Each input image becomes one :class:`DegradeJob` whose manifest row holds everything the
pair depends on (size, fit and the drawn parameters of :mod:`minerrestore.data.degradation`),
so a manifest replays bit for bit. Every variant of one augmented source lands on the same
side of a split (sources come from the augment manifest or the ``_<op>`` file-name suffix).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from minerrestore.batch import BatchReport
from minerrestore.data.augment import AUGMENT_MANIFEST, OPS
from minerrestore.data.degradation import (
    DegradationSettings,
    apply_degradation,
    describe_params,
    prepare_gt,
    sample_params,
)
from minerrestore.data.folders import (
    check_out_dir,
    image_seed,
    opencv_threads_for,
    read_manifest,
    relative_name,
    run_with_manifest,
)
from minerrestore.data.presets import load_preset
from minerrestore.errors import UsageError
from minerrestore.io import LoadedImage, check_output_ext, list_images, read_image, write_image

DEGRADE_MANIFEST = "degrade_manifest.jsonl"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DegradeJob:
    """One source image and its manifest row (paths in the row are relative to ``out_dir``)."""

    source: Path
    out_dir: Path
    row: dict[str, Any]

    def __str__(self) -> str:
        return str(self.source)

    @property
    def outputs(self) -> tuple[Path, Path]:
        """(ground-truth path, low-quality path)."""
        return self.out_dir / self.row["gt"], self.out_dir / self.row["lq"]


def make_pair(job: DegradeJob) -> tuple[LoadedImage, np.ndarray, np.ndarray]:
    """Read a job's source and compute (source, gt, lq) in memory; alpha, if any, is not used.

    Alpha is ignored as OpenCV's colour reading (and so GFP-GAN's data loader) ignores it.
    """
    loaded = read_image(job.source)
    gt = prepare_gt(loaded.rgb, job.row["size"], job.row["fit"])
    return loaded, gt, apply_degradation(gt, job.row["params"])


def _degrade_one(job: DegradeJob, workers: int = 1) -> dict[str, Any]:
    """Worker: make one pair and write it (module level so worker processes can unpickle it)."""
    opencv_threads_for(workers)
    loaded, gt, lq = make_pair(job)
    gt_path, lq_path = job.outputs
    write_image(gt_path, gt, grey=loaded.is_grey, protect=[job.source])
    write_image(lq_path, lq, grey="grey" in job.row["params"], protect=[job.source])
    return {"gt": job.row["gt"], "lq": job.row["lq"]}


def source_group(name: str, augment_sources: Mapping[str, str], suffixes: Iterable[str]) -> str:
    """The source an image was made from: from the augment manifest, else by stripping ``_<op>``.

    Args:
        name: relative path of the image, e.g. ``"sub/A001_rotate.png"``.
        augment_sources: augment manifest ``output -> source`` (relative paths).
        suffixes: augmentation names that may end a stem (``orig``, ``flip`` ...).
    """
    if name in augment_sources:
        return str(PurePosixPath(augment_sources[name]).with_suffix(""))
    stem = str(PurePosixPath(name).with_suffix(""))
    for suffix in suffixes:
        if stem.endswith(f"_{suffix}"):
            return stem[: -len(suffix) - 1]
    return stem


def assign_splits(groups: Iterable[str], train_fraction: float, seed: int) -> dict[str, str]:
    """Seeded split of source groups: ``round(train_fraction * n)`` groups go to ``train``.

    Both sides get at least one group when there are two or more.
    """
    if not 0.0 < train_fraction < 1.0:
        raise UsageError(f"split {train_fraction} must be between 0 and 1 (e.g. 0.8)", settings=("split",))
    ordered = sorted(set(groups))
    count = len(ordered)
    n_train = round(train_fraction * count)
    if count >= 2:
        n_train = min(max(n_train, 1), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    return {ordered[i]: SPLITS[0] if rank < n_train else SPLITS[1] for rank, i in enumerate(order)}


def _augment_sources(input_dir: Path) -> dict[str, str]:
    path = input_dir / AUGMENT_MANIFEST
    if not input_dir.is_dir() or not path.is_file():
        return {}
    return {row["output"]: row["source"] for row in read_manifest(path) if "output" in row and "source" in row}


def plan_degradation(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: DegradationSettings | None = None,
    *,
    split: float | None = None,
    ext: str = "png",
    recursive: bool = False,
) -> list[DegradeJob]:
    """Draw every image's parameters and output names, without touching any pixel.

    Args:
        input_dir: folder of high-quality faces (or one image).
        out_dir: output folder the rows' paths are relative to.
        settings: preset, size, fit and seed; the defaults when None.
        split: fraction of source images for ``train``; None writes no split.
        ext: output format of both images.
        recursive: descend into sub-folders.

    Returns:
        One :class:`DegradeJob` per input image, in sorted order.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    settings = settings or DegradationSettings()
    loaded_preset = load_preset(settings.preset)
    prepare_gt(np.zeros((8, 8, 3), np.uint8), settings.size, settings.fit)  # validate size and fit before any work
    sources = list_images(input_dir, recursive)
    names = [relative_name(path, input_dir) for path in sources]
    sides: dict[str, str] = {}
    if split is not None:
        augment_sources = _augment_sources(input_dir)
        groups = {name: source_group(name, augment_sources, OPS) for name in names}
        by_group = assign_splits(groups.values(), split, settings.seed)
        sides = {name: by_group[groups[name]] for name in names}
    suffix = check_output_ext(ext)
    jobs = []
    for path, name in zip(sources, names, strict=True):
        stem = str(PurePosixPath(name).with_suffix(suffix))
        prefix = f"{sides[name]}/" if name in sides else ""
        per_image = image_seed(settings.seed, name)
        row = {
            "source": name,
            "gt": f"{prefix}gt/{stem}",
            "lq": f"{prefix}lq/{stem}",
            "split": sides.get(name),
            "preset": loaded_preset.name,
            "seed": per_image,
            "size": settings.size,
            "fit": settings.fit,
            "params": sample_params(loaded_preset, np.random.default_rng(per_image)),
        }
        jobs.append(DegradeJob(path, out_dir, row))
    return jobs


def plan_replay(manifest: str | Path, input_dir: str | Path, out_dir: str | Path) -> list[DegradeJob]:
    """Jobs that redo every row of a degrade manifest: sources under ``input_dir``, outputs under ``out_dir``.

    Raises:
        UsageError: a row lacks a field the replay needs.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    jobs = []
    for number, row in enumerate(read_manifest(manifest), start=1):
        missing = [key for key in ("source", "gt", "lq", "size", "fit", "params") if key not in row]
        if missing:
            raise UsageError(f"{manifest}: row {number} lacks {', '.join(missing)}")
        source = input_dir if input_dir.is_file() else input_dir / row["source"]
        jobs.append(DegradeJob(source, out_dir, row))
    return jobs


def degrade_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: DegradationSettings | None = None,
    *,
    split: float | None = None,
    replay: str | Path | None = None,
    ext: str = "png",
    workers: int = 1,
    skip_existing: bool = False,
    overwrite: bool = False,
    recursive: bool = False,
    quiet: bool = False,
) -> BatchReport:
    """Make (gt, lq) pairs for every image in ``input_dir``: ``minerrestore degrade``.

    Writes ``out_dir/gt/<name>`` and ``out_dir/lq/<name>`` (or ``out_dir/{train,test}/{gt,lq}``
    with ``split``; every variant of one source lands on the same side) and
    ``out_dir/degrade_manifest.jsonl``: one JSON object per pair with ``source``, ``gt``,
    ``lq``, ``split``, ``preset``, ``seed``, ``size``, ``fit`` and the drawn ``params``.

    Args:
        input_dir: folder of high-quality faces (or one image).
        out_dir: output folder (not the input folder).
        settings: preset (``paper``, ``miner`` or a YAML path, see :mod:`minerrestore.data.presets`),
            ground-truth size, fit and global seed (with the same inputs the same seed gives
            identical bytes); ``DegradationSettings()`` (paper, 512 px, crop, seed 0) when None.
        split: fraction of source images for ``train`` (e.g. 0.8); None writes no split.
        replay: a degrade manifest to redo exactly (``settings`` and ``split`` come from it:
            giving other ones is refused).
        ext: output format of both images (lossless ``png`` by default).
        workers: processes; results do not depend on it.
        skip_existing: skip images whose two outputs exist (resuming the same command; a
            folder whose manifest records other settings is refused either way).
        overwrite: first remove the outputs and manifest of a different earlier run in ``out_dir``.
        recursive: descend into sub-folders (relative paths are kept).
        quiet: no progress bar.

    Returns:
        The batch report; the manifest lists done and skipped pairs in input order.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    check_out_dir(input_dir, out_dir, recursive)
    if replay is not None:
        if (settings is not None and settings != DegradationSettings()) or split is not None:
            raise UsageError(
                "replay redoes the manifest's own preset, size, fit, seed and split",
                hint="drop those options, or degrade without replay",
                settings=("replay", "preset", "size", "fit", "seed", "split"),
            )
        jobs = plan_replay(replay, input_dir, out_dir)
    else:
        jobs = plan_degradation(input_dir, out_dir, settings, split=split, ext=ext, recursive=recursive)
    return run_with_manifest(
        jobs,
        _degrade_one,
        out_dir / DEGRADE_MANIFEST,
        lambda job: [job.row],
        fields=("gt", "lq"),
        workers=workers,
        description="degrade",
        quiet=quiet,
        skip_existing=skip_existing,
        overwrite=overwrite,
    )


def preview_degrade(
    input_dir: str | Path,
    png: str | Path,
    settings: DegradationSettings | None = None,
    *,
    count: int = 4,
    recursive: bool = False,
) -> Path:
    """Contact sheet of the first ``count`` inputs: source, ground truth, degraded (with parameters).

    Nothing else is written: look before degrading thousands.
    """
    from minerrestore.preview import write_contact_sheet

    jobs = plan_degradation(input_dir, png, settings, recursive=recursive)
    if not jobs:
        raise UsageError(f"{input_dir}: no images to preview")
    rows = []
    for job in jobs[:count]:
        loaded, gt, lq = make_pair(job)
        rows.append([(job.row["source"], loaded.rgb), ("gt", gt), (describe_params(job.row["params"]), lq)])
    return write_contact_sheet(png, rows, protect=[job.source for job in jobs])


__all__ = [
    "DEGRADE_MANIFEST",
    "SPLITS",
    "DegradeJob",
    "assign_splits",
    "degrade_folder",
    "make_pair",
    "plan_degradation",
    "plan_replay",
    "preview_degrade",
    "source_group",
]
