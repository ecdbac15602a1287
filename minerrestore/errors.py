"""Error types of minerrestore.

Every error a user can cause (a bad file, a missing model, a wrong option) is a
:class:`MinerRestoreError`. The CLI turns one into a single line on stderr, with
its hint, and exits with :attr:`MinerRestoreError.exit_code`; set
``MINERRESTORE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as shells report it."""


class MinerRestoreError(Exception):
    """Base class: a message for the user and an optional hint saying how to fix it."""

    exit_code: int = EXIT_SOME_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

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


class ConfigError(MinerRestoreError):
    """A configuration file or override that is invalid."""

    exit_code = EXIT_USAGE


class Interrupted(MinerRestoreError):
    """The user stopped a batch with Ctrl-C; finished outputs are kept."""

    exit_code = EXIT_INTERRUPTED
