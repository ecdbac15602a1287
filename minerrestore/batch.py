"""Batch processing of many files: the conventions every folder command shares.

:func:`run_batch` calls ``process(item)`` for every item in the given (sorted) order,
in this process or in worker processes, shows a rich progress bar with rate and ETA
on stderr, reports a failed item in one line and goes on, and returns a
:class:`BatchReport` whose :attr:`~BatchReport.exit_code` is 0 when every item was done
or skipped and 1 when some failed. Ctrl-C stops the batch; outputs are written
atomically by :mod:`minerrestore.io`, so nothing half-written stays behind, and
``--skip-existing`` resumes.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from minerrestore.errors import EXIT_OK, EXIT_SOME_FAILED, Interrupted, MinerRestoreError

Status = Literal["done", "failed", "skipped"]
Outcome = tuple[Status, float, "str | None", dict]
"""What a worker sends back for one item: status, seconds, error message, info."""

stderr_console = Console(stderr=True)
"""Console for progress, warnings and summaries (stdout is kept for data)."""


@dataclass
class ItemResult:
    """Outcome of one item: its name, status, seconds spent, error message and returned info."""

    item: str
    status: Status
    seconds: float = 0.0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchReport:
    """All item results of a batch, in input order, and what the batch wrote.

    ``written`` lists the outputs for a command's ``wrote ...`` lines (folders end in ``/``);
    it is not part of :meth:`to_dict`. A command may add ``extra`` (JSON-ready, merged into
    :meth:`to_dict`), ``columns`` (more cells of the summary table) and ``notes`` (lines
    printed under it, e.g. ``no face found: photo.jpg``).
    """

    description: str
    results: list[ItemResult]
    seconds: float
    written: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _with(self, status: Status) -> list[ItemResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[ItemResult]:
        """Items processed successfully."""
        return self._with("done")

    @property
    def failed(self) -> list[ItemResult]:
        """Items whose processing raised."""
        return self._with("failed")

    @property
    def skipped(self) -> list[ItemResult]:
        """Items skipped because their outputs already existed."""
        return self._with("skipped")

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 otherwise."""
        return EXIT_SOME_FAILED if self.failed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with every item."""
        return {
            "description": self.description,
            "done": len(self.done),
            "failed": len(self.failed),
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            **self.extra,
            "items": [asdict(r) for r in self.results],
        }

    def print_summary(self, console: Console | None = None) -> None:
        """Print the end-of-run table (and the failed files) to ``console`` (stderr by default)."""
        console = console or stderr_console
        table = Table(title=self.description or None, show_header=True)
        for column in ("done", "failed", "skipped", "seconds", "items/s", *self.columns):
            table.add_column(column, justify="right")
        rate = len(self.done) / self.seconds if self.seconds > 0 else 0.0
        table.add_row(
            str(len(self.done)),
            str(len(self.failed)),
            str(len(self.skipped)),
            f"{self.seconds:.1f}",
            f"{rate:.2f}",
            *self.columns.values(),
        )
        console.print(table)
        for line in self.notes:
            console.print(line, highlight=False, soft_wrap=True, markup=False)
        for result in self.failed:
            console.print(f"[red]failed[/red] {result.error}", highlight=False, soft_wrap=True)


def _guarded(process: Callable[[Any], dict[str, Any] | None], item: Any) -> Outcome:
    """Run ``process(item)``, turning an exception into a one-line message (picklable result)."""
    start = time.perf_counter()
    try:
        info = process(item) or {}
    except MinerRestoreError as exc:
        message = str(exc)
        if str(item) not in message:
            message = f"{item}: {message}"
        return "failed", time.perf_counter() - start, message, {}
    except Exception as exc:  # a bug or an unexpected library error: report it, go on
        return "failed", time.perf_counter() - start, f"{item}: {type(exc).__name__}: {exc}", {}
    return "done", time.perf_counter() - start, None, info


def progress_bar(quiet: bool) -> Progress:
    """The rich progress bar every batch uses (stderr, rate, elapsed time, ETA)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        disable=quiet,
        transient=False,
    )


def run_batch(
    items: Sequence[Any],
    process: Callable[[Any], dict[str, Any] | None],
    *,
    workers: int = 1,
    description: str = "processing",
    quiet: bool = False,
    skip: Callable[[Any], bool] | None = None,
) -> BatchReport:
    """Process ``items`` one by one (or in ``workers`` processes), never stopping on a failure.

    Args:
        items: the work list, already in the order wanted (e.g. sorted paths).
        process: called with one item; returns optional info for the report. Must be
            picklable (a module-level function or a functools.partial of one) when
            ``workers > 1``.
        workers: number of worker processes; 1 runs in this process.
        description: label of the progress bar and the summary.
        quiet: hide the progress bar and the per-failure lines.
        skip: predicate; items for which it returns True are reported as skipped
            (used for ``--skip-existing``).

    Returns:
        The :class:`BatchReport`, results in the order of ``items``.
    """
    start = time.perf_counter()
    results: list[ItemResult | None] = [None] * len(items)
    todo: list[int] = []
    for index, item in enumerate(items):
        if skip is not None and skip(item):
            results[index] = ItemResult(str(item), "skipped")
        else:
            todo.append(index)

    with progress_bar(quiet) as progress:
        task = progress.add_task(description, total=len(todo), rate="")
        finished = 0

        def record(index: int, outcome: Outcome) -> None:
            nonlocal finished
            status, seconds, error, info = outcome
            results[index] = ItemResult(str(items[index]), status, seconds, error, info)
            if status == "failed" and not quiet:
                progress.console.print(f"[red]failed[/red] {error}", highlight=False, soft_wrap=True)
            finished += 1
            elapsed = time.perf_counter() - start
            progress.update(task, advance=1, rate=f"{finished / elapsed:.2f} it/s" if elapsed > 0 else "")

        try:
            if workers <= 1 or len(todo) <= 1:
                for index in todo:
                    record(index, _guarded(process, items[index]))
            else:
                _run_in_pool(items, todo, process, workers, record)
        except KeyboardInterrupt:
            interrupted = Interrupted(
                f"{description}: interrupted by Ctrl-C after {finished} of {len(todo)} item(s); finished outputs kept",
                hint="run the same command again with skip_existing to continue",
                settings=("skip_existing",),
            )
            interrupted.report = BatchReport(
                description, [r for r in results if r is not None], time.perf_counter() - start
            )
            raise interrupted from None

    return BatchReport(description, [r for r in results if r is not None], time.perf_counter() - start)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Worker start method: a fork server that preloads nothing where available, else spawn.

    Both are safe with torch/OpenMP state in the parent. The fork server does not re-import
    the ``minerrestore`` console script (and with it torch) in every worker, as spawn does;
    a worker imports only the modules its ``process`` function needs.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([])
        return context
    return multiprocessing.get_context("spawn")


def _run_in_pool(
    items: Sequence[Any],
    todo: list[int],
    process: Callable[[Any], dict[str, Any] | None],
    workers: int,
    record: Callable[[int, Outcome], None],
) -> None:
    """Keep at most ``2 * workers`` items in flight so memory stays bounded on huge batches."""
    context = _worker_context()
    pending: dict[Future, int] = {}
    queue = iter(todo)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for index in queue:
                pending[pool.submit(_guarded, process, items[index])] = index
                if len(pending) >= 2 * workers:
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    record(pending.pop(future), future.result())
                    next_index = next(queue, None)
                    if next_index is not None:
                        pending[pool.submit(_guarded, process, items[next_index])] = next_index
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
