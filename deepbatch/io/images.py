"""Loading and validating images.

Accepted for one image: a path (``str`` or ``os.PathLike``), an ``http(s)://`` URL, a ``data:image/...;base64,``
URI, raw encoded bytes, a binary file object, or a numpy array. Arrays are converted to HxWx3 uint8 BGR:

* 2-D or HxWx1 grayscale is replicated to three channels;
* HxWx4 is taken as BGRA and the alpha channel is dropped;
* uint16 is scaled by 255/65535; float in [0, 1] is scaled by 255, other floats must lie in [0, 255];
  other integer types must lie in [0, 255]; bool becomes 0/255.

JPEGs are decoded with their EXIF orientation applied (OpenCV does this). A truncated JPEG, an empty file, a
non-image file, a directory, NaN pixels or a zero-sized array raise a subclass of :class:`ImageError` naming the
image.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ImageDecodeError, ImageError, ImageFormatError, ImageNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm")
URL_TIMEOUT_S = 20.0
_JPEG_TAIL = 1 << 16  # where a complete JPEG's end-of-image marker must lie (tolerates trailing maker data)


def describe(item: Any) -> Optional[str]:
    """A short name for an input in error messages: its path or URL, else its type."""
    if isinstance(item, (str, os.PathLike)):
        text = os.fspath(item)
        return text if len(text) <= 200 else text[:40] + "...(base64 data)"
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape} and dtype {item.dtype}"
    if item is None:
        return None
    return type(item).__name__


def to_bgr(array: np.ndarray, index: Optional[int] = None, source: Optional[str] = None) -> np.ndarray:
    """``array`` as a C-contiguous HxWx3 uint8 BGR image (see the module doc for the conversions)."""
    if not isinstance(array, np.ndarray):
        raise ImageFormatError(f"expected a numpy array, got {type(array).__name__}", index, source)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageFormatError(
            f"expected an HxW grayscale or HxWx3 (BGR) / HxWx4 (BGRA) image, got shape {array.shape}", index, source
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"image has zero size (shape {array.shape})", index, source)
    array = _to_uint8(array, index, source)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray, index: Optional[int], source: Optional[str]) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageFormatError("float image contains NaN or infinite values", index, source)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 255.0:
            raise ImageFormatError(
                f"float image values must lie in [0, 1] or [0, 255], got [{low:g}, {high:g}]", index, source
            )
        scale = 255.0 if high <= 1.0 else 1.0
        return (array.astype(np.float32) * scale + 0.5).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageFormatError(f"{array.dtype} image values must lie in [0, 255], got [{low}, {high}]", index, source)
        return array.astype(np.uint8)
    raise ImageFormatError(f"unsupported dtype {array.dtype}", index, source)


def decode(data: bytes, index: Optional[int] = None, source: Optional[str] = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to HxWx3 uint8 BGR."""
    import cv2

    if not data:
        raise ImageDecodeError("file is empty (0 bytes)", index, source)
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if is_jpeg and b"\xff\xd9" not in data[-_JPEG_TAIL:]:
        raise ImageDecodeError("JPEG is truncated (no end-of-image marker)", index, source)
    # IMREAD_COLOR applies the EXIF orientation of JPEGs; other formats keep their depth and alpha for to_bgr.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageDecodeError("not a readable image (corrupt, truncated, or not an image format)", index, source)
    return to_bgr(image, index, source)


def _read_path(path: Path, index: Optional[int], source: str) -> bytes:
    if not path.exists():
        raise ImageNotFoundError("file does not exist", index, source)
    if path.is_dir():
        raise ImageError("is a directory, not an image file", index, source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot be read: {exc.strerror or exc}", index, source) from exc


def _read_url(url: str, index: Optional[int]) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageError(f"could not fetch URL ({reason}); check the address and the network", index, url) from exc


def _read_data_uri(uri: str, index: Optional[int]) -> bytes:
    _, _, payload = uri.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"invalid base64 data ({exc})", index, describe(uri)) from exc


def load_image(item: Any, index: Optional[int] = None) -> np.ndarray:
    """One input of any accepted kind as an HxWx3 uint8 BGR image; raises :class:`ImageError` naming it."""
    source = describe(item)
    if item is None:
        raise ImageFormatError("got None instead of an image", index)
    if isinstance(item, np.ndarray):
        return to_bgr(item, index, source)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode(bytes(item), index, source)
    if isinstance(item, str):
        lowered = item[:16].lower()
        if lowered.startswith("data:image/"):
            return decode(_read_data_uri(item, index), index, source)
        if lowered.startswith(("http://", "https://")):
            return decode(_read_url(item, index), index, source)
        return decode(_read_path(Path(item).expanduser(), index, item), index, source)
    if isinstance(item, os.PathLike):
        return decode(_read_path(Path(item).expanduser(), index, source or ""), index, source)
    if isinstance(item, io.IOBase) or hasattr(item, "read"):
        source = getattr(item, "name", None) or source
        data = item.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageFormatError("file object must be opened in binary mode", index, str(source))
        return decode(bytes(data), index, str(source))
    raise ImageFormatError(
        f"unsupported input type {type(item).__name__}; pass a path, URL, base64 data URI, bytes, file object or "
        "numpy array",
        index,
    )


def as_batch(inputs: Any) -> Tuple[List[Any], bool]:
    """Split an API input into ``(items, single)``.

    A list or tuple, or a 4-D array (N, H, W, C), is a batch; anything else is one image (``single=True``).
    """
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        if inputs.shape[-1] not in (1, 3, 4):
            raise ImageFormatError(
                f"a 4-D array must be (N, H, W, C) with C in 1, 3 or 4 channels, got shape {inputs.shape}"
            )
        return list(inputs), False
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    return [inputs], True


def validate_arrays(images: Any) -> List[np.ndarray]:
    """A detector's input (a list of arrays or a 4-D array) as a list of HxWx3 uint8 BGR arrays."""
    items, single = as_batch(images)
    if single:
        raise ImageFormatError(
            "detect_faces takes a list of images or a 4-D (N, H, W, 3) array; wrap a single image in a list"
        )
    return [to_bgr(item, index) for index, item in enumerate(items)]


def list_image_files(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Path]:
    """Image files under ``folder`` (recursive), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in extensions)
