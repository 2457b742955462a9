"""Typed detection results: parallel numpy arrays per image, validated on construction.

Conventions used everywhere in deepbatch:

* boxes are ``(N, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels;
* scores are ``(N,)`` float32 detector confidences: probabilities in ``[0, 1]`` for the neural detectors, the
  cascade's level weight (OpenCV Haar) or the SVM margin (dlib) for the classical ones, which are unbounded;
* landmarks are ``(N, 5, 2)`` float32 ``x, y`` in original-image pixels, ordered
  ``left_eye, right_eye, nose, mouth_left, mouth_right`` where left and right are the *person's* (DeepFace's
  convention: the person's left eye appears on the right of the picture), or ``None`` for models without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union, overload

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# Index permutation between the observer-relative order used by InsightFace, RetinaFace and YuNet
# (eye on the image's left first) and the person-relative order above. It is its own inverse.
OBSERVER_TO_PERSON = np.array([1, 0, 2, 4, 3])


def _check_shape(name: str, array: np.ndarray, expected: tuple) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        shown = tuple("N" if e is None else e for e in expected)
        raise ValueError(f"{name}: expected shape {shown}, got {array.shape}")


@dataclass(frozen=True)
class Face:
    """One detected face. ``box`` is ``(4,)`` xyxy, ``landmarks`` ``(5, 2)`` person-relative or ``None``.

    Attributes:
        box: ``(4,)`` float32 xyxy in original-image pixels.
        score: The detector's confidence.
        landmarks: ``(5, 2)`` float32 person-relative points (left eye, right eye, nose, mouth left, mouth right), or
            None for a detector without landmarks.
    """

    box: np.ndarray
    score: float
    landmarks: Optional[np.ndarray]

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return x1, y1, x2 - x1, y2 - y1


@dataclass(frozen=True)
class Faces:
    """All faces found in one image: ``boxes (N, 4)``, ``scores (N,)``, ``landmarks (N, 5, 2)`` or ``None``.

    Indexing with an int gives a :class:`Face`; with a slice, boolean mask or index array a new ``Faces``.

    Attributes:
        boxes: ``(N, 4)`` float32 xyxy in original-image pixels.
        scores: ``(N,)`` float32 confidences.
        landmarks: ``(N, 5, 2)`` float32 person-relative points, or None for a detector without landmarks.

    Raises:
        ValueError: The arrays' shapes disagree (the message gives the expected and the actual shape).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32))
        _check_shape("scores", self.scores, (len(self.boxes),))
        if self.landmarks is not None:
            landmarks = np.asarray(self.landmarks, dtype=np.float32)
            if landmarks.size == 0:
                landmarks = landmarks.reshape(0, 5, 2)
            _check_shape("landmarks", landmarks, (len(self.boxes), 5, 2))
            object.__setattr__(self, "landmarks", landmarks)

    @classmethod
    def empty(cls, with_landmarks: bool = True) -> Faces:
        landmarks = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), landmarks)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Face]:
        return (self[i] for i in range(len(self)))

    @overload
    def __getitem__(self, index: int) -> Face: ...

    @overload
    def __getitem__(self, index: Union[slice, np.ndarray, list]) -> Faces: ...

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, (int, np.integer)):
            landmarks = None if self.landmarks is None else self.landmarks[index]
            return Face(self.boxes[index], float(self.scores[index]), landmarks)
        landmarks = None if self.landmarks is None else self.landmarks[index]
        return Faces(self.boxes[index], self.scores[index], landmarks)

    @property
    def xywh(self) -> np.ndarray:
        """``(N, 4)`` float32 ``x, y, w, h``."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    @property
    def areas(self) -> np.ndarray:
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])

    def largest(self, count: int) -> Faces:
        """The ``count`` faces with the largest boxes, largest first (DeepFace's ``max_faces``)."""
        order = np.argsort(-self.areas, kind="stable")[:count]
        return self[order]
