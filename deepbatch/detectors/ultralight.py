"""Ultra-Light-Fast-Generic-Face-Detector-1MB (RFB-320 / RFB-640): SSD-style, boxes only, no landmarks.

The published exports decode their boxes inside the graph: ``scores`` (B, N, 2) softmaxed (column 1 is the face)
and ``boxes`` (B, N, 4) xyxy normalised to the canvas. Their priors are graph constants, so the canvas is fixed:
320x240 for RFB-320, 640x480 for RFB-640. Exports without that post-processing (``*_without_postprocessing.onnx``)
give the raw regressions instead; pass ``priors=ULTRALIGHT_PRIORS`` to decode them here.

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
from ..ops.boxes import split_by_image
from ..ops.letterbox import InputSpec, Letterboxed
from ..ops.priors import PriorSpec, decode_priors
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector, RawDetections

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
CANVAS = {"ultralight_320": (320, 240), "ultralight_640": (640, 480)}
# The priors the exports bake in (vision/ssd/config/fd_config.py of the reference code).
ULTRALIGHT_PRIORS = PriorSpec(steps=(8, 16, 32, 64), min_sizes=((10, 16, 24), (32, 48), (64, 96), (128, 192, 256)),
                              variances=(0.1, 0.2), clip=True, fit_cells=True)


class UltraLight(OnnxDetector):
    """Ultra-Light RFB face detector on its fixed export canvas, native batching, no landmarks.

    ``canvas`` is the export's ``(width, height)`` (set per registered variant); ``input_size`` may only repeat it.
    ``priors`` decodes exports that output raw regressions instead of boxes.
    """

    name = "ultralight"
    weights = ULTRALIGHT_WEIGHTS["ultralight_320"]
    dynamic_spatial = False  # the priors are constants of the graph
    size_multiple = 16  # 320x240 and 640x480 canvases

    def __init__(self, model_path: Optional[Union[str, Path]] = None, canvas: Tuple[int, int] = (320, 240),
                 input_size: Optional[Union[int, Tuple[int, int]]] = None, priors: Optional[PriorSpec] = None,
                 **kwargs: Any):
        self.canvas = (int(canvas[0]), int(canvas[1]))
        if input_size is not None and _pair(input_size) != self.canvas:
            raise ValueError(f"Ultra-Light runs on the fixed {self.canvas[0]}x{self.canvas[1]} canvas its export "
                             f"was made for, got input_size={input_size!r}; leave input_size out, or pick the other "
                             "variant (ultralight_320: 320x240, ultralight_640: 640x480)")
        self.priors = priors
        super().__init__(model_path, input_size=self.canvas, **kwargs)

    def build_input_spec(self, size: Tuple[int, int]) -> InputSpec:
        return InputSpec(size=self.canvas, mean=127.0, std=128.0, rgb=True, keep_ratio=False)

    def decode(self, outputs: List[np.ndarray], batch: Letterboxed) -> List[RawDetections]:
        scores, boxes = _scores_and_boxes(outputs)
        face = scores[..., 1]
        width, height = self.canvas
        if self.priors is not None:
            found = decode_priors(self.priors, boxes, face, self.score_threshold, self.canvas)
            image_index, picked, decoded = found.image_index, found.scores, found.boxes
        else:
            image_index, anchor = np.nonzero(face >= self.score_threshold)
            picked = face[image_index, anchor]
            decoded = boxes[image_index, anchor] * np.array([width, height, width, height], np.float32)
        return [RawDetections(decoded[part], picked[part]) for part in split_by_image(image_index, len(face))]


def _pair(size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _scores_and_boxes(outputs: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    shapes = sorted((out.shape[-1], i) for i, out in enumerate(outputs))
    if len(outputs) != 2 or [c for c, _ in shapes] != [2, 4] or any(out.ndim != 3 for out in outputs):
        raise ModelFormatError(f"unexpected Ultra-Light outputs {[o.shape for o in outputs]}; expected scores "
                               "(batch, priors, 2) and boxes (batch, priors, 4)")
    return outputs[shapes[0][1]], outputs[shapes[1][1]]


for _variant, _weights in ULTRALIGHT_WEIGHTS.items():
    DETECTORS.register(_variant, summary=f"Ultra-Light RFB-{_variant.split('_')[1]}, no landmarks",
                       weights=_weights, canvas=CANVAS[_variant])(UltraLight)
DETECTORS.alias("ultralight", "ultralight_320")
