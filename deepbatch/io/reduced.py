"""Reduced decoding for detection: a large JPEG decoded by libjpeg at 1/2, 1/4 or 1/8 of its size, and the pixels an
input will decode to, read from its header."""

from __future__ import annotations

import os
import re
import stat
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from .arrays import to_bgr
from .decode import decode, imdecode, warn_damaged
from .headers import HEAD_BYTES, declared_size, sniff
from .jpeg import jpeg_is_truncated
from .limits import ImageLimits, get_image_limits

# Reduced decoding for detection: libjpeg scales the DCT by 1/2, 1/4 or 1/8 while decoding, which costs a fraction
# of a full decode followed by a resize. Only JPEG decodes this way; other formats decode in full.
REDUCED_FACTORS = (8, 4, 2)


class CanvasImage(NamedTuple):
    """An image decoded for a detection canvas: ``image`` HxWx3 uint8 BGR at ``1 / factor`` of the original size,
    and the original's ``shape`` ``(height, width)`` after EXIF orientation. An original pixel coordinate is
    ``factor`` times a decoded one."""

    image: np.ndarray
    factor: int
    shape: Tuple[int, int]

    @classmethod
    def full(cls, image: np.ndarray) -> CanvasImage:
        return cls(image, 1, (image.shape[0], image.shape[1]))


def reduction_factor(height: int, width: int, canvas: Tuple[int, int], keep_ratio: bool = True) -> int:
    """The largest of 8, 4, 2 by which an image can shrink and still cover its fit on a ``(width, height)`` canvas
    (:func:`deepbatch.ops.letterbox.shrink_factor`, at most 8), 1 when none does.

    Letterboxing averages a larger image down by the same power of two (or a larger one, after a reduced decode
    too) before resizing it, so a photo decoded at ``1 / factor`` reaches the detector as nearly the same picture
    as one decoded in full: the two differ only by the decoder's scaled IDCT against a block mean.
    """
    from ..ops.letterbox import shrink_factor

    return min(shrink_factor(height, width, canvas, keep_ratio), REDUCED_FACTORS[0])


def decode_for_canvas(data: bytes, canvas: Tuple[int, int], index: Optional[int] = None,
                      source: Optional[str] = None, keep_ratio: bool = True,
                      limits: Optional[ImageLimits] = None) -> CanvasImage:
    """Encoded bytes decoded at ``1 / factor`` of their size, as small as a ``(width, height)`` canvas allows (see
    :func:`reduction_factor`), EXIF orientation applied.

    A JPEG much larger than the canvas is decoded by libjpeg at a reduced scale (``cv2.IMREAD_REDUCED_COLOR_*``)
    after the same checks as :func:`decode` (size, declared pixels, truncation); anything else, or a JPEG near the
    canvas size, goes through :func:`decode` in full (``factor`` 1). Errors are those of :func:`decode`.
    """
    import cv2

    limits = limits or get_image_limits()
    stored = declared_size(data, "jpeg") if sniff(data[:32]) == "jpeg" else None
    width, height = stored or (0, 0)
    factor = reduction_factor(height, width, canvas, keep_ratio) if width and height else 1
    if factor == 1 or len(data) > limits.max_bytes or width * height > limits.max_pixels or jpeg_is_truncated(data):
        return CanvasImage.full(decode(data, index, source, limits))  # decode names any problem
    flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    try:
        image, said = imdecode(data, flag, "jpeg")  # applies the EXIF orientation, like IMREAD_COLOR
    except cv2.error:
        image, said = None, ""
    if image is None:
        return CanvasImage.full(decode(data, index, source, limits))
    warn_damaged(said, index, source)
    image = to_bgr(image, index, source)
    # libjpeg rounds reduced sides up; a quarter turn from EXIF shows as the decoded sides matching swapped ones.
    turned = height != width and (image.shape[0], image.shape[1]) == (-(-width // factor), -(-height // factor))
    return CanvasImage(image, factor, (width, height) if turned else (height, width))


def declared_pixels(item: Any, canvas: Optional[Tuple[int, int]] = None, keep_ratio: bool = True) -> int:
    """The pixels ``item`` will decode to, read cheaply before it is decoded: from the header of a regular file or
    of encoded bytes (divided by the square of the reduced-decoding factor for a JPEG fitted to a ``(width,
    height)`` ``canvas``), the shape of an array; 0 when it cannot be known without fetching or decoding it (URLs,
    file objects, unreadable or unknown files: their own checks refuse them when they are loaded) and when it
    declares more than ``max_pixels`` (it is refused before it is decoded)."""
    if isinstance(item, np.ndarray):
        return int(item.shape[0] * item.shape[1]) if item.ndim >= 2 else 0
    head: Optional[bytes] = None
    if isinstance(item, (bytes, bytearray, memoryview)):
        head = bytes(item[:HEAD_BYTES])
    elif isinstance(item, os.PathLike) or (isinstance(item, str) and not re.match(r"(?i)^(https?|data):", item)):
        try:
            path = os.path.expanduser(os.fspath(item))
            if not stat.S_ISREG(os.stat(path).st_mode):
                return 0
            with open(path, "rb") as f:
                head = f.read(HEAD_BYTES)
        except (OSError, ValueError):
            return 0
    if not head:
        return 0
    kind = sniff(head[:32])
    size = declared_size(head, kind) if kind is not None else None
    if size is None:
        return 0
    width, height = size
    if width * height > get_image_limits().max_pixels:
        return 0  # refused before it is decoded
    if canvas is not None and kind == "jpeg":
        factor = reduction_factor(height, width, canvas, keep_ratio)
        return int(width * height) // (factor * factor)
    return int(width * height)
