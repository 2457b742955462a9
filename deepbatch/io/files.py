"""Reading the encoded bytes of a path or a binary file object, bounded by :class:`~deepbatch.io.limits.ImageLimits`
and refused early when the first bytes are no image."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, List, Optional

from ..errors import ImageDecodeError, ImageError, ImageFormatError, ImageNotFoundError, ImageReadError
from .decode import NOT_AN_IMAGE
from .headers import HEAD_BYTES, sniff
from .limits import ImageLimits, too_many_bytes

_READ_CHUNK = 1 << 20


def read_path(text: str, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    if not text:
        raise ImageNotFoundError("an empty string was given as the image path", index, "''")
    path = Path(os.path.expanduser(text))
    missing = f"Confirm that {text} exists: the file does not exist (working directory: {os.getcwd()})"
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except ValueError:  # an embedded NUL character: no such file can exist
        info = None
    except OSError as exc:
        raise ImageReadError(f"cannot be read: {exc.strerror or exc}", index, source) from exc
    if info is None:
        raise ImageNotFoundError(missing, index, source)
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(
            "is a directory, not an image file; list its images with deepbatch.io.images.list_image_files(folder)",
            index, source,
        )
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError("is not a regular file (a device, pipe or socket)", index, source)
    if info.st_size > limits.max_bytes:
        raise ImageReadError("file is " + too_many_bytes(info.st_size, limits), index, source)
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) == 32 and sniff(head) is None:  # refused before the rest is read
                raise ImageDecodeError(NOT_AN_IMAGE, index, source)
            f.seek(0)
            data = f.read(info.st_size + 1)  # one buffer of the measured size: no second copy of a large file
            if len(data) > info.st_size:  # the file grew after it was measured
                data += f.read(limits.max_bytes + 1 - len(data))
    except OSError as exc:
        raise ImageReadError(f"cannot be read: {exc.strerror or exc}", index, source) from exc
    if len(data) > limits.max_bytes:
        raise ImageReadError("file holds at least " + too_many_bytes(len(data), limits), index, source)
    return data


def read_bounded(read: Any, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    """All bytes ``read(n)`` gives until it returns empty, refusing data whose first bytes are no image format or
    more than ``limits.max_bytes``."""
    parts: List[bytes] = []
    total = 0
    while True:
        block = read(HEAD_BYTES if not parts else _READ_CHUNK)
        if isinstance(block, str):
            raise ImageFormatError("file object is open in text mode; open it with mode 'rb'", index, source)
        if not isinstance(block, (bytes, bytearray, memoryview)):
            raise ImageFormatError(f"file object's read() returned {type(block).__name__}, not bytes", index, source)
        if not block:
            break
        if not parts and sniff(bytes(block[:32])) is None and len(block) >= 32:
            raise ImageDecodeError(NOT_AN_IMAGE, index, source)
        total += len(block)
        if total > limits.max_bytes:
            raise ImageReadError("at least " + too_many_bytes(total, limits), index, source)
        parts.append(bytes(block))
    return b"".join(parts)


def read_file_object(item: Any, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    try:
        return read_bounded(item.read, index, source, limits)
    except ImageError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"reading the file object failed ({exc})", index, source) from exc
