"""dlib's HOG frontal face detector (built into dlib, no weights to fetch): optional extra ``deepbatch[dlib]``.

Runs image by image (dlib has no batch API for it). As in DeepFace, the image is upsampled once before the search
(``upsample=1``), which finds faces down to about 40 pixels. Scores are the detector's SVM margins, not
probabilities: 0 is its default decision threshold and confident faces score above 1. No landmarks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops.boxes import clip_boxes
from ..optional import require
from ..structures import Faces
from .base import DETECTORS, Detector


def import_dlib() -> Any:
    return require("dlib", "dlib", "The dlib HOG face detector")


@DETECTORS.register("dlib", summary="dlib HOG frontal face detector (built into dlib; deepbatch[dlib]), per image",
                     licence="Boost (dlib)")
class DlibHOG(Detector):
    """dlib's HOG + linear SVM face detector. ``upsample`` is how many times the image is doubled before the
    search; ``score_threshold`` the SVM margin a face must reach (dlib's own default is 0)."""

    name = "dlib"
    extra = "dlib"
    runs_on = "dlib"
    bundled_weights = "built into dlib"
    has_landmarks = False

    def __init__(self, upsample: int = 1, score_threshold: float = 0.0):
        if upsample < 0:
            raise ValueError(f"upsample must be 0 or more, got {upsample}")
        dlib = import_dlib()
        self.detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)
        self.score_threshold = float(score_threshold)

    def detect_image(self, image: np.ndarray) -> Faces:
        rects, scores, _ = self.detector.run(np.ascontiguousarray(image[..., ::-1]), self.upsample,
                                             self.score_threshold)
        if len(rects) == 0:
            return Faces.empty(with_landmarks=False)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32)
        clip_boxes(boxes, image.shape)  # dlib's rectangles may reach past the border
        return Faces(boxes, np.asarray(scores, np.float32), None)
