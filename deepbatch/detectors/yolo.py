"""YOLO face detectors (YOLOv8 / YOLO11 face releases) on ONNX Runtime, decoded with numpy; no torch needed.

Every chunk of images is letterboxed as ultralytics does it (RGB, ``x / 255``, image centred on a canvas padded
with grey 114) and run through one ``session.run``. Two export layouts are read, told apart by their outputs:

* **decoded** (ultralytics' own ONNX exporter, as published by akanametov/yolo-face and lindevs/yolov8-face): one
  output ``(B, 4 + 1 + K*D, N)`` (``(B, N, 4 + 1 + K*D)`` is read too): box centre ``x, y``, width, height in canvas
  pixels, the face score (sigmoid applied), then ``K`` keypoints of ``D`` values each (``x, y`` in canvas pixels,
  then a visibility score when ``D = 3``). Detection-only releases have ``K = 0`` and give ``landmarks=None``;
  pose-style face models have ``K = 5``.
* **end-to-end** (NMS-free YOLOv10 and later exports): one output ``(B, K, 6)`` or ``(B, K, 6 + 15)``: box corners
  in canvas pixels, score, class and, for pose models, 5 keypoints ``(x, y, visibility)``; no NMS is applied.
* **raw heads** (derronqi/yolov8-face exports used by OpenCV-DNN demos): one output per stride,
  ``(B, 4*R + 1 + 3K, H/s, W/s)`` with ``R = 16`` distribution bins per box side (DFL), a score logit and keypoint
  offsets; a box side is ``softmax(bins) . arange(R)`` strides from the cell centre, a keypoint ``(2*d + cell) * s``.

Classes: ultralytics exports record their class names in the file's metadata (``names``); a row has one score per
class. Only the face classes are kept: those named like a face, or those the caller names with ``classes=`` (ids or
names; for a model whose classes are expressions or attributes of a face). A file whose classes include none named
like a face, and no ``classes=``, is refused, listing them. A file without names is read as a one-class face model.
Class scores are read as probabilities when their part of the output's ``Concat`` ends in ``Sigmoid``, as logits
(the sigmoid is applied here) when it comes straight out of a ``Conv``; the raw-head layout's are logits unless the
graph shows a ``Sigmoid``.

Keypoints come in the observer's order of the WIDER FACE annotations (the eye on the image's left first) and are
permuted to deepbatch's person-relative order. The ultralytics runtime of the same models is
:mod:`deepbatch.detectors.yolo_ultralytics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import anchor_centers
from ..ops.letterbox import InputSpec
from ..runtime.graph_facts import LINEAR, SIGMOID, GraphFacts
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector
from .classes import ClassChoice, face_class_ids

AKANAMETOV_RELEASES = "https://github.com/akanametov/yolo-face/releases/download/v0.0.0"

# Registered YOLO face releases: name -> file stem ("<stem>.onnx" for ONNX Runtime, "<stem>.pt" for ultralytics).
YOLO_VARIANTS: Dict[str, str] = {
    "yolov8n": "yolov8n-face",
    "yolov8m": "yolov8m-face",
    "yolov11n": "yolov11n-face",
    "yolov11s": "yolov11s-face",
    "yolov11m": "yolov11m-face",
}
# DeepFace's name for its YOLOv8 face backend.
YOLO_ALIASES = {"yolov8": "yolov8n"}
YOLO_FACE_LICENCE = "not stated: check akanametov/yolo-face before use"


def yolo_weights(variant: str, suffix: str) -> WeightFile:
    """The published ``.onnx`` or ``.pt`` file of a registered variant. No SHA-256 of these release files is
    published, so they are not downloaded automatically: the user fetches the file from its release page."""
    filename = f"{YOLO_VARIANTS[variant]}.{suffix}"
    return WeightFile(filename, homepage=f"{AKANAMETOV_RELEASES}/{filename}")


# Keypoint channels of a row after its box and class scores -> (number of keypoints, values per keypoint).
_KEYPOINT_CHANNELS: Dict[int, Tuple[int, int]] = {0: (0, 0), 10: (5, 2), 15: (5, 3)}
DFL_BINS = 16
# Channels of an NMS-free end-to-end row (YOLOv10 and later): box (4) + score + class + keypoints -> (number of
# keypoints, values per keypoint).
_END_TO_END_CHANNELS: Dict[int, Tuple[int, int]] = {6: (0, 3), 21: (5, 3)}


def keypoints_to_landmarks(points: np.ndarray) -> np.ndarray:
    """(N, 5, 2) observer-ordered YOLO-face keypoints in person-relative order (see :mod:`deepbatch.structures`)."""
    return points[:, OBSERVER_TO_PERSON]


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) ``cx, cy, w, h`` to (N, 4) ``x1, y1, x2, y2``."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class YoloFace(OnnxDetector):
    """YOLO face detector on ONNX Runtime, one model call per chunk; reads decoded, end-to-end and raw-head exports.

    ``classes``: the ids or names of the classes that count as faces (default: the file's classes named like a
    face; every candidate of a file that records no names)."""

    name = "yolo"
    has_landmarks = True
    landmark_summary = "5 points (detection-only exports: none)"
    weights = yolo_weights("yolov8n", "onnx")
    default_input = InputSpec(size=(640, 640), mean=0.0, std=255.0, rgb=True, keep_ratio=True, center=True,
                              pad_value=114)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, classes: ClassChoice = None, **kwargs: Any):
        super().__init__(**kwargs)
        facts = GraphFacts.of(self.model.path)
        names = facts.class_names()
        self.class_names = names
        self.class_count = len(names) if names else 1
        self.face_classes = face_class_ids(names, classes, Path(self.model.path).name)
        outputs = self.model.session.get_outputs()
        shapes = [o.shape for o in outputs]
        self.nms_free = len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][2] in _END_TO_END_CHANNELS
        self.has_landmarks = not _declares_no_keypoints(shapes, self.class_count)
        # Decoded and raw-head outputs are one Concat of boxes, class scores and keypoints: the class scores are
        # probabilities when their part ends in Sigmoid, logits when it comes straight out of a Conv.
        parts = [] if self.nms_free else facts.heads(outputs[0].name)
        score_part = parts[1].activation if len(parts) >= 2 else None
        self.score_logits = score_part == LINEAR if len(outputs) == 1 else score_part != SIGMOID

    def _face_columns(self, rows: np.ndarray) -> np.ndarray:
        """(B, N) face score of (B, N, nc) class scores: a candidate is of its best class (as ultralytics decides),
        and a face when that class is one of the face classes (score 0 otherwise)."""
        if self.face_classes is None:
            return rows[..., 0]
        return np.where(np.isin(rows.argmax(axis=-1), self.face_classes), rows.max(axis=-1), 0.0)

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        if len(outputs) == 1 and outputs[0].ndim == 3:
            rows = self._rows(outputs[0])
            if self.nms_free:
                if self.face_classes is None:
                    return rows[:, :, 4]
                return np.where(np.isin(rows[:, :, 5].round(), self.face_classes), rows[:, :, 4], 0.0)
            scores = rows[:, :, 4 : 4 + self.class_count]
            return self._face_columns(_sigmoid(scores) if self.score_logits else scores)
        heads = _raw_heads(outputs, self.class_count)
        start = 4 * DFL_BINS
        scores = np.concatenate([o[:, start : start + self.class_count].reshape(len(o), self.class_count, -1)
                                 for o in heads], axis=2).transpose(0, 2, 1)
        return self._face_columns(_sigmoid(scores) if self.score_logits else scores)

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if len(outputs) == 1 and outputs[0].ndim == 3:
            boxes, landmarks = self._decode_rows(self._rows(outputs[0])[image_index, anchor])
        else:
            boxes, landmarks = self._decode_raw_heads(_raw_heads(outputs, self.class_count), image_index, anchor)
        return boxes.astype(np.float32), None if landmarks is None else landmarks.astype(np.float32)

    def _rows(self, out: np.ndarray) -> np.ndarray:
        """The one output of a decoded or end-to-end export as ``(B, N, C)`` candidate rows."""
        if self.nms_free:
            return out
        extra = 4 + self.class_count
        if out.shape[1] - extra in _KEYPOINT_CHANNELS:
            return out.transpose(0, 2, 1)
        if out.shape[2] - extra in _KEYPOINT_CHANNELS:
            return out
        raise ModelFormatError(
            f"YOLO output {out.shape}: with {self.class_count} class(es) expected {extra} (box, class scores), "
            f"{extra + 10} or {extra + 15} (and 5 keypoints) channels")

    def _decode_rows(self, rows: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(M, C) rows in canvas pixels: decoded ``cx, cy, w, h, score`` then ``K`` keypoints of ``D`` values;
        end-to-end ``x1, y1, x2, y2, score, class`` then ``P`` keypoints ``(x, y, visibility)``."""
        if self.nms_free:
            (count, values), boxes = _END_TO_END_CHANNELS[rows.shape[1]], rows[:, :4]
        else:
            (count, values) = _KEYPOINT_CHANNELS[rows.shape[1] - 4 - self.class_count]
            boxes = cxcywh_to_xyxy(rows[:, :4])
        start = rows.shape[1] - count * values
        return boxes, rows[:, start:].reshape(len(rows), count, values)[:, :, :2] if count else None

    def _decode_raw_heads(self, heads: List[np.ndarray], image_index: np.ndarray,
                          anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """One ``(B, 4*R + 1 + 3K, h, w)`` output per stride: DFL box bins, a score logit, keypoint offsets."""
        canvas_height = self.input_spec.height
        strides = np.concatenate([np.full(o.shape[2] * o.shape[3], canvas_height // o.shape[2], np.float32)
                                  for o in heads])
        cells = np.concatenate([anchor_centers(o.shape[2], o.shape[3], canvas_height // o.shape[2], 1) for o in heads])
        flat = np.concatenate([o.reshape(o.shape[0], o.shape[1], -1) for o in heads], axis=2)  # (B, C, N)
        rows = flat[image_index, :, anchor]  # (M, C): advanced indices around a slice come first
        stride = strides[anchor][:, None]
        bins = rows[:, : 4 * DFL_BINS].reshape(len(rows), 4, DFL_BINS)
        bins = np.exp(bins - bins.max(axis=2, keepdims=True))
        sides = (bins / bins.sum(axis=2, keepdims=True)) @ np.arange(DFL_BINS, dtype=np.float32) * stride
        centers = cells[anchor] + stride / 2
        boxes = np.concatenate([centers - sides[:, :2], centers + sides[:, 2:]], axis=1)
        if heads[0].shape[1] == 4 * DFL_BINS + self.class_count:
            return boxes, None
        offsets = rows[:, 4 * DFL_BINS + self.class_count :].reshape(len(rows), 5, 3)[:, :, :2]
        return boxes, cells[anchor][:, None, :] + 2 * offsets * stride[:, :, None]


def _raw_heads(outputs: List[np.ndarray], classes: int = 1) -> List[np.ndarray]:
    """Raw per-stride heads, from the finest stride; any other layout raises :class:`ModelFormatError`."""
    if not outputs or not all(o.ndim == 4 for o in outputs):
        raise ModelFormatError(
            f"unexpected YOLO output shapes {[o.shape for o in outputs]}: expected one (batch, 4+1+K*D, anchors) "
            "output (ultralytics export) or one (batch, 64+1+3K, H/s, W/s) output per stride (raw heads)"
        )
    heads = sorted(outputs, key=lambda o: -o.shape[2] * o.shape[3])
    channels = {o.shape[1] for o in heads}
    if len(channels) != 1 or channels.pop() - 4 * DFL_BINS - classes not in (0, 15):
        raise ModelFormatError(f"YOLO raw-head outputs with {sorted(o.shape[1] for o in heads)} channels: with "
                               f"{classes} class(es) expected {4 * DFL_BINS + classes} or "
                               f"{4 * DFL_BINS + classes + 15} on every stride")
    return heads


def _declares_no_keypoints(shapes: List[List[Any]], classes: int = 1) -> bool:
    """True when the declared output shapes are those of a detection-only export (4 + nc or 4*R + nc channels)."""
    if len(shapes) == 1 and len(shapes[0]) == 3:
        return 4 + classes in shapes[0][1:] or shapes[0][2] == 6
    return bool(shapes) and all(len(s) == 4 and s[1] == 4 * DFL_BINS + classes for s in shapes)


for _variant in YOLO_VARIANTS:
    DETECTORS.register(_variant, summary=f"YOLO face {_variant[4:].upper()} on ONNX Runtime",
                       weights=yolo_weights(_variant, "onnx"), licence=YOLO_FACE_LICENCE)(YoloFace)
for _alias, _target in YOLO_ALIASES.items():
    DETECTORS.alias(_alias, _target)
