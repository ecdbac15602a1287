"""Error types of minerrestore.

Every error a user can cause (a bad file, a missing model, a wrong option) is a
:class:`MinerRestoreError`. The CLI turns one into a single line on stderr, with
its hint, and exits with :attr:`MinerRestoreError.exit_code`; set
``MINERRESTORE_DEBUG=1`` to see the traceback instead.

Messages name options by their Python names (``ext``, ``skip_existing``), never by
command-line flags: an error lists the names its text mentions in ``settings``, and the
CLI prints each as its flag (``--ext``, ``--skip-existing``; ``out_dir`` is ``--out``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as shells report it."""


class MinerRestoreError(Exception):
    """Base class: a message for the user and an optional hint saying how to fix it.

    Args:
        message: what went wrong.
        hint: how to fix it.
        settings: the parameters or settings that ``message`` and ``hint`` name, written
            there by their Python names, e.g. ``UsageError(f"ext {ext!r} is not one of
            png, jpg", settings=("ext",))``; a boolean by its name alone ("run it again with
            skip_existing"). The CLI shows each name as its flag where it stands as a word
            of its own (after a space or at the start; before a space, the end, or one of
            ``:,;.`` and then a space or the end), so not inside a path, a quoted value, a
            longer name or a config key such as ``train.out_dir=``; the text should
            therefore not use a listed name as a plain word too ("the device count"). A
            flag is the name with dashes (``skip_existing`` -> ``--skip-existing``) unless
            :data:`minerrestore.cli.FLAG_NAMES` says otherwise (``out_dir`` -> ``--out``);
            see :func:`minerrestore.cli.flag_text`.
    """

    exit_code: int = EXIT_SOME_FAILED

    def __init__(self, message: str, hint: str | None = None, *, settings: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.settings = tuple(settings)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(MinerRestoreError):
    """A wrong option, a missing input path, an output that would overwrite an input."""

    exit_code = EXIT_USAGE


class ImageReadError(MinerRestoreError):
    """A file that cannot be read as an image: empty, truncated, corrupt, not an image, too large."""

    def __init__(self, path: str | Path, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{path}: {reason}", hint)
        self.path = Path(path)
        self.reason = reason


class ImageWriteError(MinerRestoreError):
    """An output that cannot be written (bad folder, unsupported extension, disk full)."""


class WeightsError(MinerRestoreError):
    """A model file that is missing, has the wrong checksum, or cannot be loaded safely."""

    exit_code = EXIT_USAGE


class DownloadError(MinerRestoreError):
    """A model file download failed: offline, HTTP error, interrupted, or a SHA-256 mismatch (exit 1)."""


class ConfigError(MinerRestoreError):
    """A configuration file or override that is invalid."""

    exit_code = EXIT_USAGE


class Interrupted(MinerRestoreError):
    """The user stopped a batch with Ctrl-C; finished outputs are kept.

    ``report`` is the batch report of the items that finished before the interrupt (a
    :class:`minerrestore.batch.BatchReport`), or None, so a command can still record them.
    """

    exit_code = EXIT_INTERRUPTED
    report: Any = None
