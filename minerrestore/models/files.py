"""Model files on disk: where they are looked for, how they load safely, their SHA-256.

The names, purposes, licences, URLs and checksums of the files live in
:mod:`minerrestore.models.catalogue`; this module finds a catalogue entry's file, checks it
and loads it. Nothing is downloaded here (``minerrestore weights download``, on request only:
:mod:`minerrestore.models.download`). A file is either shipped in the repository's
``weights/`` folder (small, permissive licence, provenance in ``weights/README.md``), shipped
inside an installed package, or supplied by the user; when a needed file is missing,
:func:`find` raises a :class:`~minerrestore.errors.WeightsError` that says which file, where to
put it, its official URL and its SHA-256.

Loading is safe, the format read from the file's first bytes: safetensors, or
``torch.load(weights_only=True)``; a pickle that
carries code is refused, never executed. A file with a known checksum is verified once per
process when the catalogue resolves it (:func:`check_sha256`, cached by path, size and
modification time); ``minerrestore weights --verify`` hashes every present file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from minerrestore.errors import WeightsError
from minerrestore.io import atomic_path

if TYPE_CHECKING:  # torch is imported where tensors are loaded, so `minerrestore --help` stays fast
    import torch

    from minerrestore.models.catalogue import ModelEntry

WEIGHTS_ENV = "MINERRESTORE_WEIGHTS"
REPO_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
INSTALLED_WEIGHTS_DIR = Path(sys.prefix) / "share" / "minerrestore" / "weights"
USER_WEIGHTS_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minerrestore" / "weights"

_DIGESTS: dict[tuple[Path, int, int], str] = {}  # (resolved path, size, mtime_ns) -> SHA-256


def search_dirs() -> list[Path]:
    """Folders searched for model files, in order."""
    dirs = []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]))
    dirs += [REPO_WEIGHTS_DIR, INSTALLED_WEIGHTS_DIR, USER_WEIGHTS_DIR]
    return dirs


def _package_dir(module: str) -> Path | None:
    """Folder of an installed (sub)package, without importing it (None when not installed)."""
    import importlib.util

    top, *rest = module.split(".")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)), *rest)


def locate(entry: ModelEntry) -> Path | None:
    """Path of ``entry``'s file if present in a search folder (or its package), else None."""
    if entry.filename is None:
        return None
    folders = search_dirs()
    if entry.source.startswith("package:"):
        package_dir = _package_dir(entry.source.removeprefix("package:"))
        folders = [package_dir, *folders] if package_dir else folders
    for folder in folders:
        candidate = folder / entry.filename
        if candidate.is_file():
            return candidate
    return None


def find(entry: ModelEntry) -> Path:
    """Path of ``entry``'s file.

    Raises:
        WeightsError: the file is in none of :func:`search_dirs`; the message names the
            file, the folders, the official URL and the SHA-256.
    """
    path = locate(entry)
    if path is not None:
        return path
    where = ", ".join(str(d) for d in search_dirs())
    if entry.source == "shipped":
        raise WeightsError(
            f"model file {entry.filename} ({entry.purpose}) not found: it ships with minerrestore",
            hint=f"reinstall minerrestore (the file is in the repository's weights/ folder, SHA-256 {entry.sha256}), "
            f"or put it in one of: {where}",
        )
    checksum = entry.sha256 or "not published upstream"
    fetch = f"run `minerrestore weights download {entry.name}`, or " if entry.is_downloadable else ""
    raise WeightsError(
        f"model file {entry.filename} ({entry.purpose}) not found",
        hint=f"{fetch}download it from {entry.url} (SHA-256 {checksum}, licence: {entry.license}) "
        f"and put it in one of: {where}; or set {WEIGHTS_ENV} to its folder",
    )


def sha256_digest(path: str | Path, chunk_size: int = 1 << 20) -> hashlib._Hash:
    """A SHA-256 hash object fed with a file's bytes (to continue with more, as a resumed download)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest


def sha256_of(path: str | Path) -> str:
    """Full SHA-256 hex digest of a file."""
    return sha256_digest(path).hexdigest()


def cached_sha256(path: str | Path) -> str:
    """:func:`sha256_of`, computed once per file version (resolved path, size, mtime) and process."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (resolved, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(resolved)
    return _DIGESTS[key]


def check_sha256(entry: ModelEntry, path: str | Path) -> None:
    """Check ``path`` against ``entry``'s SHA-256 (no-op when none is known; cached per file).

    Raises:
        WeightsError: the digest differs; the message names the file, both digests and the fix.
    """
    if entry.sha256 is None:
        return
    actual = cached_sha256(path)
    if actual == entry.sha256:
        return
    if entry.source == "shipped":
        fix = "reinstall minerrestore (or `git checkout weights/` in the repository)"
    elif entry.source.startswith("package:"):
        fix = f"reinstall the package that ships it ({entry.url})"
    else:
        fix = f"replace it with the official file from {entry.url}"
    raise WeightsError(
        f"{path}: SHA-256 {actual} differs from the {entry.name} file's {entry.sha256} (corrupt or another version)",
        hint=fix,
    )


def sniff_format(path: str | Path) -> str:
    """What a model file is by its first bytes, whatever its name.

    Returns:
        ``safetensors``, ``zip`` (PyTorch's zip checkpoint), ``pickle`` (PyTorch's legacy
        format or a plain pickle) or ``unknown``.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
        size = os.fstat(handle.fileno()).st_size
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in {bytes([n]) for n in range(2, 6)}:
        return "pickle"
    return "unknown"


def _pickled_globals(path: Path, kind: str) -> list[str]:
    """The Python names a checkpoint's pickle refers to, other than torch's own, read without unpickling."""
    import io
    import pickletools
    import zipfile

    found: list[str] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                member = next(name for name in archive.namelist() if name.endswith("data.pkl"))
                stream = io.BytesIO(archive.read(member))
        else:
            stream = io.BytesIO(path.read_bytes())
        while stream.tell() < len(stream.getbuffer()):  # the legacy format is several pickles in a row
            strings: list[str] = []
            for opcode, argument, _ in pickletools.genops(stream):
                if isinstance(argument, str):
                    strings.append(argument)
                if opcode.name in ("GLOBAL", "INST"):
                    found.append(str(argument).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # the tensor bytes after the pickles, or a corrupt file: keep what was read
        pass
    return sorted({name for name in found if not name.startswith(("torch.", "collections.OrderedDict"))})


def load_state_dict(path: str | Path) -> dict[str, object]:
    """Load a checkpoint without executing code.

    The format is recognised by content (:func:`sniff_format`), not by the file's name:
    safetensors files load with safetensors; PyTorch checkpoints with
    ``torch.load(weights_only=True)``, which accepts tensors, containers and plain
    values and refuses any other pickled object.

    Returns:
        The loaded mapping (for ``.pth`` files this may be nested, e.g. ``{"params_ema": ...}``).

    Raises:
        WeightsError: missing file, a file of no model format, a pickle that carries code,
            or a corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such model file")
    kind = sniff_format(path)
    if kind == "unknown":
        raise WeightsError(
            f"{path}: not a model file (neither safetensors nor a PyTorch checkpoint)",
            hint="give a .safetensors or .pth file written by PyTorch or minerrestore export",
        )
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from exc
    import torch

    try:
        with open(path, "rb") as handle:  # a handle: torch.load would go by a .safetensors name
            loaded = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _pickled_globals(path, kind)
        if not names:  # no Python object is named: a corrupt or unsupported pickle, not code
            raise WeightsError(f"{path}: not a readable PyTorch checkpoint (an unsupported or corrupt pickle)") from exc
        raise WeightsError(
            f"{path}: refused to load, the file contains pickled code or objects, not only weights "
            f"({', '.join(names[:3])})",
            hint="convert it to safetensors in a trusted environment, or obtain the official file",
        ) from exc
    except Exception as exc:  # a truncated zip or pickle fails in many ways; none of them is code
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: expected a state dict (a mapping), found {type(loaded).__name__}")
    return dict(loaded)


def save_state_dict(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save tensors as safetensors, atomically (contiguous CPU copies; shared storage is split)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as temp:
        save_file(tensors, str(temp), metadata=dict(metadata or {}))
    return Path(path)
