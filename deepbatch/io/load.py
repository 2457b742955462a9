"""One input of any accepted kind (path, URL, data URI, bytes, file object, array) as encoded bytes or as an
HxWx3 uint8 BGR image."""

from __future__ import annotations

import io
import os
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import ImageFormatError, ImageReadError
from .arrays import to_bgr
from .data_uri import read_data_uri
from .decode import decode
from .fetch import read_url
from .files import read_file_object, read_path
from .headers import HEAD_BYTES
from .inputs import describe
from .limits import ImageLimits, get_image_limits, too_many_bytes
from .reduced import CanvasImage, decode_for_canvas


def load_image(item: Any, index: Optional[int] = None, limits: Optional[ImageLimits] = None) -> np.ndarray:
    """One input of any accepted kind as an HxWx3 uint8 BGR image; raises :class:`ImageError` naming it.

    ``index`` is the input's position in its batch (``None`` for a single image), repeated in error messages;
    ``limits`` bound encoded inputs (default: :func:`get_image_limits`).
    """
    limits = limits or get_image_limits()
    source = describe(item)
    data = read_encoded(item, index, source, limits)
    return to_bgr(item, index, source) if data is None else decode(data, index, source, limits)


def read_encoded(item: Any, index: Optional[int] = None, source: Optional[str] = None,
                 limits: Optional[ImageLimits] = None) -> Optional[bytes]:
    """The encoded bytes of a path, URL, data URI, bytes or file object input (bounded by ``limits``); ``None`` for
    a numpy array. Raises :class:`ImageError` naming ``index``/``source`` when the input cannot be read or is of no
    accepted kind."""
    limits = limits or get_image_limits()
    if item is None:
        raise ImageFormatError("got None instead of an image", index)
    if isinstance(item, np.ndarray):
        return None
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, os.PathLike):
        item = os.fsdecode(item)
    if isinstance(item, str):
        lowered = item[:16].lower()
        if lowered.startswith("data:"):
            if len(item) > limits.max_bytes // 3 * 4 + HEAD_BYTES:  # base64 takes 4 characters per 3 bytes
                raise ImageReadError("data URI holds " + too_many_bytes(len(item) // 4 * 3, limits), index, source)
            return read_data_uri(item, index)
        if lowered.startswith(("http://", "https://")):
            return read_url(item, index, limits)
        return read_path(item, index, source, limits)
    if isinstance(item, io.IOBase) or hasattr(item, "read"):
        return read_file_object(item, index, source, limits)
    hint = "; a stream of images goes to deepbatch.iter_extract_faces" if hasattr(item, "__next__") else ""
    raise ImageFormatError(
        f"unsupported input type {type(item).__name__}; pass a path, URL, base64 data URI, bytes, binary file "
        f"object or numpy array, or a list of those{hint}",
        index,
    )


def load_image_for_canvas(item: Any, canvas: Tuple[int, int], index: Optional[int] = None,
                          keep_ratio: bool = True, limits: Optional[ImageLimits] = None) -> CanvasImage:
    """:func:`load_image` for detection on a ``(width, height)`` canvas: encoded inputs may be decoded at a
    reduced scale (see :func:`decode_for_canvas`); arrays come back as they are (``factor`` 1)."""
    limits = limits or get_image_limits()
    source = describe(item)
    data = read_encoded(item, index, source, limits)
    if data is None:
        return CanvasImage.full(to_bgr(item, index, source))
    return decode_for_canvas(data, canvas, index, source, keep_ratio, limits)
