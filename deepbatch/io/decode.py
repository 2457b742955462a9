"""Decoding encoded image bytes with OpenCV: the signature and declared size are checked first, and libjpeg's
warnings are said about the input they concern."""

from __future__ import annotations

import logging
import re
from typing import Optional, Tuple

import numpy as np

from ..errors import ImageDecodeError, ImageReadError
from ..native_stderr import STDERR
from .arrays import to_bgr
from .headers import declared_size, sniff
from .jpeg import jpeg_is_truncated
from .limits import ImageLimits, get_image_limits, too_many_bytes

logger = logging.getLogger("deepbatch.io.images")


NOT_AN_IMAGE = "Failed to decode image: not a readable image (its first bytes match no image format OpenCV decodes)"


def decode(data: bytes, index: Optional[int] = None, source: Optional[str] = None,
           limits: Optional[ImageLimits] = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, TIFF, ...) to HxWx3 uint8 BGR, EXIF orientation applied.

    The format is recognised from its signature and the declared size is checked against ``limits.max_pixels``
    before anything is decoded. Running out of memory while decoding raises ``MemoryError``, not an image error.
    """
    import cv2

    limits = limits or get_image_limits()
    if not data:
        raise ImageDecodeError("no image data (0 bytes)", index, source)
    if len(data) > limits.max_bytes:
        raise ImageReadError(too_many_bytes(len(data), limits), index, source)
    kind = sniff(data[:32])
    if kind is None:
        raise ImageDecodeError(NOT_AN_IMAGE, index, source)
    _check_declared_size(data, kind, limits, index, source)
    if kind == "jpeg" and jpeg_is_truncated(data):
        raise ImageDecodeError("JPEG is truncated (it ends before its end-of-image marker)", index, source)
    # IMREAD_COLOR gives 3 channels and applies the EXIF orientation; ANYDEPTH keeps 16-bit data for to_bgr to scale.
    try:
        image, said = imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, kind)
    except cv2.error as exc:
        if "Insufficient memory" in str(exc) or "Failed to allocate" in str(exc):
            raise MemoryError(f"out of memory while decoding {source or 'an image'}") from exc
        raise ImageDecodeError(_opencv_problem(exc), index, source) from exc
    if image is None:
        if kind == "png" and b"IEND" not in data[-64:]:
            raise ImageDecodeError("PNG is truncated (it ends before its IEND chunk)", index, source)
        raise ImageDecodeError(f"Failed to decode image: not a readable image (a corrupt or truncated {kind} file"
                               + (f"; libjpeg: {said}" if said else "") + ")", index, source)
    warn_damaged(said, index, source)
    return to_bgr(image, index, source)


# libjpeg's warnings (JWRN_* of libjpeg-turbo's jerror.h): printed to stderr by the library for a damaged file that
# it still decodes, and taken from there to be said about the input they concern.
LIBJPEG_WARNINGS = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Warning: unknown JFIF revision|"
    r"Warning: thumbnail image size|Inconsistent progression sequence|Application transferred too many scanlines|"
    r"Arithmetic table 0x)"
)


def imdecode(data: bytes, flag: int, kind: Optional[str]) -> Tuple[Optional[np.ndarray], str]:
    """``cv2.imdecode`` and, for a JPEG, what libjpeg printed while decoding it (empty when nothing).

    Decodes run on several threads at once; in the rare case that libjpeg spoke while another decode ran too, the
    image is decoded again alone, so that the words are surely its own (see :mod:`deepbatch.native_stderr`).
    """
    import cv2

    buffer = np.frombuffer(data, np.uint8)
    if kind != "jpeg":
        return cv2.imdecode(buffer, flag), ""
    with STDERR.shared(LIBJPEG_WARNINGS) as said:
        image = cv2.imdecode(buffer, flag)
    if not said.certain:
        with STDERR.exclusive(LIBJPEG_WARNINGS) as said:
            image = cv2.imdecode(buffer, flag)
    return image, said.text


def warn_damaged(said: str, index: Optional[int], source: Optional[str]) -> None:
    """Log, naming the input, what libjpeg said about a file it decoded all the same."""
    if said:
        where = source or (f"image {index}" if index is not None else "an image")
        logger.warning("%s: decoded, but libjpeg says: %s", where, said)


def _check_declared_size(data: bytes, kind: str, limits: ImageLimits, index: Optional[int],
                         source: Optional[str]) -> None:
    size = declared_size(data, kind)
    if size is not None and size[0] * size[1] > limits.max_pixels:
        width, height = size
        raise ImageDecodeError(
            f"image declares {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the decoding limit of "
            f"{limits.max_pixels} pixels; if the file is trusted, raise the limit with "
            "deepbatch.io.images.set_image_limits(max_pixels=...) or the command line's --max-pixels",
            index, source,
        )


def _opencv_problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "MAX_IMAGE_PIXELS" in text or "MAX_IMAGE_WIDTH" in text or "MAX_IMAGE_HEIGHT" in text:
        return ("image is larger than OpenCV's decoding limit (2^30 pixels by default); downscale the file, or raise "
                "the limit with the environment variable OPENCV_IO_MAX_IMAGE_PIXELS before the program starts")
    return f"OpenCV could not decode it ({text})"
