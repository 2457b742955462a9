"""SFace (OpenCV Zoo ``face_recognition_sface_2021dec.onnx``, a MobileFaceNet trained with the SFace loss): 128-d.

Pre-processing is OpenCV's ``FaceRecognizerSF``: ``alignCrop`` warps the face onto the five-point ArcFace 112x112
template (the same points and least-squares similarity as :data:`deepbatch.ops.align.ARCFACE_TEMPLATE`), and
``feature`` reads it with ``blobFromImage(face, 1, (112, 112), (0, 0, 0), swapRB=True)``: RGB, raw 0-255 values,
no mean or scale. The export declares input ``data`` and output ``fc1`` with batch 1; the shared runtime gives it
a batch axis and checks that frames stay independent, so faces run ``batch_size`` per call (DeepFace runs them one
by one).

No verification thresholds are registered: they must come from labelled pairs embedded by this very model (see
:mod:`deepbatch.recognition.calibration`); until then ``verify`` asks for ``threshold=``.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from ..ops.letterbox import InputSpec
from ..weights import WeightFile
from .base import RECOGNIZERS, OnnxRecognizer

SFACE_WEIGHTS = WeightFile(
    "face_recognition_sface_2021dec.onnx",
    # Git LFS content at a fixed commit of opencv_zoo (the branch URL moves)
    url="https://media.githubusercontent.com/media/opencv/opencv_zoo/47534e27c9851bb1128ccc0102f1145e27f23f98/"
        "models/face_recognition_sface/face_recognition_sface_2021dec.onnx",
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",  # 38,696,353 bytes
    homepage="https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface",
)


@RECOGNIZERS.register("sface", summary="SFace (OpenCV Zoo face_recognition_sface_2021dec), 128-d",
                       licence="Apache-2.0 (OpenCV Zoo)")
class SFace(OnnxRecognizer):
    """SFace with batching over faces (the batch-1 export is repaired and checked by the shared runtime)."""

    name = "sface"
    display_name = "SFace"
    embedding_size = 128
    input_spec: ClassVar[InputSpec] = InputSpec(size=(112, 112), mean=0.0, std=1.0, rgb=True, center=True)
    thresholds: ClassVar[Mapping[str, float]] = {}
    weights = SFACE_WEIGHTS
