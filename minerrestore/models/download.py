"""``minerrestore weights download``: official model files on demand, verified, resumable.

Only when asked (never at restore time): a catalogue entry whose URL is the file itself
(:attr:`~minerrestore.models.catalogue.ModelEntry.is_downloadable`) is fetched from that URL,
or from a mirror (``mirror`` / ``MINERRESTORE_MIRROR``: an internal HTTP server or a local
folder, ``file://``, holding the same file names), into the download folder (the first writable
of ``MINERRESTORE_WEIGHTS`` and the user folder ``~/.cache/minerrestore/weights``, then the
installed folder; the repository's ``weights/`` holds shipped files only). The bytes stream
into ``<file>.part`` with a progress bar; a later run resumes it with an HTTP Range request; the
SHA-256 is checked before the file is renamed into place (atomic); a mismatch deletes the
partial file. urllib honours ``HTTP(S)_PROXY`` / ``NO_PROXY``. A file without a known SHA-256
downloads only with ``allow_unknown_hash`` and the digest it got is reported.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from minerrestore.errors import DownloadError, Interrupted, MinerRestoreError, UsageError
from minerrestore.models import files

if TYPE_CHECKING:
    from minerrestore.models.catalogue import ModelEntry

MIRROR_ENV = "MINERRESTORE_MIRROR"
DEFAULT_TIMEOUT = 30.0
PART_SUFFIX = ".part"
_CHUNK = 1 << 16

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) as a download advances."""


def mirror_base(mirror: str | None = None) -> str | None:
    """The mirror's base URL: ``mirror``, else ``MINERRESTORE_MIRROR``; a local folder becomes ``file://``."""
    base = mirror or os.environ.get(MIRROR_ENV) or None
    if base is None:
        return None
    if "://" not in base:
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/")


def download_url(entry: ModelEntry, mirror: str | None = None) -> str:
    """Where ``entry``'s file comes from: ``<mirror>/<file name>``, or the official URL."""
    base = mirror_base(mirror)
    return f"{base}/{entry.filename}" if base else entry.url


def download_dir() -> Path:
    """The first writable download folder (created if needed).

    Raises:
        DownloadError: none is writable.
    """
    candidates = [Path(os.environ[files.WEIGHTS_ENV])] if os.environ.get(files.WEIGHTS_ENV) else []
    candidates += [files.USER_WEIGHTS_DIR, files.INSTALLED_WEIGHTS_DIR]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise DownloadError(
        f"no writable weights folder among {', '.join(map(str, candidates))}",
        hint=f"set {files.WEIGHTS_ENV} to a writable folder",
    )


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download` did for one file.

    Attributes:
        name: catalogue name.
        path: the verified file.
        sha256: its digest.
        status: ``present`` (already there and verified) or ``downloaded``.
        source: the URL it came from (None when present).
        resumed_from: bytes of an earlier partial download kept (0: from the start).
        verified: the digest matched a known SHA-256 (False: none is known).
    """

    name: str
    path: Path
    sha256: str
    status: str
    source: str | None = None
    resumed_from: int = 0
    verified: bool = True

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {**self.__dict__, "path": str(self.path)}


def download(
    entry: ModelEntry,
    *,
    mirror: str | None = None,
    folder: Path | None = None,
    allow_unknown_hash: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> Downloaded:
    """Fetch ``entry``'s file unless it is present and verified.

    Args:
        entry: a downloadable catalogue entry.
        mirror: base URL or folder of a mirror (default: ``MINERRESTORE_MIRROR``, else the official URL).
        folder: where the file goes (default: :func:`download_dir`).
        allow_unknown_hash: download a file whose SHA-256 is not known (its digest is reported).
        timeout: seconds without an answer before giving up.
        progress: called as bytes arrive.

    Raises:
        UsageError: not downloadable, or no known SHA-256 without ``allow_unknown_hash``.
        DownloadError: offline, HTTP error, interrupted (the partial file stays for a resume),
            or a SHA-256 mismatch (the partial file is deleted).
    """
    if not entry.is_downloadable:
        why = "no direct download URL" if entry.source == "user" else f"source {entry.source}, not a download"
        raise UsageError(f"{entry.name} is not downloaded: {why} ({entry.url})")
    if entry.sha256 is None and not allow_unknown_hash:
        raise UsageError(
            f"{entry.name} has no published SHA-256 to verify a download against",
            hint="add allow_unknown_hash to download it unverified (the SHA-256 it got is printed)",
            settings=("allow_unknown_hash",),
        )
    present = files.locate(entry)
    if present is not None:
        digest = files.cached_sha256(present)
        if entry.sha256 in (None, digest):
            return Downloaded(entry.name, present, digest, "present", verified=entry.sha256 is not None)
    folder = folder or download_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / str(entry.filename)
    part = target.with_name(target.name + PART_SUFFIX)
    url = download_url(entry, mirror)
    resumed_from, digest = _fetch(url, part, timeout, progress)
    if entry.sha256 is not None and digest != entry.sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: SHA-256 {digest} differs from the published {entry.sha256} of {entry.name}; "
            "the partial file was deleted",
            hint="the server holds another file under this name; check the mirror or try again",
        )
    os.replace(part, target)
    return Downloaded(entry.name, target, digest, "downloaded", url, resumed_from, entry.sha256 is not None)


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None) -> tuple[int, str]:
    """Stream ``url`` into ``part``, resuming it; (bytes kept from before, SHA-256 of the whole)."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "minerrestore"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file already is whole
            return offset, files.sha256_of(part)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}", hint="check the URL or the mirror") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, FileNotFoundError):
            raise DownloadError(f"{url}: no such file on the mirror", hint="copy the file there") from exc
        raise DownloadError(
            f"could not reach {url} ({reason}): offline, or no answer within {timeout:g} s",
            hint="behind a proxy set HTTPS_PROXY; without internet give mirror (an internal server or folder)",
            settings=("mirror",),
        ) from exc
    with response:
        if offset and getattr(response, "status", None) != 206:
            offset = 0  # the server ignored the range: start over
        digest = files.sha256_digest(part) if offset else hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = offset
        with open(part, "ab" if offset else "wb") as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received, total)
            except (OSError, http.client.HTTPException) as exc:
                raise _interrupted(url, received, exc) from exc
    if total is not None and received < total:
        raise _interrupted(url, received, f"{total - received} bytes missing")
    return offset, digest.hexdigest()


def _interrupted(url: str, received: int, reason: object) -> DownloadError:
    return DownloadError(
        f"{url}: transfer interrupted after {received} bytes ({reason})",
        hint="run the same command again to resume where it stopped",
    )


@dataclass
class DownloadReport:
    """What :func:`download_weights` did: the files got or present, the failures, the skipped names."""

    done: list[Downloaded] = field(default_factory=list)
    failed: dict[str, MinerRestoreError] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        failed = {name: str(error) for name, error in self.failed.items()}
        return {"done": [item.to_dict() for item in self.done], "failed": failed, "skipped": self.skipped}


def download_weights(
    names: Iterable[str] = (),
    *,
    everything: bool = False,
    mirror: str | None = None,
    allow_unknown_hash: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    quiet: bool = False,
) -> DownloadReport:
    """Download catalogue files by name (or ``everything`` downloadable), one failure not stopping the rest.

    With ``everything``, files without a known SHA-256 are skipped unless ``allow_unknown_hash``.

    Raises:
        UsageError: no names, unknown names, or a named file that cannot be downloaded.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from minerrestore.models.catalogue import entries, get_entry

    names = list(names)
    if everything == bool(names):
        raise UsageError("give model names or all, not both nor neither", settings=("all",))
    report = DownloadReport()
    if everything:
        chosen = [entry for entry in entries() if entry.is_downloadable]
        for entry in chosen:
            if entry.sha256 is None and not allow_unknown_hash:
                report.skipped[entry.name] = "no published SHA-256 (allow_unknown_hash downloads it)"
        chosen = [entry for entry in chosen if entry.name not in report.skipped]
    else:
        chosen = list(dict.fromkeys(get_entry(name) for name in names))
        for entry in chosen:  # refuse up front, before anything is fetched
            if not entry.is_downloadable or (entry.sha256 is None and not allow_unknown_hash):
                download(entry, allow_unknown_hash=allow_unknown_hash)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet, transient=True) as bar:
        for entry in chosen:
            task = bar.add_task(entry.name, total=None)

            def advance(done: int, total: int | None, task: int = task) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report.done.append(
                    download(
                        entry, mirror=mirror, allow_unknown_hash=allow_unknown_hash, timeout=timeout, progress=advance
                    )
                )
            except MinerRestoreError as exc:
                report.failed[entry.name] = exc
            except KeyboardInterrupt:
                raise Interrupted(
                    f"download of {entry.name} interrupted by Ctrl-C; its partial file is kept",
                    hint="run the same command again to resume",
                ) from None
            bar.remove_task(task)
    return report


__all__ = [
    "DEFAULT_TIMEOUT",
    "MIRROR_ENV",
    "DownloadReport",
    "Downloaded",
    "download",
    "download_dir",
    "download_url",
    "download_weights",
    "mirror_base",
]
