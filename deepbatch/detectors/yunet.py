"""YuNet (OpenCV Zoo): anchor-free, one prediction per cell at strides 8/16/32, with 5 landmarks.

The export has outputs ``cls_{s}``, ``obj_{s}`` (B, cells, 1), ``bbox_{s}`` (B, cells, 4) and ``kps_{s}``
(B, cells, 10) per stride ``s``, cells row-major over an ``H/s x W/s`` grid. Decoding follows OpenCV's
``FaceDetectorYN``: score ``sqrt(clip(cls) * clip(obj))``; box centre ``(col + dx, row + dy) * s``, size
``exp(dw, dh) * s``; landmark ``(col + kx, row + ky) * s``. Landmarks come in observer order (the eye on the image's
left first) and are returned person-relative. Input: BGR pixels 0-255, padded at the bottom and right (the same
top-left letterbox ``FaceDetectorYN`` applies). Height and width are dynamic; the declared batch of 1 is freed.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import anchor_centers, split_by_image
from ..ops.letterbox import InputSpec, Letterboxed
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector, RawDetections

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


@DETECTORS.register("yunet", summary="YuNet (OpenCV Zoo), 5 landmarks", weights=YUNET_WEIGHTS)
class YuNet(OnnxDetector):
    """YuNet on ONNX Runtime with native batching; decoding identical to ``cv2.FaceDetectorYN``."""

    name = "yunet"
    weights = YUNET_WEIGHTS
    has_landmarks = True

    def build_input_spec(self, size: Tuple[int, int]) -> InputSpec:
        return InputSpec(size=size, mean=0.0, std=1.0, rgb=False)

    def decode(self, outputs: List[np.ndarray], batch: Letterboxed) -> List[RawDetections]:
        heads = self._heads(outputs)
        height, width = batch.blob.shape[2:]
        cells, strides = [], []
        for stride in STRIDES:
            grid = anchor_centers(height // stride, width // stride, 1, 1)  # (col, row) of every cell
            cells.append(grid)
            strides.append(np.full(len(grid), stride, np.float32))
        all_cells = np.concatenate(cells)
        all_strides = np.concatenate(strides)[:, None]
        cls, obj, bbox, kps = (np.concatenate(heads[key], axis=1) for key in _HEADS)
        if cls.shape[1] != len(all_cells):
            raise ModelFormatError(f"YuNet gave {cls.shape[1]} cells for a {width}x{height} canvas; expected "
                                   f"{len(all_cells)} (strides {STRIDES})")
        scores = np.sqrt(np.clip(cls[..., 0], 0, 1) * np.clip(obj[..., 0], 0, 1))
        image_index, cell = np.nonzero(scores >= self.score_threshold)
        cell_stride = all_strides[cell]
        origin = all_cells[cell]
        box = bbox[image_index, cell]
        centers = (origin + box[:, :2]) * cell_stride
        sizes = np.exp(box[:, 2:]) * cell_stride
        boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        points = (origin[:, None, :] + kps[image_index, cell].reshape(-1, 5, 2)) * cell_stride[:, None, :]
        landmarks = points[:, OBSERVER_TO_PERSON]
        picked = scores[image_index, cell]
        return [RawDetections(boxes[part], picked[part], landmarks[part])
                for part in split_by_image(image_index, len(scores))]

    def _heads(self, outputs: List[np.ndarray]) -> dict:
        by_name = dict(zip(self.model.output_names, outputs))
        missing = [f"{head}_{s}" for head in _HEADS for s in STRIDES if f"{head}_{s}" not in by_name]
        if missing:
            raise ModelFormatError(f"YuNet export lacks outputs {', '.join(missing)}; this backend reads the "
                                   "2023 and later exports (cls/obj/bbox/kps per stride 8, 16, 32)")
        return {head: [by_name[f"{head}_{s}"] for s in STRIDES] for head in _HEADS}
