"""OpenCV Haar cascade: the zero-download backend (the cascades ship inside opencv-python 4.x).

As in DeepFace, eyes are found with a second cascade inside each face; the score is the cascade's level weight,
not a probability. Nose and mouth are not detected (NaN in the landmarks array). It does not batch.

A cascade scans every scale from its window size (24 pixels for faces, 20 for eyes) up, so its time and memory grow
with the pixel count. Above ``max_pixels`` (default 1024 x 1024; ``None`` scans every scale, as DeepFace does) the
smallest face searched for grows with the image, as if it were downscaled to ``max_pixels``: 24 px times
``sqrt(pixels / max_pixels)``, so 48 px on a 2048x2048 photo, 88 px on a 4600x3061 one, 244 px on a 12000x9000
one. Eyes are searched for inside each face within a quarter of that budget (512 x 512 by default): at least 20 px
times ``sqrt(face pixels / budget)``, 30 px in a 770-pixel face. Larger faces come from the same pyramid levels as
without the bound, so they are found exactly as before, in less time: ``tests/test_opencv.py`` checks that the
boxes equal those of a scan over every scale; ``benchmarks/peers.py`` times both (``max_pixels=None``).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import WeightsNotFoundError
from ..structures import Faces
from .base import DETECTORS, Detector

DEFAULT_MAX_PIXELS = 1024 * 1024  # the scan's budget: above it the smallest face searched for grows


def _cascade(filename: str) -> Any:
    import cv2

    path = os.path.join(cv2.data.haarcascades, filename)  # type: ignore[attr-defined]
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise WeightsNotFoundError(
            f"OpenCV cascade {path!r} is missing; opencv-python 4.x ships it (OpenCV 5 wheels do not): "
            "pip install 'opencv-python-headless>=4.8,<5'"
        )
    return classifier


@DETECTORS.register("opencv", summary="OpenCV Haar cascade, faces and eyes (ships with opencv-python 4.x)",
                     licence="BSD-style Intel licence (in the cascade files)")
class OpenCVHaar(Detector):
    """Haar cascade face detector with eye detection for alignment; runs image by image."""

    name = "opencv"
    has_landmarks = True
    runs_on = "OpenCV (cv2.CascadeClassifier)"
    bundled_weights = "ships with opencv-python 4.x"
    landmark_summary = "the eyes"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 10, detect_eyes: bool = True,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS):
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.detect_eyes = detect_eyes
        self.max_pixels = max_pixels  # None: search every scale of every image and face
        self._local = threading.local()  # CascadeClassifier objects are not safe to share between threads

    @property
    def parallel_chunks(self) -> bool:
        return True  # each thread has cascades of its own

    def _classifiers(self) -> Any:
        if not hasattr(self._local, "face"):
            self._local.face = _cascade("haarcascade_frontalface_default.xml")
            self._local.eye = _cascade("haarcascade_eye.xml")
        return self._local

    def detect_image(self, image: np.ndarray) -> Faces:
        import cv2

        classifiers = self._classifiers()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes, _, weights = classifiers.face.detectMultiScale3(
            gray, self.scale_factor, self.min_neighbors, outputRejectLevels=True,
            minSize=_min_size(classifiers.face, gray.size, self.max_pixels),
        )
        if len(boxes) == 0:
            return Faces.empty()
        scores = np.asarray(weights, np.float32).reshape(-1)
        # detectMultiScale runs in parallel and returns faces in no fixed order: sort by score, then position.
        order = np.lexsort((boxes[:, 1], boxes[:, 0], -scores))
        xywh = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
        scores = scores[order]
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        landmarks = np.full((len(xywh), 5, 2), np.nan, np.float32)
        if self.detect_eyes:
            for i, (x, y, w, h) in enumerate(xywh.astype(int)):
                eyes = self._find_eyes(classifiers.eye, gray[y : y + h, x : x + w])
                if eyes is not None:
                    landmarks[i, :2] = eyes + (x, y)
        return Faces(xyxy, scores, landmarks)

    def _find_eyes(self, eye_cascade: Any, face_gray: np.ndarray) -> Optional[np.ndarray]:
        """(2, 2) centres of the two largest eyes, person's left eye (larger x) first, or None."""
        budget = self.max_pixels // 4 if self.max_pixels else None
        eyes = eye_cascade.detectMultiScale(face_gray, 1.1, 10, minSize=_min_size(eye_cascade, face_gray.size, budget))
        if len(eyes) < 2:
            return None
        eyes = sorted(eyes, key=lambda e: -int(e[2]) * int(e[3]))[:2]
        centers = np.array([[x + w / 2, y + h / 2] for x, y, w, h in eyes], np.float32)
        return centers[np.argsort(-centers[:, 0])]


def _min_size(cascade: Any, pixels: int, max_pixels: Optional[int]) -> Tuple[int, int]:
    """The smallest object size to search for: the cascade's window scaled so the scan costs about as much as on a
    ``max_pixels`` image; ``(0, 0)`` (OpenCV's default, the window itself) for images within the budget."""
    if not max_pixels or pixels <= max_pixels:
        return (0, 0)
    width, height = cascade.getOriginalWindowSize()
    factor = math.sqrt(pixels / max_pixels)
    return (math.ceil(width * factor), math.ceil(height * factor))
