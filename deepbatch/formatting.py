"""Conversion of typed results to DeepFace-style dictionaries, done once at the API edge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import numpy as np

from .errors import ArgumentError
from .structures import LANDMARK_NAMES

OPTIONAL_POINTS = LANDMARK_NAMES[2:]  # nose and mouth corners: reported only when the detector gives them


def _point(landmarks: Optional[np.ndarray], index: int, width: int, height: int) -> Optional[Tuple[int, int]]:
    """One landmark as integer ``(x, y)``; None when unknown or outside the image, as DeepFace reports it."""
    if landmarks is None or not np.all(np.isfinite(landmarks[index])):
        return None
    x, y = (int(round(float(v))) for v in landmarks[index])
    if not (0 <= x < width and 0 <= y < height):  # DeepFace drops landmarks placed outside the image
        return None
    return x, y


def facial_area(box: np.ndarray, landmarks: Optional[np.ndarray],
                image_shape: Optional[Tuple[int, ...]] = None) -> Dict[str, Any]:
    """DeepFace's ``facial_area`` for a face of an image of ``image_shape`` ``(height, width, ...)``.

    Integer ``x, y, w, h`` clamped as DeepFace clamps them (``x, y >= 0``, ``x + w < width``, ``y + h < height``);
    ``left_eye`` and ``right_eye`` as ``(x, y)`` (person-relative), or None when unknown or outside the image;
    ``nose``, ``mouth_left``, ``mouth_right`` when the detector gives them (None when outside the image). Without
    ``image_shape`` nothing is clamped.
    """
    unbounded = 2**31
    height, width = (unbounded, unbounded) if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x, y = min(max(x1, 0), max(width - 1, 0)), min(max(y1, 0), max(height - 1, 0))
    area: Dict[str, Any] = {
        "x": x,
        "y": y,
        "w": max(0, min(x2 - x, width - x - 1)),
        "h": max(0, min(y2 - y, height - y - 1)),
        "left_eye": _point(landmarks, 0, width, height),
        "right_eye": _point(landmarks, 1, width, height),
    }
    if landmarks is not None:
        for offset, name in enumerate(OPTIONAL_POINTS, start=2):
            if np.all(np.isfinite(landmarks[offset])):
                area[name] = _point(landmarks, offset, width, height)
    return area


def confidence(score: float) -> float:
    """DeepFace reports detector confidence rounded to two decimals."""
    return round(float(score), 2)


def present_face(face: np.ndarray, color_face: str, normalize_face: bool) -> np.ndarray:
    """A BGR uint8 crop in DeepFace's output form: ``color_face`` rgb/bgr/gray, scaled to [0, 1] when normalised."""
    import cv2

    key = color_face.lower()
    if key == "rgb":
        out = face[:, :, ::-1]
    elif key == "bgr":
        out = face.copy()  # a crop can be a view of the caller's array: never hand that memory back
    elif key == "gray":
        out = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    else:
        raise ArgumentError(f"color_face must be 'rgb', 'bgr' or 'gray', got {color_face!r}")
    if normalize_face:
        return np.divide(out, np.float32(255.0), dtype=np.float32)  # one pass, no uint8 -> float32 copy first
    return np.ascontiguousarray(out)


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise type every attribute, typos too, as Any

    def __getattr__(name: str) -> Any:
        """``BatchResult`` and ``collect_batch``, now in :mod:`deepbatch.core.on_error`, still import from here
        with a ``DeprecationWarning`` (:func:`deepbatch.renamed.moved_name`)."""
        from .renamed import moved_name

        return moved_name(__name__, name)
