"""Face detectors by name. Importing this package registers every backend in :data:`DETECTORS`.

Backend modules import their heavy dependencies only when a detector is built, so listing names is cheap.
"""

from . import (  # noqa: F401  (registration side effects)
    centerface,
    dlib,
    lffd,
    mtcnn,
    opencv,
    retinaface,
    scrfd,
    skip,
    ultralight,
    yolo,
    yolo_ultralytics,
    yunet,
)
from .base import DETECTORS, Detector, OnnxDetector, build_detector, list_detectors

__all__ = ["DETECTORS", "Detector", "OnnxDetector", "build_detector", "list_detectors"]
