"""CenterFace (Star-Clouds): a face as a point on a stride-4 heatmap, with box size, sub-cell offset and 5 landmarks.

The public export (``centerface.onnx``) declares ``input.1`` as [1, 3, 32, 32] and its four outputs as
[1, C, 8, 8]; both batch and spatial axes are freed here. Outputs, in export order: heatmap (B, 1, H/4, W/4) already
passed through a sigmoid, scale (B, 2, ...) as ``log(height / 4), log(width / 4)``, offset (B, 2, ...) as
``dy, dx`` in cells, landmarks (B, 10, ...) as ``y, x`` pairs relative to the box's top-left corner in units of the
box's height and width. The two 2-channel outputs are told apart by their order (scale first), as the reference
decoder does. Input: RGB pixels 0-255, no normalisation.

Decoding reproduces the reference ``decode`` of prj-python/centerface.py: the top-left corner is clamped to the
canvas before the width and height are added, and the landmarks are placed from that corner. Landmarks are in
observer order (the eye on the image's left first) and are returned person-relative. A heatmap read from the graph
to come straight out of a ``Conv`` (an export cut before its sigmoid) holds logits and gets the sigmoid here.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelFormatError
from ..ops.letterbox import InputSpec
from ..runtime.graph_facts import LINEAR, GraphFacts, sigmoid
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector

CENTERFACE_WEIGHTS = WeightFile(
    "centerface.onnx",
    ("centerface_bnmerged.onnx",),
    # published only on a moving branch with no digest, so it is not downloaded automatically: the user fetches it
    homepage="https://github.com/Star-Clouds/CenterFace/tree/master/models/onnx",
)
STRIDE = 4
_LAYOUT = (("heatmap", 1), ("scale", 2), ("offset", 2), ("landmarks", 10))


@DETECTORS.register("centerface", summary="CenterFace, 5 landmarks", weights=CENTERFACE_WEIGHTS,
                     licence="no licence file in Star-Clouds/CenterFace: check before use")
class CenterFace(OnnxDetector):
    """CenterFace, one model call per chunk (any canvas that is a multiple of 32)."""

    name = "centerface"
    weights = CENTERFACE_WEIGHTS
    has_landmarks = True
    default_input = InputSpec(size=(640, 640), mean=0.0, std=1.0, rgb=True)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.heatmap_logits = GraphFacts.of(self.model.path).head(self.model.output_names[0]).activation == LINEAR

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        heat = _maps(outputs)["heatmap"]
        if self.heatmap_logits:
            heat = sigmoid(heat)
        return heat.reshape(len(heat), -1)  # cells row-major: candidate = row * (W / 4) + col

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               cell: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        maps = _maps(outputs)
        row, col = np.divmod(cell, maps["heatmap"].shape[3])
        size = np.exp(maps["scale"][image_index, :, row, col]) * STRIDE  # (M, 2): height, width
        offset = maps["offset"][image_index, :, row, col]  # (M, 2): dy, dx
        center = (np.stack([col, row], axis=1) + offset[:, ::-1] + 0.5) * STRIDE
        extent = size[:, ::-1]  # width, height
        canvas = np.array(self.input_spec.size, np.float32)
        top_left = np.minimum(np.maximum(center - extent / 2, 0), canvas)
        boxes = np.concatenate([top_left, np.minimum(top_left + extent, canvas)], axis=1)
        relative = maps["landmarks"][image_index, :, row, col].reshape(-1, 5, 2)[..., ::-1]  # y, x -> x, y
        return boxes, relative * extent[:, None, :] + top_left[:, None, :]


def _maps(outputs: List[np.ndarray]) -> Dict[str, np.ndarray]:
    channels = [out.shape[1] if out.ndim == 4 else None for out in outputs]
    if channels != [c for _, c in _LAYOUT]:
        raise ModelFormatError(f"unexpected CenterFace outputs {[o.shape for o in outputs]}; expected heatmap, "
                               "scale, offset and landmarks maps with 1, 2, 2 and 10 channels, in that order")
    return {name: out for (name, _), out in zip(_LAYOUT, outputs)}
