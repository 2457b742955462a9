"""RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface export): SSD-style priors, boxes and 5 landmarks.

Outputs are told apart by their channel count: box regressions (B, N, 4), class probabilities (B, N, 2) already
softmaxed (column 1 is the face), landmark offsets (B, N, 10) in observer order (the eye on the image's left first).
Pre-processing is the training one: BGR minus (104, 117, 123), no scaling.

The public export declares a 640x640 input and its FPN upsampling targets were constant-folded for that size, so it
runs only on a 640 canvas; ``input_size`` other than 640 frees the height and width and works for exports made with
dynamic axes, and raises :class:`~deepbatch.errors.ModelFormatError` for this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import split_by_image
from ..ops.letterbox import InputSpec, Letterboxed
from ..ops.priors import PriorSpec, decode_priors
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector, RawDetections, _as_size

RETINAFACE_PRIORS = PriorSpec(steps=(8, 16, 32), min_sizes=((16, 32), (64, 128), (256, 512)), variances=(0.1, 0.2))
EXPORT_SIZE = (640, 640)

RETINAFACE_WEIGHTS = WeightFile(
    "retinaface_mnet025.onnx",
    ("FaceDetector.onnx",),
    sha256="f8cce06cdfa5d2a07a8378c8cff4c4f33f0b00a3f24d9ef53042ff591a881eb7",
    # The project publishes PyTorch weights (releases/download/0.0.1/mobilenet0.25_Final.pth) and the script that
    # exports them (convert_to_onnx.py), not an ONNX file.
    homepage="https://github.com/biubug6/Pytorch_Retinaface",
)
_CHANNELS = {4: "loc", 2: "conf", 10: "landmarks"}


@DETECTORS.register("retinaface", summary="RetinaFace MobileNet-0.25, 5 landmarks", weights=RETINAFACE_WEIGHTS)
class RetinaFace(OnnxDetector):
    """RetinaFace with SSD-style priors (:data:`RETINAFACE_PRIORS`), native batching."""

    name = "retinaface"
    weights = RETINAFACE_WEIGHTS
    has_landmarks = True
    priors: PriorSpec = RETINAFACE_PRIORS

    def __init__(self, model_path: Optional[Union[str, Path]] = None,
                 input_size: Union[int, Tuple[int, int]] = 640, **kwargs: Any):
        # Free the declared 640x640 only when another canvas is asked for (a per-instance choice of the base's flag).
        self.dynamic_spatial = _as_size(input_size) != EXPORT_SIZE
        try:
            super().__init__(model_path, input_size=input_size, **kwargs)
        except Exception as exc:
            if not self.dynamic_spatial or type(exc).__module__.split(".")[0] != "onnxruntime":
                raise
            raise ModelFormatError(
                f"this RetinaFace export does not run at input_size={input_size!r}: its upsampling sizes are fixed "
                f"for a {EXPORT_SIZE[0]}x{EXPORT_SIZE[1]} canvas. Use input_size=640, or an export with dynamic "
                "height and width"
            ) from exc

    def build_input_spec(self, size: Tuple[int, int]) -> InputSpec:
        return InputSpec(size=size, mean=(104.0, 117.0, 123.0), std=1.0, rgb=False)

    def decode(self, outputs: List[np.ndarray], batch: Letterboxed) -> List[RawDetections]:
        named = _by_channels(outputs)
        height, width = batch.blob.shape[2:]
        found = decode_priors(self.priors, named["loc"], named["conf"][..., 1], self.score_threshold,
                              (width, height), named.get("landmarks"))
        landmarks = None if found.landmarks is None else found.landmarks[:, OBSERVER_TO_PERSON]
        return [
            RawDetections(found.boxes[part], found.scores[part], None if landmarks is None else landmarks[part])
            for part in split_by_image(found.image_index, len(batch.blob))
        ]


def _by_channels(outputs: List[np.ndarray]) -> Dict[str, np.ndarray]:
    named: Dict[str, np.ndarray] = {}
    for out in outputs:
        key = _CHANNELS.get(out.shape[-1]) if out.ndim == 3 else None
        if key is None or key in named:
            raise ModelFormatError(f"unexpected RetinaFace output shape {out.shape}; expected (batch, priors, 4), "
                                   "(batch, priors, 2) and optionally (batch, priors, 10)")
        named[key] = out
    if "loc" not in named or "conf" not in named:
        raise ModelFormatError("a RetinaFace export needs a box output (batch, priors, 4) and a class output "
                               "(batch, priors, 2)")
    return named
