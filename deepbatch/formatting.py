"""Conversion of typed results to DeepFace-style dictionaries, done once at the API edge."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ArgumentError
from .structures import LANDMARK_NAMES

OPTIONAL_POINTS = LANDMARK_NAMES[2:]  # nose and mouth corners: reported only when the detector gives them


def _point(landmarks: Optional[np.ndarray], index: int) -> Optional[Tuple[int, int]]:
    if landmarks is None or not np.all(np.isfinite(landmarks[index])):
        return None
    x, y = landmarks[index]
    return int(round(float(x))), int(round(float(y)))


def facial_area(box: np.ndarray, landmarks: Optional[np.ndarray]) -> Dict[str, Any]:
    """DeepFace's ``facial_area``: integer ``x, y, w, h``; ``left_eye`` and ``right_eye`` as ``(x, y)`` or None
    (person-relative); ``nose``, ``mouth_left``, ``mouth_right`` when known."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x, y = int(round(x1)), int(round(y1))
    area: Dict[str, Any] = {
        "x": x,
        "y": y,
        "w": max(0, int(round(x2)) - x),
        "h": max(0, int(round(y2)) - y),
        "left_eye": _point(landmarks, 0),
        "right_eye": _point(landmarks, 1),
    }
    for offset, name in enumerate(OPTIONAL_POINTS, start=2):
        point = _point(landmarks, offset)
        if point is not None:
            area[name] = point
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
        out = face
    elif key == "gray":
        out = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    else:
        raise ArgumentError(f"color_face must be 'rgb', 'bgr' or 'gray', got {color_face!r}")
    if normalize_face:
        return np.divide(out, np.float32(255.0), dtype=np.float32)  # one pass, no uint8 -> float32 copy first
    return np.ascontiguousarray(out)


class BatchResult(List[Any]):
    """A list with one entry per input image, plus ``errors``: ``{index: exception}`` for the images that failed
    when the caller asked to keep going (``on_error="skip"``); their entries are empty lists."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.errors: Dict[int, Exception] = {}
