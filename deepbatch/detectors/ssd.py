"""OpenCV's res10 SSD face detector (``res10_300x300_ssd_iter_140000.caffemodel`` + ``deploy.prototxt``), DeepFace's
``ssd``, run by ``cv2.dnn``: one model call per chunk.

A chunk of images goes through one ``cv2.dnn.blobFromImages`` call (each image stretched to 300x300, BGR, minus the
training mean (104, 177, 123), OpenCV's published pre-processing for this model) and one ``forward``. The network
ends in Caffe's ``DetectionOutput`` layer, which decodes the prior boxes and applies NMS (0.45) itself: its
``[1, 1, K, 7]`` rows are ``image index, label, score, x1, y1, x2, y2`` with corners normalised to [0, 1], so each
image's faces are the rows carrying its index. No landmarks.

Weights: OpenCV publishes the Caffe pair (``cv2.dnn`` reads Caffe in OpenCV 4.x). The caffemodel's SHA-1 is
``15aa726b4d46d9f023526d85537db81cbc8dd566`` (OpenCV's ``samples/dnn/models.yml``), but no SHA-256 is published,
and deepbatch downloads only files with a pinned SHA-256: the user fetches both files from the URLs below (the
missing-weights error names them) and puts them in a weights folder, or passes ``model_path`` and ``config_path``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import clip_boxes
from ..structures import Faces
from ..weights import WeightFile, resolve_weights
from .base import DETECTORS, Detector, fraction

SSD_HOME = "https://github.com/opencv/opencv/tree/4.x/samples/dnn/face_detector"
SSD_WEIGHTS = WeightFile(
    "res10_300x300_ssd_iter_140000.caffemodel",
    ("opencv_face_detector.caffemodel",),
    homepage=SSD_HOME,
    # OpenCV publishes only a SHA-1 for it, so it is not downloaded automatically: the user fetches it
    manual="fetch https://github.com/opencv/opencv_3rdparty/raw/dnn_samples_face_detector_20170830/"
           "res10_300x300_ssd_iter_140000.caffemodel (SHA-1 15aa726b4d46d9f023526d85537db81cbc8dd566)",
)
SSD_CONFIG = WeightFile(
    "deploy.prototxt",
    ("opencv_face_detector.prototxt", "res10_300x300_ssd_deploy.prototxt"),
    homepage=SSD_HOME,
    manual="fetch https://raw.githubusercontent.com/opencv/opencv/4.10.0/samples/dnn/face_detector/deploy.prototxt",
)
INPUT_SIZE = (300, 300)
MEAN_BGR = (104.0, 177.0, 123.0)
FACE_LABEL = 1
# Columns of a DetectionOutput row.
_IMAGE, _LABEL, _SCORE, _BOX = 0, 1, 2, slice(3, 7)


@DETECTORS.register("ssd", summary="OpenCV res10 SSD (Caffe, cv2.dnn), batched with blobFromImages",
                     licence="not stated: check OpenCV's samples/dnn/face_detector before use")
class OpenCVSSD(Detector):
    """The res10 SSD through ``cv2.dnn``. ``model_path`` and ``config_path`` override the weights lookup of the
    caffemodel and the prototxt; ``score_threshold`` is the face probability a detection must reach."""

    name = "ssd"
    runs_on = "OpenCV's cv2.dnn (Caffe)"
    batches_whole_chunks = True
    has_landmarks = False
    weights = SSD_WEIGHTS  # what `deepbatch models` and the registry's tests look up

    def __init__(self, model_path: Optional[Union[str, Path]] = None,
                 config_path: Optional[Union[str, Path]] = None, score_threshold: float = 0.5):
        import cv2

        self.score_threshold = fraction("score_threshold", score_threshold)  # checked before the weights are found
        weights = resolve_weights(SSD_WEIGHTS, model_path)
        config = resolve_weights(SSD_CONFIG, config_path)
        _check_classes(config)
        try:
            self.net = cv2.dnn.readNetFromCaffe(str(config), str(weights))
        except cv2.error as exc:
            raise ModelFormatError(f"{weights.name} with {config.name}: cv2.dnn cannot read this Caffe model "
                                   f"({str(exc).strip().splitlines()[-1]})") from exc
        if "detection_out" not in self.net.getLayerNames():
            raise ModelFormatError(f"{config.name}: no 'detection_out' layer; the ssd backend needs the res10 SSD's "
                                   "DetectionOutput head")
        self._lock = threading.Lock()  # a cv2.dnn.Net holds its input between setInput and forward

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        import cv2

        blob = cv2.dnn.blobFromImages(list(images), 1.0, INPUT_SIZE, MEAN_BGR, swapRB=False, crop=False)
        with self._lock:
            self.net.setInput(blob)
            rows = self.net.forward("detection_out").reshape(-1, 7)
        keep = (rows[:, _LABEL] == FACE_LABEL) & (rows[:, _SCORE] >= self.score_threshold)
        rows = rows[keep]
        return [_faces(rows[rows[:, _IMAGE] == index], image.shape) for index, image in enumerate(images)]


def _check_classes(config: Path) -> None:
    """Refuse a prototxt whose ``DetectionOutput`` has other classes than background and face (label 1)."""
    import re

    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # cv2.dnn reports an unreadable file itself
    counts = {int(n) for n in re.findall(r"num_classes\s*:\s*(\d+)", text)}
    if counts and counts != {2}:
        raise ModelFormatError(f"{config.name}: its DetectionOutput has {', '.join(map(str, sorted(counts)))} "
                               "classes; the ssd backend reads label 1 as the face of a detector with 2 (background, "
                               "face)")


def _faces(rows: np.ndarray, shape: Sequence[int]) -> Faces:
    """One image's faces: normalised corners scaled to its pixels and clipped to it (priors are not clipped)."""
    height, width = shape[:2]
    boxes = clip_boxes(rows[:, _BOX].astype(np.float32) * np.array([width, height, width, height], np.float32), shape)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Faces(boxes[valid], rows[valid, _SCORE].astype(np.float32), None)
