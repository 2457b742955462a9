"""RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface export): SSD-style priors, boxes and 5 landmarks.

Outputs are told apart by their channel count: box regressions (B, N, 4), class probabilities (B, N, 2) already
softmaxed (column 1 is the face), landmark offsets (B, N, 10) in observer order (the eye on the image's left first).
Pre-processing is the training one: BGR minus (104, 117, 123), no scaling.

The public export declares a 640x640 input and its FPN upsampling targets were constant-folded for that size, so it
runs only on a 640 canvas; ``input_size`` other than 640 frees the height and width and works for exports made with
dynamic axes, and raises :class:`~deepbatch.errors.ModelFormatError` for this one.

The class output of the published export ends in a ``Softmax`` over its last axis; one read from the graph to come
straight out of its ``Conv`` heads (cut before the softmax) holds logits and gets the softmax here, and a softmax over
another axis is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ModelFormatError
from ..ops.letterbox import InputSpec
from ..ops.priors import PriorSpec, decode_priors
from ..runtime.graph_facts import LINEAR, SOFTMAX, GraphFacts, softmax
from ..structures import OBSERVER_TO_PERSON
from ..weights import WeightFile
from .base import DETECTORS, OnnxDetector, check_input_size

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


@DETECTORS.register("retinaface", summary="RetinaFace MobileNet-0.25, 5 landmarks", weights=RETINAFACE_WEIGHTS,
                     licence="MIT")
class RetinaFace(OnnxDetector):
    """RetinaFace with SSD-style priors (:data:`RETINAFACE_PRIORS`), one model call per chunk."""

    name = "retinaface"
    weights = RETINAFACE_WEIGHTS
    has_landmarks = True
    priors: PriorSpec = RETINAFACE_PRIORS
    default_input = InputSpec(size=EXPORT_SIZE, mean=(104.0, 117.0, 123.0), std=1.0, rgb=False)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, model_path: Optional[Union[str, Path]] = None,
                 input_size: Optional[Union[int, Tuple[int, int]]] = None, **kwargs: Any):
        # Free the declared 640x640 only when another canvas is asked for (a per-instance choice of the base's flag).
        self.dynamic_spatial = input_size is not None and check_input_size(input_size) != EXPORT_SIZE
        super().__init__(model_path, input_size=input_size, **kwargs)
        self.conf_logits = class_logits(GraphFacts.of(self.model.path), self.model.session.get_outputs(),
                                        Path(self.model.path).name)

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        conf = _by_channels(outputs)["conf"]
        return (softmax(conf) if self.conf_logits else conf)[..., 1]

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        named = _by_channels(outputs)
        return decode_priors(self.priors, named["loc"], self.input_spec.size, image_index, anchor,
                             named.get("landmarks"))


def class_logits(facts: GraphFacts, outputs: List[Any], name: str, channels: int = 2) -> bool:
    """Whether the (batch, priors, ``channels``) class output of an SSD-style export holds logits (its head is a
    ``Conv``: the softmax is applied here) rather than probabilities (a ``Softmax`` over the class axis). A softmax
    over another axis, or a head of another kind, is refused: the class probabilities cannot be read from it."""
    for output in outputs:
        if len(output.shape) == 3 and output.shape[-1] == channels:
            head = facts.head(output.name)
            if head.activation == LINEAR:
                return True
            if head.activation == SOFTMAX and head.axis in (-1, 2):
                return False
            what = f"a Softmax over axis {head.axis}" if head.activation == SOFTMAX else f"{head.op}"
            raise ModelFormatError(f"{name}: its class output {output.name!r} ends in {what}; the decoder needs "
                                   "class probabilities (a Softmax over the last axis) or raw Conv logits")
    return False


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
