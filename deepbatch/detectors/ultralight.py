"""Ultra-Light-Fast-Generic-Face-Detector-1MB (RFB-320 / RFB-640): SSD-style, boxes only, no landmarks.

The published exports decode their boxes inside the graph: ``scores`` (B, N, 2) softmaxed (column 1 is the face)
and ``boxes`` (B, N, 4) xyxy normalised to the canvas. Their priors are graph constants, so the canvas is fixed:
320x240 for RFB-320, 640x480 for RFB-640. Exports without that post-processing (``*_without_postprocessing.onnx``)
give the raw regressions instead; pass ``priors=ULTRALIGHT_PRIORS`` to decode them here. Which one a file holds is
read from its graph when it is loaded: a box output straight out of a ``Conv`` is raw regressions and is refused
without ``priors``; a decoded one is refused with ``priors`` (they would be applied twice). Scores straight out of a
``Conv`` (cut before the softmax) get the softmax here.

Pre-processing is RGB ``(x - 127) / 128``, with each image stretched to the canvas as the reference code does
(``keep_ratio=False``). On the project's 64 photos (74 faces, aspect ratios 0.5 to 1.8) stretching and letterboxing
tie within one image at score 0.5 (RFB-320: 60 vs 59 photos with the right face count; RFB-640: 61 vs 60), so the
pre-processing the model was trained and published with is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..errors import ModelFormatError
from ..ops.letterbox import InputSpec
from ..ops.priors import PriorSpec, decode_priors
from ..runtime.graph_facts import LINEAR, GraphFacts, softmax
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector
from .retinaface import class_logits

_RELEASES = ("https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/raw/"
             "dffdddda9794a50607cba8f318507a28c1c27cab/models/onnx")  # a fixed commit, not a moving branch
_HOMEPAGE = "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB"

ULTRALIGHT_WEIGHTS = {
    "ultralight_320": WeightFile("ultralight_rfb_320.onnx", ("version-RFB-320.onnx",),
                                 f"{_RELEASES}/version-RFB-320.onnx",
                                 sha256="34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",
                                 homepage=_HOMEPAGE),
    "ultralight_640": WeightFile("ultralight_rfb_640.onnx", ("version-RFB-640.onnx",),
                                 f"{_RELEASES}/version-RFB-640.onnx",
                                 sha256="8f4c659275977e7a3bfbfa339a9c769ad793df50f9c0baa8c14b11baa1646430",
                                 homepage=_HOMEPAGE),
}
# The priors the exports bake in (vision/ssd/config/fd_config.py of the reference code).
ULTRALIGHT_PRIORS = PriorSpec(steps=(8, 16, 32, 64), min_sizes=((10, 16, 24), (32, 48), (64, 96), (128, 192, 256)),
                              variances=(0.1, 0.2), clip=True, fit_cells=True)


class UltraLight(OnnxDetector):
    """Ultra-Light RFB face detector on its fixed export canvas, one model call per chunk, no landmarks.

    ``input_size`` defaults to the canvas the export declares; another size raises
    :class:`~deepbatch.errors.ArgumentError`. ``priors`` decodes exports that output raw regressions instead of
    boxes.
    """

    name = "ultralight"
    weights = ULTRALIGHT_WEIGHTS["ultralight_320"]
    default_input = InputSpec(size=(320, 240), mean=127.0, std=128.0, rgb=True, keep_ratio=False)
    dynamic_spatial = False  # the priors are constants of the graph
    size_multiple = 16  # 320x240 and 640x480 canvases

    def __init__(self, model_path: Optional[Union[str, Path]] = None, priors: Optional[PriorSpec] = None,
                 **kwargs: Any):
        self.priors = priors
        super().__init__(model_path, **kwargs)
        facts, name = GraphFacts.of(self.model.path), Path(self.model.path).name
        declared = self.model.session.get_outputs()
        self.score_logits = class_logits(facts, declared, name)
        raw = [o.name for o in declared if len(o.shape) == 3 and o.shape[-1] == 4
               and facts.head(o.name).activation == LINEAR]
        if raw and priors is None:
            raise ModelFormatError(f"{name}: its box output {raw[0]!r} comes straight out of a Conv: raw "
                                   "regressions, not boxes; pass priors=ULTRALIGHT_PRIORS (from "
                                   "deepbatch.detectors.ultralight) to decode them")
        if not raw and priors is not None:
            raise ModelFormatError(f"{name} decodes its boxes inside the graph; priors= would decode them twice: "
                                   "leave it out")

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        scores = _scores_and_boxes(outputs)[0]
        return (softmax(scores) if self.score_logits else scores)[..., 1]

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        boxes = _scores_and_boxes(outputs)[1]
        if self.priors is not None:
            return decode_priors(self.priors, boxes, self.input_spec.size, image_index, anchor)
        width, height = self.input_spec.size
        return boxes[image_index, anchor] * np.array([width, height, width, height], np.float32), None


def _scores_and_boxes(outputs: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    shapes = sorted((out.shape[-1], i) for i, out in enumerate(outputs))
    if len(outputs) != 2 or [c for c, _ in shapes] != [2, 4] or any(out.ndim != 3 for out in outputs):
        raise ModelFormatError(f"unexpected Ultra-Light outputs {[o.shape for o in outputs]}; expected scores "
                               "(batch, priors, 2) and boxes (batch, priors, 4)")
    return outputs[shapes[0][1]], outputs[shapes[1][1]]


for _variant, _weights in ULTRALIGHT_WEIGHTS.items():
    DETECTORS.register(_variant, summary=f"Ultra-Light RFB-{_variant.split('_')[1]}, no landmarks",
                       weights=_weights, licence="MIT")(UltraLight)
DETECTORS.alias("ultralight", "ultralight_320")
