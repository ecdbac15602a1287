"""Contact sheets: a few inputs and their outputs side by side, with labels (``--preview PNG``).

A sheet is a grid: one row per input image, one labelled tile per picture (the input and
what the command made of it), so a user can check settings on a handful of images before
processing thousands. Tiles keep the aspect ratio and are letter-boxed on dark grey.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from minerrestore.io import write_image

Tile = tuple[str, np.ndarray]
"""A label (ASCII) and an HxW or HxWx3 uint8 RGB picture."""

_BACKGROUND = 32  # grey level around and between tiles
_LABEL_LINES = 2
_LINE_HEIGHT = 14
_LABEL_HEIGHT = _LABEL_LINES * _LINE_HEIGHT + 2
_GAP = 4
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """Scale ``image`` to fit a tile x tile square, centred on the background."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    height, width = image.shape[:2]
    scale = tile / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST  # nearest: show real pixels
    resized = cv2.resize(image[..., :3], new_size, interpolation=interpolation)
    canvas = np.full((tile, tile, 3), _BACKGROUND, np.uint8)
    top, left = (tile - new_size[1]) // 2, (tile - new_size[0]) // 2
    canvas[top : top + new_size[1], left : left + new_size[0]] = resized
    return canvas


def _fits(text: str, width: int) -> bool:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0] <= width - 4


def _label(text: str, width: int) -> np.ndarray:
    """A strip with ``text`` in white, wrapped on spaces to two lines, shortened with '..' if longer."""
    strip = np.full((_LABEL_HEIGHT, width, 3), _BACKGROUND, np.uint8)
    lines = [""]
    for word in text.encode("ascii", "replace").decode("ascii").split():
        candidate = f"{lines[-1]} {word}".strip()
        if _fits(candidate, width) or not lines[-1]:
            lines[-1] = candidate
        elif len(lines) < _LABEL_LINES:
            lines.append(word)
        else:
            lines[-1] = candidate
            break
    for number, line in enumerate(lines):
        while len(line) > 2 and not _fits(line, width):
            line = line[:-3] + ".."
        baseline = (number + 1) * _LINE_HEIGHT - 3
        cv2.putText(strip, line, (2, baseline), _FONT, _FONT_SCALE, (235, 235, 235), 1, cv2.LINE_AA)
    return strip


def contact_sheet(rows: Sequence[Sequence[Tile]], tile: int = 192) -> np.ndarray:
    """Lay out labelled pictures in a grid.

    Args:
        rows: one sequence of (label, picture) per row; rows may differ in length.
        tile: side of each square tile in pixels.

    Returns:
        HxWx3 uint8 RGB sheet.
    """
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    columns = max(len(row) for row in rows)
    cell_height = _LABEL_HEIGHT + tile
    sheet = np.full((len(rows) * (cell_height + _GAP) + _GAP, columns * (tile + _GAP) + _GAP, 3), _BACKGROUND, np.uint8)
    for r, row in enumerate(rows):
        for c, (text, image) in enumerate(row):
            top, left = _GAP + r * (cell_height + _GAP), _GAP + c * (tile + _GAP)
            sheet[top : top + _LABEL_HEIGHT, left : left + tile] = _label(text, tile)
            sheet[top + _LABEL_HEIGHT : top + cell_height, left : left + tile] = _fit(image, tile)
    return sheet


def write_contact_sheet(
    path: str | Path, rows: Sequence[Sequence[Tile]], tile: int = 192, protect: Iterable[str | Path] = ()
) -> Path:
    """Build a :func:`contact_sheet` and write it atomically to ``path`` (never over a ``protect`` path)."""
    return write_image(path, contact_sheet(rows, tile), protect=protect)


__all__ = ["Tile", "contact_sheet", "write_contact_sheet"]
