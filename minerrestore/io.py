"""Image input and output: the one place where files become arrays and back.

Reading goes through Pillow (every common format, EXIF orientation, palette, CMYK,
16-bit) and returns a :class:`LoadedImage` holding uint8 RGB pixels, the alpha
channel if there was one, and whether the picture is grey. Writing is atomic: the
image is encoded to a temporary file in the destination folder and renamed over the
destination only when complete, so an interrupted run never leaves a half-written
output. A destination that is one of the inputs is refused.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from minerrestore.errors import ImageReadError, ImageWriteError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""File extensions treated as images (lower case)."""

MAX_PIXELS_ENV = "MINERRESTORE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 250_000_000
MAX_OUTPUT_PIXELS_ENV = "MINERRESTORE_MAX_OUTPUT_PIXELS"
"""Environment variable: the most pixels one output image may have (checked before any work)."""
"""Images with more pixels than this are refused (decompression-bomb guard); override with
the environment variable ``MINERRESTORE_MAX_PIXELS``."""

PNG_COMPRESS_LEVEL = 1
"""zlib level for PNG outputs: about 5x faster than Pillow's default 6 for files about 10 % larger."""

_TEMP_PREFIX = ".minerrestore-tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_GREY_TOLERANCE = 2  # max channel difference (0-255) for an RGB picture to count as grey
_EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> the array operation that displays the picture upright
# (the same mapping as Pillow's ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        rgb: HxWx3 uint8 RGB pixels (grey pictures are replicated to three channels).
        alpha: HxW uint8 alpha channel, or None when the file had none.
        is_grey: True when the file is greyscale (mode L/I/1, or RGB with equal channels).
        path: the file it came from, if any.
        notes: conversions applied on reading (16-bit reduced, CMYK converted, rotated ...).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    is_grey: bool = False
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @classmethod
    def from_array(cls, array: np.ndarray, path: Path | None = None, notes: list[str] | None = None) -> LoadedImage:
        """Split a uint8 HxW, HxWx3 or HxWx4 array into RGB, alpha and greyness (the one place that decides).

        An HxW array is grey; an RGB one counts as grey when its channels differ by at most
        2 levels (JPEG chroma noise on a grey photo).
        """
        alpha = None
        if array.ndim == 3 and array.shape[2] == 4:
            alpha = np.ascontiguousarray(array[..., 3])
            array = array[..., :3]
        if array.ndim == 2:
            rgb, is_grey = np.repeat(array[..., None], 3, axis=2), True
        else:
            rgb = np.ascontiguousarray(array)
            is_grey = _rgb_is_grey(rgb)
        return cls(rgb=rgb, alpha=alpha, is_grey=is_grey, path=path, notes=list(notes or []))


def _pixel_limit(variable: str) -> int:
    value = os.environ.get(variable)
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        return int(value)
    except ValueError as exc:
        raise UsageError(f"{variable}={value!r} is not an integer") from exc


def max_pixels() -> int:
    """The pixel-count limit for reading, from ``MINERRESTORE_MAX_PIXELS`` or the default."""
    return _pixel_limit(MAX_PIXELS_ENV)


def max_output_pixels() -> int:
    """The pixel-count limit of one output image, from ``MINERRESTORE_MAX_OUTPUT_PIXELS`` or the default.

    250 million pixels by default: 750 MB as 8-bit RGB, a few times that while it is made.
    """
    return _pixel_limit(MAX_OUTPUT_PIXELS_ENV)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) from an image file's header, without decoding it; None when unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return height, width


def check_output_ext(ext: str, setting: str = "ext") -> str:
    """``ext`` (``png``, ``.JPG`` ...) as a lower-case suffix with its dot, if :func:`write_image` can write it.

    Raises:
        UsageError: a format the writer does not support.
    """
    suffix = "." + ext.lstrip(".").lower()
    if suffix not in _PIL_FORMATS:
        raise UsageError(
            f"{setting} {ext!r} is not an output format (use one of {', '.join(_PIL_FORMATS)})", settings=(setting,)
        )
    return suffix


def check_output_folder(path: str | Path, setting: str = "out_dir") -> None:
    """Refuse an output folder that is a file or cannot be written, without creating it.

    Checked before any work so that a long run does not fail at its first write. The probe
    is a temporary file in the folder, or in its nearest existing parent when it does not
    exist yet.

    Raises:
        UsageError: ``path`` (or a parent) is a file, or the folder is not writable.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{setting} {path}: {existing} is a file, not a folder", settings=(setting,))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(
            f"{setting} {path}: cannot write in {existing} ({exc.strerror or exc})",
            hint="choose a writable output folder",
            settings=(setting,),
        ) from None


def _to_uint8_from_16bit(array: np.ndarray) -> np.ndarray:
    """Scale a 16-bit (or 32-bit integer holding 16-bit) array to uint8 with rounding."""
    return np.clip((array.astype(np.float32) / 257.0).round(), 0, 255).astype(np.uint8)


def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as handle:
        header = handle.read(26)
    if len(header) >= 25 and header[:8] == b"\x89PNG\r\n\x1a\n":
        return header[24]
    return None


def _read_16bit_with_opencv(path: Path) -> np.ndarray | None:
    """Decode a 16-bit-per-channel file with OpenCV (Pillow truncates 16-bit RGB)."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16:
        return None
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    if decoded.ndim == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return decoded


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """An HxWx3 RGB image (uint8 or float) with its three channels set to its grey (BT.601 luma).

    Keeps grey photos grey where a network or colour matching may have tinted them.
    """
    import cv2

    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _rgb_is_grey(rgb: np.ndarray) -> bool:
    r, g, b = (rgb[..., c].astype(np.int16) for c in range(3))
    return bool(np.abs(r - g).max() <= _GREY_TOLERANCE and np.abs(g - b).max() <= _GREY_TOLERANCE)


def read_image(path: str | Path) -> LoadedImage:
    """Read an image file into uint8 RGB (+ alpha), applying EXIF orientation.

    Args:
        path: PNG, JPEG, BMP, TIFF or WebP file; any Unicode path.

    Returns:
        The decoded :class:`LoadedImage`.

    Raises:
        ImageReadError: the file is missing, empty, truncated, corrupt, not an image,
            or larger than :func:`max_pixels`.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    limit = max_pixels()
    notes: list[str] = []
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit, checked from the header before decoding
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > limit:
                raise ImageReadError(
                    path,
                    f"{width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,}",
                    hint=f"set {MAX_PIXELS_ENV} to a larger value if the file is trusted",
                )
            image.load()
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            array = _decode_pil(image, path, notes)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image file (format not recognised)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"corrupt or truncated image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    if orientation in _ORIENTATIONS and orientation != 1:
        array = np.ascontiguousarray(_ORIENTATIONS[orientation](array))
        notes.append(f"EXIF orientation {orientation} applied")
    for note in notes:
        if note.startswith("16-bit"):
            warnings.warn(f"{path}: {note}", UserWarning, stacklevel=2)
    return LoadedImage.from_array(array, path, notes)


def _decode_pil(image: Image.Image, path: Path, notes: list[str]) -> np.ndarray:
    """Turn a loaded Pillow image into a uint8 array: HxW (grey), HxWx3 or HxWx4."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        notes.append(f"16-bit image (mode {mode}) reduced to 8 bits")
        array = np.asarray(image)
        if mode == "F" and array.max() <= 1.0:
            array = array * 65535.0
        return _to_uint8_from_16bit(array)
    suffix = path.suffix.lower()
    if (suffix == ".png" and _png_bit_depth(path) == 16) or suffix in (".tif", ".tiff"):
        sixteen = _read_16bit_with_opencv(path)  # Pillow truncates 16-bit colour images
        if sixteen is not None:
            notes.append("16-bit image reduced to 8 bits")
            return _to_uint8_from_16bit(sixteen)
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return np.asarray(image.convert("RGB"))
    if mode in ("L", "1"):
        return np.asarray(image.convert("L"))
    if mode == "P":
        notes.append("palette image converted")
        return np.asarray(image.convert("RGBA" if "transparency" in image.info else "RGB"))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def list_images(root: str | Path, recursive: bool = False, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files (files ending in ``suffixes``) under ``root`` in sorted, reproducible order.

    Args:
        root: a folder, or a single image file (returned as a one-element list).
        recursive: descend into sub-folders.
        suffixes: lower-case file suffixes listed.

    Raises:
        UsageError: ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UsageError(f"{root}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in root.glob(pattern)
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(_TEMP_PREFIX)
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_not_input(path: Path, protect: Iterable[str | Path]) -> None:
    """Raise :class:`UsageError` when ``path`` is one of the ``protect`` paths (the inputs)."""
    for source in protect:
        if _same_file(path, Path(source)):
            raise UsageError(
                f"{path}: refusing to overwrite an input file",
                hint="choose an output folder different from the input folder",
            )


@contextlib.contextmanager
def atomic_path(path: str | Path, protect: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file is removed if the block raises (including KeyboardInterrupt), so
    the destination is either the complete new file or untouched.
    """
    path = Path(path)
    check_not_input(path, protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, _FILE_MODE)  # mkstemp creates 0600; outputs get the usual umask-based mode
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, protect: Iterable[str | Path] = ()) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, protect) as temp:
        temp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, protect: Iterable[str | Path] = ()) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), protect)


def write_image(
    path: str | Path,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    grey: bool = False,
    quality: int = 95,
    protect: Iterable[str | Path] = (),
) -> Path:
    """Encode ``rgb`` (HxWx3 or HxW uint8) to ``path`` atomically; the format follows the suffix.

    Args:
        path: destination; its folder is created.
        rgb: uint8 pixels, RGB or grey.
        alpha: optional HxW uint8 alpha, kept for formats that store it (PNG, TIFF, WebP).
        grey: store as a one-channel grey image.
        quality: JPEG/WebP quality.
        protect: input paths that must never be overwritten.

    Raises:
        ImageWriteError: unsupported extension or the file cannot be written.
        UsageError: ``path`` is one of ``protect``.
    """
    path = Path(path)
    fmt = _PIL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(
            f"{path}: unsupported output extension {path.suffix!r}",
            hint=f"use one of {', '.join(IMAGE_SUFFIXES)}",
        )
    if rgb.dtype != np.uint8:
        raise ImageWriteError(f"{path}: expected uint8 pixels, got {rgb.dtype}")
    if grey and rgb.ndim == 3:
        rgb = rgb[..., 0] if _rgb_is_grey(rgb) else np.asarray(Image.fromarray(rgb).convert("L"))
    image = Image.fromarray(rgb)
    if alpha is not None and fmt in ("PNG", "TIFF", "WEBP"):
        image = image.convert("LA" if image.mode == "L" else "RGBA")
        image.putalpha(Image.fromarray(alpha))
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "PNG":
        options["compress_level"] = PNG_COMPRESS_LEVEL
    try:
        with atomic_path(path, protect) as temp:
            image.save(temp, format=fmt, **options)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write image ({exc})") from exc
    return path
