"""ArcFace ResNet-50 trained on WebFace600K (InsightFace ``w600k_r50.onnx``, the ``buffalo_l`` pack): 512-d.

The export reads ``input.1`` ``[batch, 3, 112, 112]`` and declares its output with batch 1, which the shared runtime
repairs and checks. Pre-processing as InsightFace's ``ArcFaceONNX`` for exports without in-graph normalisation:
RGB, ``(x - 127.5) / 127.5``, on a face warped to the five-point ArcFace template.

No verification thresholds are registered: they must come from labelled pairs embedded by this very model (see
:mod:`deepbatch.recognition.calibration`); until then ``verify`` asks for ``threshold=``.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from ..ops.letterbox import InputSpec
from ..weights import WeightFile
from .base import RECOGNIZERS, OnnxRecognizer

ARCFACE_R50_WEIGHTS = WeightFile(
    "w600k_r50.onnx",
    ("arcface_w600k_r50.onnx",),
    url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    archive_member="w600k_r50.onnx",
    archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
    homepage="https://github.com/deepinsight/insightface/tree/master/model_zoo",
)


@RECOGNIZERS.register("arcface_r50", summary="ArcFace ResNet-50 (InsightFace w600k_r50), 512-d")
class ArcFace(OnnxRecognizer):
    """ArcFace R50 with native batching over faces."""

    name = "arcface_r50"
    display_name = "ArcFace"
    embedding_size = 512
    input_spec: ClassVar[InputSpec] = InputSpec(size=(112, 112), mean=127.5, std=127.5, rgb=True, center=True)
    thresholds: ClassVar[Mapping[str, float]] = {}
    weights = ARCFACE_R50_WEIGHTS


RECOGNIZERS.alias("arcface", "arcface_r50")
RECOGNIZERS.alias("buffalo_l", "arcface_r50")  # DeepFace's name for the same InsightFace buffalo_l model
