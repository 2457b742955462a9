"""What an input is called in error messages, and how an API argument splits into a batch of inputs."""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

import numpy as np

from ..errors import ImageFormatError
from .arrays import to_bgr

_SHOWN_CHARS = 120  # how much of a long string input an error message repeats


def describe(item: Any) -> Optional[str]:
    """A short name for an input in error messages: its path or URL (shortened when long), else its kind."""
    if isinstance(item, os.PathLike):
        item = os.fsdecode(item)
    if isinstance(item, str):
        if item[:5].lower() == "data:":
            comma = item.find(",", 0, _SHOWN_CHARS + 1)  # the header only: the payload may be megabytes
            header = item[: comma if comma >= 0 else _SHOWN_CHARS]
            return f"{header[:_SHOWN_CHARS]}{',' if comma >= 0 else ''}... ({len(item)} characters)"
        return item if len(item) <= _SHOWN_CHARS else f"{item[:_SHOWN_CHARS]}... ({len(item)} characters)"
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape} and dtype {item.dtype}"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"{type(item).__name__} ({len(item)} bytes)"
    if item is None:
        return None
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else type(item).__name__


def as_batch(inputs: Any) -> Tuple[List[Any], bool]:
    """Split an API input into ``(items, single)``.

    A list or tuple, or a 4-D array (N, H, W, C) with C in 1, 3 or 4, is a batch (possibly empty); anything else is
    one image (``single=True``).
    """
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        if inputs.shape[-1] not in (1, 3, 4):
            hint = "; a channels-first (N, C, H, W) array needs array.transpose(0, 2, 3, 1)" if inputs.shape[1] in (
                1, 3, 4) else ""
            raise ImageFormatError(
                f"a 4-D array must be (N, H, W, C) with C in 1, 3 or 4 channels, got shape {inputs.shape}{hint}"
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
