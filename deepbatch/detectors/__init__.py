"""Face detectors by name. Importing this package registers every backend in :data:`DETECTORS`.

Backend modules import their heavy dependencies (ONNX Runtime, torch, TensorFlow, dlib) only when a detector is
built, so listing names costs no more than importing OpenCV.
"""

from . import (  # noqa: F401  (registration side effects)
    centerface,
    dlib,
    fastmtcnn,
    lffd,
    mtcnn,
    opencv,
    retinaface,
    scrfd,
    skip,
    ssd,
    ultralight,
    yolo,
    yolo_ultralytics,
    yunet,
)
from .base import DETECTORS, Detector, OnnxDetector, build_detector, list_detectors

__all__ = ["DETECTORS", "Detector", "OnnxDetector", "build_detector", "list_detectors"]
