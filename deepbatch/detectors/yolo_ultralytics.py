"""YOLO face detectors on ultralytics (optional extra ``deepbatch[yolo]``): the ``<variant>_pt`` backends.

The same releases as :mod:`deepbatch.detectors.yolo`, run by ultralytics from their ``.pt`` checkpoints (any file
ultralytics loads works through ``model_path``, its ONNX exports included). One call per chunk: one
``model.predict(list_of_images)`` call per chunk; ultralytics letterboxes each image onto the square canvas
(``rect=False``, so an image gets the same canvas alone or in a batch), runs one forward pass for the chunk and maps
boxes and keypoints back to each original image. Keypoints are permuted to person-relative order; detection-only
checkpoints give ``landmarks=None``. Of a multi-class model only the face classes are kept (ultralytics' own
``classes`` filter): those named like a face in the model's ``names``, or those given as ``classes=``; a model with no
class named like a face is refused, listing its classes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from ..errors import MissingDependencyError, ModelFormatError
from ..structures import Faces
from ..weights import PICKLE_SUFFIXES, WeightFile, checked_copy, resolve_weights
from .base import DETECTORS, Detector, fraction
from .classes import ClassChoice, face_class_ids
from .yolo import YOLO_FACE_LICENCE, YOLO_VARIANTS, keypoints_to_landmarks, yolo_weights


def import_ultralytics() -> Any:
    try:
        import ultralytics
    except ImportError as exc:
        raise MissingDependencyError("ultralytics", "yolo", "The ultralytics YOLO face backend") from exc
    return ultralytics


def export_task(path: Path) -> Optional[str]:
    """The ``task`` an ultralytics ONNX export records in its metadata (``detect``, ``pose``, ...); None for other
    files, whose task ultralytics reads from the checkpoint itself."""
    if path.suffix.lower() != ".onnx":
        return None
    from ..runtime.surgery import import_onnx

    metadata = {p.key: p.value for p in import_onnx().load(str(path), load_external_data=False).metadata_props}
    return metadata.get("task")


class UltralyticsYoloFace(Detector):
    """YOLO face detector run by ultralytics, one ``predict`` call per chunk.

    ``model_path`` overrides the weights lookup; ``input_size`` is the square canvas side in pixels;
    ``score_threshold`` and ``nms_threshold`` are ultralytics' ``conf`` and ``iou``; ``device`` is ultralytics'
    device string (``"cpu"``, ``"0"`` for the first GPU); ``classes`` the ids or names of the classes that count as
    faces (default: those named like a face).
    """

    name = "yolo_pt"
    extra = "yolo"
    runs_on = "ultralytics (PyTorch)"
    landmark_summary = "5 points (detection-only checkpoints: none)"
    batches_whole_chunks = True
    has_landmarks = True
    weights: WeightFile = yolo_weights("yolov8n", "pt")

    def __init__(
        self,
        model_path: Optional[Union[str, Path]] = None,
        input_size: int = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        device: str = "cpu",
        max_faces: int = 300,
        weights: Optional[WeightFile] = None,
        classes: ClassChoice = None,
    ):
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 and at least 32, got {input_size}")
        conf, iou = fraction("score_threshold", score_threshold), fraction("nms_threshold", nms_threshold)
        ultralytics = import_ultralytics()
        if weights is not None:
            self.weights = weights
        self.path = resolve_weights(self.weights, model_path)
        if self.path.suffix.lower() in PICKLE_SUFFIXES:
            with checked_copy(self.path) as checked:  # unpickled from the very bytes that were hashed
                self.model = ultralytics.YOLO(str(checked), task=None)
        else:
            self.model = ultralytics.YOLO(str(self.path), task=export_task(self.path))
        self.has_landmarks = getattr(self.model, "task", None) == "pose"
        names = getattr(self.model, "names", None)
        self.face_classes = face_class_ids(dict(names) if names else None, classes, self.path.name)
        self.options = dict(imgsz=input_size, conf=conf, iou=iou, device=device,
                            max_det=int(max_faces), rect=False, verbose=False, classes=self.face_classes,
                            agnostic_nms=True)  # faces of several classes (expressions) are one kind of object
        self._lock = threading.Lock()  # an ultralytics predictor keeps per-call state

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        with self._lock:
            results = self.model.predict(list(images), batch=len(images), **self.options)
        return [self._faces(result) for result in results]

    def _faces(self, result: Any) -> Faces:
        boxes = result.boxes.xyxy.cpu().numpy().astype(np.float32)
        scores = result.boxes.conf.cpu().numpy().astype(np.float32)
        if result.keypoints is None:
            return Faces(boxes, scores, None)
        points = result.keypoints.xy.cpu().numpy().astype(np.float32)
        if points.ndim != 3 or points.shape[1:] != (5, 2):
            raise ModelFormatError(f"{self.path.name}: keypoints of shape {points.shape[1:]}; a YOLO face model "
                                   "has 5 (eyes, nose, mouth corners)")
        return Faces(boxes, scores, keypoints_to_landmarks(points))


for _variant in YOLO_VARIANTS:
    DETECTORS.register(f"{_variant}_pt", summary=f"YOLO face {_variant[4:].upper()} on ultralytics (deepbatch[yolo])",
                       weights=yolo_weights(_variant, "pt"), licence=YOLO_FACE_LICENCE)(UltralyticsYoloFace)
