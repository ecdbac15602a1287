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
from minerrestore.errors import Interrupted, UsageError
from minerrestore.io import atomic_write_text, check_output_folder


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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a JSON-lines manifest (not text)") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
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


def _json_form(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as it reads back from a manifest (tuples become lists), for comparison."""
    return json.loads(json.dumps(row, ensure_ascii=False))


def _describe_difference(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> str:
    """What differs between a source's recorded rows and its planned ones, e.g. ``size 128 -> 64``."""
    if len(old) != len(new):
        return f"{len(old)} recorded output(s) -> {len(new)} planned"
    changes: list[str] = []
    for before, after in zip(old, new, strict=True):
        for key in sorted(set(before) | set(after), key=lambda k: (k == "params", k)):
            if before.get(key) != after.get(key):
                change = f"{key} differ" if key == "params" else f"{key} {before.get(key)!r} -> {after.get(key)!r}"
                if change not in changes:
                    changes.append(change)
    return ", ".join(changes)


def _remove_recorded_outputs(out_dir: Path, recorded: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Delete the outputs that manifest rows list (never anything outside ``out_dir``)."""
    root = out_dir.resolve()
    for row in recorded:
        for key in fields:
            path = (out_dir / str(row.get(key, ""))).resolve()
            if root in path.parents and path.is_file():
                path.unlink()


def claim_out_dir(
    jobs: Sequence[Any],
    rows: Callable[[Any], Iterable[Mapping[str, Any]]],
    manifest: Path,
    fields: Sequence[str],
    *,
    overwrite: bool,
) -> list[dict[str, Any]]:
    """Check that ``jobs`` may write into the folder of ``manifest`` and return the rows to keep.

    The folder's manifest owns it: a source already recorded with other rows (another
    preset, size, split, seed ...) is refused, naming what differs, unless ``overwrite``,
    which first removes every output the manifest lists and the manifest itself. An output
    that exists but no manifest row accounts for is refused too, so a file never lands in
    two splits and a resume never mixes settings.

    Args:
        jobs: the planned jobs (each with ``.outputs``).
        rows: a job's manifest rows.
        manifest: the JSON-lines manifest of the output folder.
        fields: the row keys that hold output paths relative to the folder.
        overwrite: remove the recorded outputs first instead of refusing a different run.

    Returns:
        The recorded rows of sources this run does not plan (kept in the manifest).
    """
    out_dir = manifest.parent
    check_output_folder(out_dir)
    recorded = read_manifest(manifest) if manifest.is_file() else []
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in recorded:
        by_source.setdefault(str(row.get("source")), []).append(row)
    planned: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        job_rows = [_json_form(row) for row in rows(job)]
        if job_rows:
            planned[str(job_rows[0]["source"])] = job_rows
    for source, new_rows in planned.items():
        if not overwrite and source in by_source and by_source[source] != new_rows:
            raise UsageError(
                f"out_dir {out_dir} holds a run with other settings ({source}: "
                f"{_describe_difference(by_source[source], new_rows)}; {manifest.name} records it)",
                hint="choose a new output folder, or add overwrite to remove the old outputs first",
                settings=("out_dir", "overwrite"),
            )
    known = {str(row.get(key)) for row in recorded for key in fields}
    for job in jobs:
        for path in job.outputs:
            if path.is_file() and path.relative_to(out_dir).as_posix() not in known:
                raise UsageError(
                    f"{path} exists but {manifest.name} does not record it",
                    hint="choose a new or empty output folder",
                    settings=("out_dir",),
                )
    if overwrite and recorded:  # only once nothing is refused
        _remove_recorded_outputs(out_dir, recorded, fields)
        manifest.unlink()
        return []
    return [row for row in recorded if str(row.get("source")) not in planned]


def run_with_manifest(
    jobs: Sequence[Any],
    worker: Callable[..., Any],
    manifest: Path,
    rows: Callable[[Any], Iterable[Mapping[str, Any]]],
    *,
    fields: Sequence[str],
    workers: int,
    description: str,
    quiet: bool,
    skip_existing: bool,
    overwrite: bool = False,
) -> BatchReport:
    """Run folder jobs (each with ``.outputs``) and write the manifest rows of the done and skipped ones.

    The output folder is checked first (:func:`claim_out_dir`); the manifest, with the rows
    of every planned job, is written before any image, so an interrupted run is still
    recorded, and rewritten at the end with the rows of earlier runs kept and those of
    failed jobs without outputs dropped.

    Args:
        jobs: the planned jobs; two writing the same output stop the run first.
        worker: module-level function of one job, called with ``workers=`` (picklable).
        manifest: the JSON-lines manifest to write.
        rows: a job's manifest rows.
        fields: the row keys that hold output paths.
        workers: processes.
        description: progress-bar label.
        quiet: no progress bar.
        skip_existing: skip the jobs whose outputs all exist (same settings only).
        overwrite: remove the outputs of a different earlier run first.
    """
    check_unique_outputs(jobs, lambda job: job.outputs)
    kept = claim_out_dir(jobs, rows, manifest, fields, overwrite=overwrite)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, [*kept, *(row for job in jobs for row in rows(job))])

    def record(report: BatchReport) -> None:  # a failed job whose earlier outputs remain keeps its rows
        finished = {result.item for result in report.results if result.status != "failed"}
        done = [job for job in jobs if str(job) in finished or any(path.is_file() for path in job.outputs)]
        write_manifest(manifest, [*kept, *(row for job in done for row in rows(job))])

    try:
        report = run_batch(
            jobs,
            partial(worker, workers=workers),
            workers=workers,
            description=description,
            quiet=quiet,
            skip=_outputs_exist if skip_existing else None,
        )
    except Interrupted as interrupted:
        if interrupted.report is not None:
            record(interrupted.report)
        raise
    record(report)
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
    "claim_out_dir",
    "image_seed",
    "opencv_threads_for",
    "read_manifest",
    "relative_name",
    "run_with_manifest",
    "write_manifest",
]
