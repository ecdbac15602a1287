"""Folder helpers shared by ``minerrestore augment`` and ``minerrestore degrade``.

Per-image seeds (stable across runs, machines, worker counts and orders), JSON-lines
manifests, output-folder checks, and the batch run that writes a manifest of the done and
skipped jobs.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2

from minerrestore.batch import BatchReport, run_batch
from minerrestore.errors import UsageError
from minerrestore.io import atomic_write_text


def image_seed(seed: int, name: str, epoch: int = 0) -> int:
    """Seed for one image, derived from the global ``seed`` and its relative ``name``.

    Stable across runs, machines, worker counts and orders. ``epoch`` > 0 gives fresh
    draws for the same image (on-the-fly training); epoch 0 matches the folder commands.
    """
    key = f"{seed}/{name}" if epoch == 0 else f"{seed}/{epoch}/{name}"
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:6], "big")


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines manifest (blank lines ignored).

    Raises:
        UsageError: the file is missing or a line is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such manifest")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object per line")
        rows.append(row)
    return rows


def write_manifest(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows as JSON lines, atomically."""
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def check_out_dir(input_dir: Path, out_dir: Path, recursive: bool) -> None:
    """Refuse an output folder that is the input folder (or inside it when ``recursive``)."""
    source, target = input_dir.resolve(), out_dir.resolve()
    if source.is_dir() and (target == source or (recursive and source in target.parents)):
        raise UsageError(
            f"out_dir {out_dir} is the input folder {input_dir} or inside it",
            hint="choose an output folder outside the input folder",
            settings=("out_dir",),
        )


def check_unique_outputs(jobs: Sequence[Any], outputs: Callable[[Any], Iterable[Path]]) -> None:
    """Raise UsageError when two inputs would write the same output file (e.g. a.jpg and a.png)."""
    owner: dict[Path, Any] = {}
    for job in jobs:
        for path in outputs(job):
            if path in owner:
                raise UsageError(
                    f"{owner[path]} and {job} would both write {path}",
                    hint="rename one of them or give ext so that names differ",
                    settings=("ext",),
                )
            owner[path] = job


def _outputs_exist(job: Any) -> bool:
    return all(path.is_file() for path in job.outputs)


def run_with_manifest(
    jobs: Sequence[Any],
    worker: Callable[..., Any],
    manifest: Path,
    rows: Callable[[Any], Iterable[Mapping[str, Any]]],
    *,
    workers: int,
    description: str,
    quiet: bool,
    skip_existing: bool,
) -> BatchReport:
    """Run folder jobs (each with ``.outputs``) and write the manifest rows of the done and skipped ones.

    Args:
        jobs: the planned jobs; two writing the same output stop the run first.
        worker: module-level function of one job, called with ``workers=`` (picklable).
        manifest: the JSON-lines manifest to write.
        rows: a job's manifest rows.
        workers: processes.
        description: progress-bar label.
        quiet: no progress bar.
        skip_existing: skip the jobs whose outputs all exist.
    """
    check_unique_outputs(jobs, lambda job: job.outputs)
    report = run_batch(
        jobs,
        partial(worker, workers=workers),
        workers=workers,
        description=description,
        quiet=quiet,
        skip=_outputs_exist if skip_existing else None,
    )
    finished = {result.item for result in report.results if result.status != "failed"}
    write_manifest(manifest, (row for job in jobs if str(job) in finished for row in rows(job)))
    return report


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (the file name when ``root`` is the file)."""
    return path.name if path == root else path.relative_to(root).as_posix()


def opencv_threads_for(workers: int) -> None:
    """In a batch worker process (one of several), keep OpenCV to one thread: the processes fill the cores.

    Does nothing in the calling process, so a user's OpenCV settings are never changed.
    """
    if workers > 1 and multiprocessing.parent_process() is not None:
        cv2.setNumThreads(1)


__all__ = [
    "check_out_dir",
    "check_unique_outputs",
    "image_seed",
    "opencv_threads_for",
    "read_manifest",
    "relative_name",
    "run_with_manifest",
    "write_manifest",
]
