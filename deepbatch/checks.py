"""Checks of numeric arguments shared by every edge (the Python API, the command line, Ray), cheap to import.

Each returns the value in its canonical type or raises :class:`~deepbatch.errors.ArgumentError` naming the
argument, the value given and the allowed range, before any image is read or model is run.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .errors import ArgumentError

# 200 % makes the box three times as wide and high: head, hair and shoulders. Beyond that a crop is mostly
# background and its memory grows with the square of the factor (2000 % gave 9408x9408 crops of one face).
MAX_EXPAND_PERCENTAGE = 200.0


def check_expand_percentage(value: Any, name: str = "expand_percentage") -> float:
    """``value`` as a float in ``[0, MAX_EXPAND_PERCENTAGE]``; an :class:`ArgumentError` naming it otherwise (NaN,
    infinity, negative, too large, not a number)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{name} must be a number from 0 to {MAX_EXPAND_PERCENTAGE:g}, got {value!r}")
    number = float(value)
    if not 0 <= number <= MAX_EXPAND_PERCENTAGE:  # also False for NaN
        raise ArgumentError(f"{name} must be a number from 0 to {MAX_EXPAND_PERCENTAGE:g} (percent the box grows by), "
                            f"got {value!r}")
    return number


def check_max_faces(value: Any, name: str = "max_faces") -> Optional[int]:
    """``value`` as a positive int or None; an :class:`ArgumentError` naming it otherwise (``1.5``, ``'3'``, 0)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def check_batch_size(value: Any, name: str = "batch_size", auto: bool = False) -> int:
    """``value`` as a positive int; an :class:`ArgumentError` naming it otherwise (0, -1, ``1.5``, ``'8'``, True).
    ``auto``: the argument also takes ``"auto"`` (resolved by the caller), and the message says so."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        choices = "a positive integer or 'auto'" if auto else "a positive integer"
        raise ArgumentError(f"{name} must be {choices}, got {value!r}")
    return int(value)


def refuse_anti_spoofing(anti_spoofing: Any) -> None:
    """DeepFace's ``anti_spoofing=True`` asks for a liveness model deepbatch does not ship: an :class:`ArgumentError`
    says so, before any image is read; ``False`` passes."""
    if anti_spoofing:
        raise ArgumentError("anti_spoofing is not supported by deepbatch")
