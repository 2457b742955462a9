"""Numpy arrays as C-contiguous HxWx3 uint8 BGR images (see :mod:`deepbatch.io.images` for the conversions)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import ImageFormatError


def to_bgr(array: np.ndarray, index: Optional[int] = None, source: Optional[str] = None) -> np.ndarray:
    """``array`` as a C-contiguous HxWx3 uint8 BGR image (see the module doc for the conversions).

    Raises :class:`ImageFormatError` naming ``index``/``source`` when the array cannot be converted.
    """
    if not isinstance(array, np.ndarray):
        kind = "None" if array is None else type(array).__name__
        raise ImageFormatError(f"expected a numpy array, got {kind}", index, source)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageFormatError(
            f"expected an HxW grayscale or HxWx3 (BGR) / HxWx4 (BGRA) image, got shape {array.shape}"
            f"{_layout_hint(array.shape)}", index, source
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"image has zero size (shape {array.shape})", index, source)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    array = _to_uint8(array, index, source)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def _layout_hint(shape: Tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[0] in (1, 3, 4):
        return "; a channels-first (C, H, W) array needs array.transpose(1, 2, 0)"
    if len(shape) == 4:
        return "; a 4-D array is a batch: pass it as the whole input, not as one image"
    return ""


def _to_uint8(array: np.ndarray, index: Optional[int], source: Optional[str]) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype == np.uint16:
        return (array.astype(np.float32) * np.float32(255.0 / 65535.0) + np.float32(0.5)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageFormatError("float image contains NaN or infinite values", index, source)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 255.0:
            raise ImageFormatError(
                f"float image values must lie in [0, 1] or [0, 255], got [{low:g}, {high:g}]; rescale it first",
                index, source,
            )
        scale = np.float32(255.0 if high <= 1.0 else 1.0)
        return (array.astype(np.float32) * scale + np.float32(0.5)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageFormatError(
                f"{array.dtype} image values must lie in [0, 255], got [{low}, {high}]; convert it to uint8 (or "
                "uint16 for 16-bit data) first", index, source,
            )
        return array.astype(np.uint8)
    raise ImageFormatError(
        f"unsupported dtype {array.dtype}; use uint8, uint16, another integer type in [0, 255], float or bool",
        index, source,
    )
