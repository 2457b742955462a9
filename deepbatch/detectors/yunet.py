"""YuNet (OpenCV Zoo): anchor-free, one prediction per cell at strides 8/16/32, with 5 landmarks.

The export has outputs ``cls_{s}``, ``obj_{s}`` (B, cells, 1), ``bbox_{s}`` (B, cells, 4) and ``kps_{s}``
(B, cells, 10) per stride ``s``, cells row-major over an ``H/s x W/s`` grid. Decoding follows OpenCV's
``FaceDetectorYN``: score ``sqrt(clip(cls) * clip(obj))``; box centre ``(col + dx, row + dy) * s``, size
``exp(dw, dh) * s``; landmark ``(col + kx, row + ky) * s``. Landmarks come in observer order (the eye on the image's
left first) and are returned person-relative. Input: BGR pixels 0-255, padded at the bottom and right (the same
top-left letterbox ``FaceDetectorYN`` applies). Height and width are dynamic; the declared batch of 1 is freed.

The ``cls`` and ``obj`` heads of the published exports end in ``Sigmoid``; a head read from the graph to come straight
out of a ``Conv`` (an export cut before its sigmoid) holds logits and gets the sigmoid here.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import anchor_centers
from ..ops.letterbox import InputSpec
from ..runtime.graph_facts import LINEAR, GraphFacts, sigmoid
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector

YUNET_WEIGHTS = WeightFile(
    "face_detection_yunet_2026may.onnx",
    (),
    # Git LFS content at a fixed commit of opencv_zoo (the branch URL moves)
    "https://media.githubusercontent.com/media/opencv/opencv_zoo/26cc381e4d2594bb9f47a26eb8fd96c94a13660d/models/"
    "face_detection_yunet/face_detection_yunet_2026may.onnx",
    sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
    homepage="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
)
STRIDES = (8, 16, 32)
_HEADS = ("cls", "obj", "bbox", "kps")


@DETECTORS.register("yunet", summary="YuNet (OpenCV Zoo), 5 landmarks", weights=YUNET_WEIGHTS,
                     licence="MIT")
class YuNet(OnnxDetector):
    """YuNet on ONNX Runtime, one model call per chunk; decoding identical to ``cv2.FaceDetectorYN``."""

    name = "yunet"
    weights = YUNET_WEIGHTS
    has_landmarks = True
    default_input = InputSpec(size=(640, 640), mean=0.0, std=1.0, rgb=False)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        facts = GraphFacts.of(self.model.path)
        self.logit_outputs = {name for name in facts.output_names if name.split("_")[0] in ("cls", "obj")
                              and facts.head(name).activation == LINEAR}

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        if self.logit_outputs:
            outputs = [sigmoid(out) if name in self.logit_outputs else out
                       for name, out in zip(self.model.output_names, outputs)]
        heads = self._heads(outputs)
        cls, obj = (np.concatenate(heads[key], axis=1)[..., 0] for key in ("cls", "obj"))
        return np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               cell: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        heads = self._heads(outputs)
        width, height = self.input_spec.size
        grids = [anchor_centers(height // stride, width // stride, 1, 1) for stride in STRIDES]  # (col, row)
        all_cells = np.concatenate(grids)
        all_strides = np.concatenate([np.full(len(g), s, np.float32) for g, s in zip(grids, STRIDES)])[:, None]
        bbox, kps = (np.concatenate(heads[key], axis=1) for key in ("bbox", "kps"))
        if bbox.shape[1] != len(all_cells):
            raise ModelFormatError(f"YuNet gave {bbox.shape[1]} cells for a {width}x{height} canvas; expected "
                                   f"{len(all_cells)} (strides {STRIDES})")
        cell_stride = all_strides[cell]
        origin = all_cells[cell]
        box = bbox[image_index, cell]
        centers = (origin + box[:, :2]) * cell_stride
        sizes = np.exp(box[:, 2:]) * cell_stride
        boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        points = (origin[:, None, :] + kps[image_index, cell].reshape(-1, 5, 2)) * cell_stride[:, None, :]
        return boxes, points

    def _heads(self, outputs: List[np.ndarray]) -> dict:
        by_name = dict(zip(self.model.output_names, outputs))
        missing = [f"{head}_{s}" for head in _HEADS for s in STRIDES if f"{head}_{s}" not in by_name]
        if missing:
            raise ModelFormatError(f"YuNet export lacks outputs {', '.join(missing)}; this backend reads the "
                                   "2023 and later exports (cls/obj/bbox/kps per stride 8, 16, 32)")
        return {head: [by_name[f"{head}_{s}"] for s in STRIDES] for head in _HEADS}
