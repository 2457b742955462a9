"""LFFD (YonghaoHe): anchor-free, receptive fields as natural anchors, one score and one box map per branch.

An ONNX export of the deploy symbol (face_detection/deploy_tensorrt/to_onnx.py of the reference repository) has
input ``data`` (B, 3, H, W) of raw BGR pixels 0-255 (the graph normalises them itself) and, per branch in branch
order, a score map (B, 1, h, w) (the face channel of a softmax) followed by a box map (B, 4, h, w). A cell ``(row,
col)`` of branch ``i`` looks at the receptive-field centre ``start_i + stride_i * (col, row)`` and the box is
``centre - map * RF_i / 2`` for ``x1, y1`` and ``x2, y2`` alike (the reference ``predict.py`` decoding). Branches
of equal stride have equal map sizes, so the branch order is the output order, as in the reference decoder.
No landmarks. A score map read from the graph to come straight out of a ``Conv`` (no softmax) is refused: one channel
of logits is not the face probability, and the background channel it would be compared with is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import anchor_centers
from ..ops.letterbox import InputSpec
from ..runtime.graph_facts import LINEAR, GraphFacts
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector

_HOMEPAGE = "https://github.com/YonghaoHe/LFFD-A-Light-and-Fast-Face-Detector-for-Edge-Devices"


@dataclass(frozen=True)
class LFFDSpec:
    """The branches of an LFFD variant: receptive-field ``sizes`` (the box normaliser is half of each), ``strides``
    and ``starts`` (the centre of a branch's first receptive field), in canvas pixels, in output order."""

    sizes: Tuple[int, ...]
    strides: Tuple[int, ...]
    starts: Tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.sizes) == len(self.strides) == len(self.starts):
            raise ValueError(f"LFFDSpec needs one size, stride and start per branch, got {self}")


# configuration_10_560_25L_8scales_v1.py and configuration_10_320_20L_5scales_v2.py of the reference code.
LFFD_V1 = LFFDSpec(sizes=(15, 20, 40, 70, 110, 250, 400, 560), strides=(4, 4, 8, 8, 16, 32, 32, 32),
                   starts=(3, 3, 7, 7, 15, 31, 31, 31))
LFFD_V2 = LFFDSpec(sizes=(20, 40, 80, 160, 320), strides=(4, 8, 16, 32, 64), starts=(3, 7, 15, 31, 63))

LFFD_WEIGHTS = {
    # The reference repository publishes MXNet parameters and the script that exports them to ONNX, not ONNX files.
    "lffd_v1": WeightFile("lffd_10_560_25L_8scales_v1.onnx", ("symbol_10_560_25L_8scales_v1.onnx",),
                          homepage=f"{_HOMEPAGE}/tree/master/face_detection/deploy_tensorrt"),
    "lffd_v2": WeightFile("lffd_10_320_20L_5scales_v2.onnx", ("symbol_10_320_20L_5scales_v2.onnx",),
                          homepage=f"{_HOMEPAGE}/tree/master/face_detection/deploy_tensorrt"),
}
LFFD_SPECS = {"lffd_v1": LFFD_V1, "lffd_v2": LFFD_V2}
_SUMMARY = {"lffd_v1": "LFFD v1 (10-560 px faces, 8 branches), no landmarks",
            "lffd_v2": "LFFD v2 (10-320 px faces, 5 branches), no landmarks"}


class LFFD(OnnxDetector):
    """LFFD, one model call per chunk; ``spec`` describes the variant's branches (set per registered name)."""

    name = "lffd"
    weights = LFFD_WEIGHTS["lffd_v1"]
    default_input = InputSpec(size=(640, 640), mean=0.0, std=1.0, rgb=False)

    def __init__(self, model_path: Optional[Union[str, Path]] = None, spec: LFFDSpec = LFFD_V1, **kwargs: Any):
        self.spec = spec
        super().__init__(model_path, **kwargs)
        facts = GraphFacts.of(self.model.path)
        for output in self.model.session.get_outputs():
            if len(output.shape) == 4 and output.shape[1] == 1 and facts.head(output.name).activation == LINEAR:
                raise ModelFormatError(
                    f"{Path(self.model.path).name}: score map {output.name!r} comes straight out of a Conv (no "
                    "softmax): the face probability cannot be read from it; export the deploy symbol with its "
                    "softmax (face_detection/deploy_tensorrt/to_onnx.py)")

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        scores, _ = self._branches(outputs)
        return np.concatenate([s.reshape(len(s), -1) for s in scores], axis=1)

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               cell: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        scores, maps = self._branches(outputs)
        points, halves = [], []
        for (rows, cols), stride, start, size in zip((s.shape[1:] for s in scores), self.spec.strides,
                                                     self.spec.starts, self.spec.sizes):
            points.append(anchor_centers(rows, cols, stride, 1) + start)
            halves.append(np.full(rows * cols, size / 2, np.float32))
        all_points = np.concatenate(points)
        all_halves = np.concatenate(halves)[:, None]
        flat_maps = np.concatenate([m.reshape(len(m), 4, -1) for m in maps], axis=2)
        offsets = flat_maps[image_index, :, cell] * all_halves[cell]
        return np.tile(all_points[cell], 2) - offsets, None

    def _branches(self, outputs: List[np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Per branch, the score map (B, h, w) and the box map (B, 4, h, w), in branch order."""
        scores = [out[:, 0] for out in outputs if out.ndim == 4 and out.shape[1] == 1]
        maps = [out for out in outputs if out.ndim == 4 and out.shape[1] == 4]
        branches = len(self.spec.sizes)
        if len(scores) != branches or len(maps) != branches or len(outputs) != 2 * branches:
            raise ModelFormatError(
                f"this LFFD variant has {branches} branches, so its export needs {branches} score maps "
                f"(batch, 1, h, w) and {branches} box maps (batch, 4, h, w); got {[o.shape for o in outputs]}"
            )
        for i, (score, box) in enumerate(zip(scores, maps)):
            if score.shape[1:] != box.shape[2:]:
                raise ModelFormatError(f"LFFD branch {i}: score map {score.shape[1:]} and box map {box.shape[2:]} "
                                       "differ in size")
        return scores, maps


for _variant, _weights in LFFD_WEIGHTS.items():
    DETECTORS.register(_variant, summary=_SUMMARY[_variant], weights=_weights, spec=LFFD_SPECS[_variant],
                       licence="MIT")(LFFD)
DETECTORS.alias("lffd", "lffd_v1")
