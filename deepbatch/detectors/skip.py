"""``skip``: no detection, the whole image is the face (DeepFace's ``detector_backend="skip"``)."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..structures import Faces
from .base import DETECTORS, Detector


@DETECTORS.register("skip", summary="No detection: the whole image is the face (confidence 0)",
                     licence="-")
class SkipDetector(Detector):
    """Returns the whole image as one face, as DeepFace's ``detector_backend="skip"``."""

    name = "skip"
    runs_on = "-"
    bundled_weights = "none"

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        return [Faces(np.array([[0, 0, im.shape[1], im.shape[0]]], np.float32), np.zeros(1, np.float32))
                for im in images]
