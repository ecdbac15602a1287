"""Restore image files and folders into output folders: the file side of ``minerrestore restore``.

:func:`restore_paths` restores files and folders with a :class:`~minerrestore.restore.Restorer`
into ``restored_imgs/``, ``restored_faces/``, ``cropped_faces/`` and ``cmp/`` of an output
folder with the batch conventions of :mod:`minerrestore.batch` (progress, per-file errors,
``skip_existing`` resume), writes ``report.json`` atomically and returns the batch report with
what it wrote. Under ``torchrun --nproc_per_node=N`` each process takes every N-th file and
rank 0 merges the reports. Written for minerrestore (MIT).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minerrestore.batch import BatchReport, run_batch, stderr_console
from minerrestore.distributed import distributed_env, gather_reports, local_rank_env, merge_reports, shard
from minerrestore.errors import Interrupted, UsageError
from minerrestore.io import (
    IMAGE_SUFFIXES,
    MAX_OUTPUT_PIXELS_ENV,
    atomic_write_text,
    check_output_folder,
    image_size,
    list_images,
    max_output_pixels,
    read_image,
    write_image,
)
from minerrestore.restore import Restorer, resize_to
from minerrestore.video import VIDEO_FOLDER, VIDEO_SUFFIXES, VideoOptions, is_video, restore_video_file

INPUT_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
"""What restore takes from a folder: images and videos."""

SAVE_KINDS = ("restored_imgs", "restored_faces", "cropped_faces", "cmp")
"""Output sub-folders: whole restored photos, restored aligned faces, aligned input faces,
input | output side by side."""

DEFAULT_SAVE = ("restored_imgs",)
OUTPUT_EXTENSIONS = ("auto", "png", "jpg")
REPORT_NAME = "report.json"

_NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class ImageTask:
    """One input file and the stem of its outputs (its path relative to the input root, no suffix)."""

    path: Path
    stem: str

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class OutputLayout:
    """Where the outputs of an image go.

    Attributes:
        out_dir: the output folder.
        save: sub-folders written, a subset of :data:`SAVE_KINDS`.
        ext: ``auto`` (restored photo in the input's format, PNG when it has alpha; faces and
            cmp in PNG), ``png`` or ``jpg``.
        suffix: appended to output names as ``_<suffix>``.
    """

    out_dir: Path
    save: tuple[str, ...] = DEFAULT_SAVE
    ext: str = "auto"
    suffix: str | None = None

    def _name(self, stem: str, index: int | None, extension: str, suffixed: bool = True) -> str:
        name = stem if index is None else f"{stem}_{index:02d}"
        if suffixed and self.suffix:
            name += f"_{self.suffix}"
        return name + extension

    def image_path(self, task: ImageTask, has_alpha: bool = False) -> Path:
        """Path of the restored photo."""
        if self.ext != "auto":
            extension = f".{self.ext}"
        else:
            extension = task.path.suffix.lower()
            if extension not in IMAGE_SUFFIXES or (has_alpha and extension in _NO_ALPHA_SUFFIXES):
                extension = ".png"
        return self.out_dir / "restored_imgs" / self._name(task.stem, None, extension)

    def face_path(self, kind: str, task: ImageTask, index: int) -> Path:
        """Path of face ``index`` in ``restored_faces`` or ``cropped_faces``."""
        extension = ".png" if self.ext == "auto" else f".{self.ext}"
        return self.out_dir / kind / self._name(task.stem, index, extension, suffixed=kind == "restored_faces")

    def cmp_path(self, task: ImageTask) -> Path:
        """Path of the side-by-side comparison."""
        extension = ".png" if self.ext == "auto" else f".{self.ext}"
        return self.out_dir / "cmp" / self._name(task.stem, None, extension)

    def video_path(self, task: ImageTask) -> Path:
        """Path of a restored video (in the input's container)."""
        return self.out_dir / VIDEO_FOLDER / self._name(task.stem, None, task.path.suffix.lower())

    def is_done(self, task: ImageTask, previous: Mapping[str, Any] | None = None) -> bool:
        """Whether every output asked for exists for ``task`` (``skip_existing``).

        A video is done when its restored video exists. For a photo, the restored photo (in
        either format ``auto`` may have chosen) and the comparison are checked by name; faces
        only when ``previous`` (the image's entry in an earlier report) says how many there
        were, else the image is redone.
        """
        if is_video(task.path):
            return self.video_path(task).exists()
        if "restored_imgs" in self.save and not any(
            self.image_path(task, has_alpha).exists() for has_alpha in (False, True)
        ):
            return False
        if "cmp" in self.save and not self.cmp_path(task).exists():
            return False
        face_kinds = [kind for kind in self.save if kind in ("cropped_faces", "restored_faces")]
        if not face_kinds:
            return True
        faces = ((previous or {}).get("info") or {}).get("faces")
        if not isinstance(faces, list):
            return False
        return all(self.face_path(kind, task, index).exists() for kind in face_kinds for index in range(len(faces)))


def parse_save(save: str | Iterable[str]) -> tuple[str, ...]:
    """``restored_imgs,cmp`` (or ``all``) -> a tuple of :data:`SAVE_KINDS`, in their order.

    Raises:
        UsageError: an unknown or empty selection.
    """
    names = [part.strip() for part in (save.split(",") if isinstance(save, str) else save) if part.strip()]
    if names == ["all"]:
        return SAVE_KINDS
    unknown = [name for name in names if name not in SAVE_KINDS]
    if unknown or not names:
        raise UsageError(
            f"save {','.join(names)!r} names no known output" + (f" ({', '.join(unknown)})" if unknown else ""),
            hint=f"choose from {','.join(SAVE_KINDS)} or all",
            settings=("save",),
        )
    return tuple(kind for kind in SAVE_KINDS if kind in names)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def collect_tasks(inputs: Sequence[str | Path], out_dir: Path, recursive: bool = False) -> list[ImageTask]:
    """The images of ``inputs`` (files and folders), sorted, each with a unique output stem.

    Stems are paths relative to the input folder (or to the common folder of listed files);
    inputs whose stems collide (``a.jpg`` and ``a.png``) keep their extension in the stem.
    Files found inside the output sub-folders (earlier outputs) are ignored.

    Raises:
        UsageError: a missing input, no images, or an input named explicitly that lies in an
            output sub-folder.
    """
    output_folders = [_absolute(out_dir).resolve() / kind for kind in (*SAVE_KINDS, VIDEO_FOLDER)]

    def in_outputs(path: Path) -> bool:
        resolved = path.resolve()
        return any(folder == resolved or folder in resolved.parents for folder in output_folders)

    entries: list[tuple[Path, str]] = []  # (file as given, stem)
    loose: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if in_outputs(path):
            raise UsageError(
                f"{item}: input is inside an output folder of {out_dir}",
                hint="choose another out_dir",
                settings=("out_dir",),
            )
        if path.is_dir():
            files = [f for f in list_images(path, recursive, INPUT_SUFFIXES) if not in_outputs(f)]
            entries += [(f, f.relative_to(path).with_suffix("").as_posix()) for f in files]
        elif path.exists():
            loose.append(path)
        else:
            raise UsageError(f"{item}: no such file or folder")
    if loose:
        common = Path(os.path.commonpath([str(_absolute(p).parent) for p in loose]))
        entries += [(p, _absolute(p).relative_to(common).with_suffix("").as_posix()) for p in loose]
    if not entries:
        raise UsageError(
            f"no images found in {', '.join(str(i) for i in inputs) or 'the input list'}",
            hint=f"images and videos end in {', '.join(INPUT_SUFFIXES)}; use recursive for sub-folders",
            settings=("recursive",),
        )
    seen: set[Path] = set()
    unique = []
    for path, stem in sorted(entries, key=lambda entry: str(entry[0])):
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((path, stem))
    counts: dict[str, int] = {}
    for _, stem in unique:
        counts[stem] = counts.get(stem, 0) + 1
    tasks = [ImageTask(p, f"{s}_{p.suffix.lstrip('.').lower()}" if counts[s] > 1 else s) for p, s in unique]
    stems = [task.stem for task in tasks]
    if len(set(stems)) != len(stems):
        clash = next(stem for stem in stems if stems.count(stem) > 1)
        raise UsageError(f"two inputs would write the same outputs {clash}", hint="rename one of them")
    return tasks


def skipped_entries(inputs: Sequence[str | Path], out_dir: Path, recursive: bool = False) -> list[dict[str, str]]:
    """Entries of folder inputs that are not restored: files that are not images, and
    sub-folders when not ``recursive`` (hidden names, among them our temporary files, and
    ``out_dir`` are left out).

    Returns:
        ``{"path": ..., "reason": ...}`` per entry, sorted by path.
    """
    out = _absolute(out_dir)
    entries = []
    for item in inputs:
        folder = Path(item).expanduser()
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("**/*" if recursive else "*")):
            absolute = _absolute(path)
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if hidden or absolute == out or out in absolute.parents:
                continue
            if path.is_dir():
                if not recursive:
                    entries.append({"path": f"{path}/", "reason": "a folder (recursive not set)"})
            elif path.suffix.lower() not in INPUT_SUFFIXES:
                entries.append({"path": str(path), "reason": "not an image or video"})
    return entries


def _face_summary(report: BatchReport, skipped: list[dict[str, str]]) -> None:
    """Count faces per image into ``report``: ``extra`` (report.json), ``columns`` and ``notes``
    (the summary): the images where no face was found and the skipped folder entries."""
    counts = {
        result.item: int(result.info.get("face_count", len(result.info.get("faces", []))))
        for result in report.results
        if result.status != "failed" and result.info
    }
    no_face = [item for item, count in counts.items() if count == 0]
    report.extra.update({"faces": sum(counts.values()), "no_face": no_face, "skipped_entries": skipped})
    report.columns.update({"faces": str(sum(counts.values())), "no face": str(len(no_face))})
    report.notes.extend(f"no face found (nothing restored): {item}" for item in no_face)
    report.notes.extend(f"skipped ({entry['reason']}): {entry['path']}" for entry in skipped)


def check_output_sizes(tasks: Sequence[ImageTask], layout: OutputLayout, upscale: float) -> None:
    """Refuse, before any work, an input whose restored photo (or comparison) would exceed the pixel budget.

    The budget is :func:`~minerrestore.io.max_output_pixels` (``MINERRESTORE_MAX_OUTPUT_PIXELS``);
    sizes come from the files' headers. Unreadable files are left to their per-file error.

    Raises:
        UsageError: naming the first such input, its output size and the budget.
    """
    from minerrestore.face.paste import upscaled_size

    limit = max_output_pixels()
    widest = 2 if "cmp" in layout.save else 1  # the comparison is input | output side by side
    for task in tasks:
        size = image_size(task.path)
        if size is None:
            continue
        height, width = upscaled_size(*size, upscale)
        if height * width * widest > limit:
            what = "its comparison" if height * width <= limit else "the restored photo"
            raise UsageError(
                f"{task.path}: {size[1]}x{size[0]} at upscale {upscale:g} gives {width}x{height}; "
                f"{what} would exceed {limit:,} pixels",
                hint=f"lower upscale, leave cmp out of save, or raise {MAX_OUTPUT_PIXELS_ENV}",
                settings=("upscale", "save"),
            )


@dataclass(frozen=True)
class _FileJob:
    restorer: Restorer
    layout: OutputLayout
    threads: int | None = None  # torch threads in a worker process
    video: VideoOptions = VideoOptions()  # noqa: RUF009 (frozen)
    quiet: bool = True


def _restore_file(job: _FileJob, task: ImageTask) -> dict[str, Any]:
    """Restore one file and write its outputs (restored photo last); the report entry of the file."""
    import torch

    if job.threads is not None and torch.get_num_threads() != job.threads:
        torch.set_num_threads(job.threads)
    layout = job.layout
    if is_video(task.path):
        return restore_video_file(job.restorer, task.path, layout.video_path(task), job.video, job.quiet)
    clock = time.perf_counter()
    loaded = read_image(task.path)
    read_seconds = time.perf_counter() - clock
    result = job.restorer.restore(loaded)
    clock = time.perf_counter()
    protect = (task.path,)
    outputs: dict[str, Any] = {}
    for kind, attribute in (("cropped_faces", "cropped"), ("restored_faces", "restored")):
        if kind in layout.save:
            paths = [layout.face_path(kind, task, face.index) for face in result.faces]
            for path, face in zip(paths, result.faces, strict=True):
                write_image(path, getattr(face, attribute), grey=loaded.is_grey, protect=protect)
            outputs[kind] = [str(path) for path in paths]
    if "cmp" in layout.save:
        pair = np.concatenate([resize_to(loaded.rgb, result.image.shape[:2]), result.image], axis=1)  # input | output
        outputs["cmp"] = str(write_image(layout.cmp_path(task), pair, grey=loaded.is_grey, protect=protect))
    notes = list(loaded.notes)
    if "restored_imgs" in layout.save:
        path = layout.image_path(task, has_alpha=result.alpha is not None)
        if result.alpha is not None and path.suffix.lower() in _NO_ALPHA_SUFFIXES:
            notes.append(f"alpha channel dropped: {path.suffix} cannot store it")
        outputs["restored_imgs"] = str(
            write_image(path, result.image, alpha=result.alpha, grey=loaded.is_grey, protect=protect)
        )
    info = result.to_dict()
    info["timings"] = {
        "read": round(read_seconds, 4),
        **info["timings"],
        "write": round(time.perf_counter() - clock, 4),
    }
    return {**info, "outputs": outputs, "notes": notes}


# ============================================================================ the batch


def _previous_entries(path: Path) -> dict[str, dict[str, Any]]:
    """Entries with info of an earlier report.json by input (for images skipped on resume); {} if unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        items = document.get("items", [])
        return {entry["item"]: entry for entry in items if entry.get("status") != "failed" and entry.get("info")}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return {}


def _output_folders(layout: OutputLayout) -> list[str]:
    """The output sub-folders of ``layout`` that exist, as ``out_dir/kind/``."""
    kinds = (*layout.save, VIDEO_FOLDER)
    return [f"{layout.out_dir / kind}/" for kind in kinds if (layout.out_dir / kind).is_dir()]


def _write_report(
    report: BatchReport,
    previous: Mapping[str, Mapping[str, Any]],
    path: Path,
    header: Mapping[str, Any],
    layout: OutputLayout,
    world: int,
    skipped: list[dict[str, str]],
) -> None:
    """Write ``report.json``: skipped images keep their info from the ``previous`` report; faces
    are counted and the ``skipped`` folder entries listed (:func:`_face_summary`)."""
    for result in report.skipped:
        result.info = dict(previous.get(result.item, {}).get("info", {}))
    _face_summary(report, skipped)
    document = {
        **report.to_dict(),
        **header,
        "world_size": world,
        "save": list(layout.save),
        "ext": layout.ext,
        "suffix": layout.suffix,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def restore_paths(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    restorer: Restorer | None = None,
    save: str | Iterable[str] = DEFAULT_SAVE,
    ext: str = "auto",
    suffix: str | None = None,
    recursive: bool = False,
    skip_existing: bool = False,
    workers: int = 1,
    quiet: bool = False,
    video: VideoOptions = VideoOptions(),  # noqa: B008 (frozen)
) -> BatchReport:
    """Restore image files and folders into ``out_dir``; write ``out_dir/report.json``.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) each process restores every ``WORLD_SIZE``-th
    file and rank 0 writes the merged report.

    Args:
        inputs: a file, a folder, or a list of them.
        out_dir: output folder; sub-folders of ``save`` are created in it.
        restorer: the pipeline settings (default: ``Restorer()``).
        save: sub-folders to write (:data:`SAVE_KINDS`, ``"a,b"`` or ``"all"``).
        ext: ``auto``, ``png`` or ``jpg`` (see :class:`OutputLayout`).
        suffix: appended to restored output names.
        recursive: descend into sub-folders of folder inputs (the structure is mirrored).
        skip_existing: skip images whose restored photo (or first output) already exists.
        workers: processes; 1 (default) lets torch use every core for the network.
        quiet: no progress bar or per-failure lines.
        video: codec, quality and steadying of videos (:mod:`minerrestore.video`).

    Returns:
        The :class:`~minerrestore.batch.BatchReport` (merged over ranks on rank 0); each
        item's ``info`` holds the face count, faces (box, score, landmarks), the low-light
        parameters, timings, outputs and notes; its ``extra`` (also in report.json) the face
        total, ``no_face`` (every image where no face was found: its restored photo is the
        input, enlarged and, if dark, enhanced) and ``skipped_entries`` (folder entries that
        are not images, and sub-folders without ``recursive``); its ``written`` lists the
        output folders (``out_dir/restored_imgs/`` ...) and, on rank 0, ``report.json``.

    Raises:
        UsageError: bad options or inputs. WeightsError: a missing or invalid model file.
    """
    if ext not in OUTPUT_EXTENSIONS:
        raise UsageError(f"ext {ext!r} is not one of {', '.join(OUTPUT_EXTENSIONS)}", settings=("ext",))
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if suffix and any(separator in suffix for separator in ("/", "\\", os.sep)):
        raise UsageError(f"suffix {suffix!r} must not contain a path separator", settings=("suffix",))
    out_dir = Path(out_dir)
    layout = OutputLayout(out_dir, parse_save(save), ext, suffix or None)
    restorer = restorer or Restorer()
    import torch

    rank, world = distributed_env()
    if world > 1 and restorer.device == "auto" and torch.cuda.is_available():
        restorer = dataclasses.replace(restorer, device=f"cuda:{local_rank_env()}")
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    tasks = collect_tasks(inputs, out_dir, recursive)
    check_output_folder(out_dir)
    check_output_sizes(tasks, layout, restorer.upscale)
    skipped = skipped_entries(inputs, out_dir, recursive)
    header = restorer.load().describe()  # fails fast on a missing model, before any file
    threads = max(1, torch.get_num_threads() // workers) if workers > 1 else None
    process = functools.partial(_restore_file, _FileJob(restorer, layout, threads, video, quiet or workers > 1))
    report_path = out_dir / REPORT_NAME
    previous = _previous_entries(report_path) if skip_existing else {}
    skip = (lambda task: layout.is_done(task, previous.get(str(task)))) if skip_existing else None
    description = "restore" if world == 1 else f"restore (rank {rank} of {world})"
    try:
        report = run_batch(
            shard(tasks, rank, world), process, workers=workers, description=description, quiet=quiet, skip=skip
        )
    except Interrupted as interrupted:  # record what finished, so that a resumed run keeps its info
        if world == 1 and interrupted.report is not None:
            _write_report(interrupted.report, previous, report_path, header, layout, world, skipped)
        raise
    if world > 1:
        parts = gather_reports(report, rank, world)
        if parts is None:
            report.written = _output_folders(layout)
            return report
        report = merge_reports(parts, [str(task) for task in tasks], "restore")
    _write_report(report, previous, report_path, header, layout, world, skipped)
    if not quiet and world > 1:
        stderr_console.print(f"report of {world} processes: {report_path}")
    report.written = [*_output_folders(layout), str(report_path)]
    return report


__all__ = [
    "DEFAULT_SAVE",
    "OUTPUT_EXTENSIONS",
    "REPORT_NAME",
    "SAVE_KINDS",
    "ImageTask",
    "OutputLayout",
    "check_output_sizes",
    "collect_tasks",
    "parse_save",
    "restore_paths",
]
