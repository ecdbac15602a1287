"""Training/validation splits: by sorted names (one folder), or by identity (across folders).

- :func:`split_names`: the last ``fraction`` of the sorted names is held out (``data.split: names``).
- :func:`held_out_identities`: the people held out when training on several folders
  (``data.split: identity``). The first folder is the reference: the last ``fraction`` of its
  sorted identities is held out, exactly the people :func:`split_names` holds out of it (for
  ``../shared/data/faces`` the last 88 names, which the benchmarks treat as never trained on).
  A person absent from the reference is held out when the stable hash of the identity
  string (:func:`identity_hash`: the first 8 bytes of its SHA-256, as a fraction of 2^64) is
  below ``fraction``, about that share of them, independent of the other people, the order
  and the Python process. A held-out person is held out in every folder: their files all go
  to validation, and no training folder shows them.
- :func:`folder_identities`: the identity of each image of a folder: the ``identity`` column of
  the folder's ``manifest.csv`` (its ``file`` column is the path relative to the folder), or
  else the file stem.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from minerrestore.errors import UsageError

IDENTITY_MANIFEST = "manifest.csv"
"""A data folder's optional table of identities: columns ``file`` (relative path) and ``identity``."""

_T = TypeVar("_T")


def split_names(items: Sequence[_T], fraction: float) -> tuple[list[_T], list[_T]]:
    """Sorted-name split: the last ``fraction`` of ``items`` (at least one when asked) goes to validation."""
    items = list(items)
    if fraction <= 0 or len(items) < 2:
        return items, []
    count = min(len(items) - 1, max(1, math.ceil(len(items) * fraction)))
    return items[:-count], items[-count:]


def identity_hash(identity: str) -> float:
    """A stable number in [0, 1) for ``identity``: the first 8 bytes of its SHA-256 over 2^64."""
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out_identities(folders: Sequence[Iterable[str]], fraction: float) -> set[str]:
    """The identities held out for validation, given the identities of each training folder.

    Args:
        folders: the identities of each folder (repeats allowed); the first is the reference.
        fraction: share held out (``data.val_fraction``); 0 holds out nobody.

    Returns:
        The last ``fraction`` of the reference's sorted identities (:func:`split_names`), plus
        every identity of the other folders that is not in the reference and whose
        :func:`identity_hash` is below ``fraction``.
    """
    if fraction <= 0 or not folders:
        return set()
    reference = sorted(set(folders[0]))
    held = set(split_names(reference, fraction)[1])
    others = {identity for folder in folders[1:] for identity in folder} - set(reference)
    return held | {identity for identity in others if identity_hash(identity) < fraction}


def folder_identities(root: Path, paths: Sequence[Path], key: str = "data.train_dir") -> list[str]:
    """The identity of each of ``paths`` (images under ``root``): from ``root/manifest.csv`` or the stem.

    The manifest is used when it has an ``identity`` column; its ``file`` column gives each
    image's path relative to ``root``.

    Raises:
        UsageError: the manifest has an ``identity`` column but no ``file`` column, an empty
            identity, or no row for one of ``paths`` (named by the config ``key``).
    """
    manifest = root / IDENTITY_MANIFEST
    table: dict[str, str] | None = None
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if "identity" in columns:
                if "file" not in columns:
                    raise UsageError(
                        f"{key}: {manifest} has an identity column but no file column",
                        hint="give each row the image's path relative to the folder in a file column",
                    )
                table = {row["file"]: (row["identity"] or "").strip() for row in reader}
    if table is None:
        return [path.stem for path in paths]
    identities = []
    for path in paths:
        name = path.relative_to(root).as_posix()
        identity = table.get(name)
        if not identity:
            raise UsageError(
                f"{key}: {manifest} gives no identity for {name}",
                hint="add the image's row (file,identity) or move the image out of the folder",
            )
        identities.append(identity)
    return identities


__all__ = ["IDENTITY_MANIFEST", "folder_identities", "held_out_identities", "identity_hash", "split_names"]
