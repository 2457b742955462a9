"""InsightFace's ArcFace models trained on WebFace600K: 512-d embeddings.

* ``arcface_mbf`` (the default recognizer): MobileFaceNet, ``w600k_mbf.onnx`` from the ``buffalo_sc`` pack, the same
  download as the default detector's ``det_500m.onnx``;
* ``arcface_r50`` (``ArcFace``): ResNet-50, ``w600k_r50.onnx`` from the ``buffalo_l`` pack.

Both exports read ``input.1`` ``[batch, 3, 112, 112]`` and declares its output with batch 1, which the shared runtime
repairs and checks. Pre-processing as InsightFace's ``ArcFaceONNX`` for exports without in-graph normalisation:
RGB, ``(x - 127.5) / 127.5``, on a face warped to the five-point ArcFace template.

``arcface_mbf``'s thresholds were calibrated with ``python benchmarks/verify_master.py --model arcface_mbf
--calibrate`` (see :mod:`deepbatch.recognition.mobilefacenet` for the method and docs/recognition.md for the table). The
R50's weights were not at hand to calibrate, so it has none: ``verify`` asks for ``threshold=``.

The weights are InsightFace's, licensed for non-commercial research only.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Optional, Tuple

from ..ops.letterbox import InputSpec
from ..weights import BUFFALO_SC_SHA256, BUFFALO_SC_URL, INSIGHTFACE_LICENCE, WeightFile
from .base import RECOGNIZERS, OnnxRecognizer
from .calibration import ConfidenceModel

_HOMEPAGE = "https://github.com/deepinsight/insightface/tree/master/model_zoo"
_SPEC = InputSpec(size=(112, 112), mean=127.5, std=127.5, rgb=True, center=True)

ARCFACE_MBF_WEIGHTS = WeightFile(
    "w600k_mbf.onnx",
    url=BUFFALO_SC_URL,
    sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    archive_member="w600k_mbf.onnx",
    homepage=_HOMEPAGE,
    archive_sha256=BUFFALO_SC_SHA256,
)

ARCFACE_R50_WEIGHTS = WeightFile(
    "w600k_r50.onnx",
    ("arcface_w600k_r50.onnx",),
    url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    archive_member="w600k_r50.onnx",
    archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
    homepage=_HOMEPAGE,
)


@RECOGNIZERS.register("arcface_mbf", licence=INSIGHTFACE_LICENCE,
                       summary="ArcFace MobileFaceNet (InsightFace w600k_mbf, buffalo_sc), 512-d; the default")
class ArcFaceMobileFaceNet(OnnxRecognizer):
    """ArcFace MobileFaceNet, one model call per chunk of faces: the default recognizer."""

    name = "arcface_mbf"
    display_name = "ArcFace-MobileFaceNet"
    embedding_size = 512
    input_spec: ClassVar[InputSpec] = _SPEC
    # master.csv, SCRFD-0.5GF faces: every metric separates all 300 pairs (docs/measurements/thresholds.json).
    thresholds: ClassVar[Mapping[str, float]] = {
        "cosine": 0.6584, "euclidean": 26.69, "euclidean_l2": 1.1430, "angular": 0.3881,
    }
    confidences: ClassVar[Mapping[str, ConfidenceModel]] = {
        "cosine": ConfidenceModel(-6.5542, 2.4302, 1.1575, (34.56, 84.31), (1.59, 12.38)),
        "euclidean": ConfidenceModel(-6.8131, 2.9744, 43.0559, (32.05, 68.71), (2.11, 14.85)),
        "euclidean_l2": ConfidenceModel(-6.8198, 3.5674, 1.5215, (24.99, 77.95), (3.72, 11.79)),
        "angular": ConfidenceModel(-6.2240, 0.8250, 1.0000, (20.68, 44.88), (6.91, 13.74)),
    }
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = (-4.2246, 4.5311)
    weights = ARCFACE_MBF_WEIGHTS


@RECOGNIZERS.register("arcface_r50", summary="ArcFace ResNet-50 (InsightFace w600k_r50), 512-d",
                       licence=INSIGHTFACE_LICENCE)
class ArcFace(OnnxRecognizer):
    """ArcFace R50, one model call per chunk of faces."""

    name = "arcface_r50"
    display_name = "ArcFace"
    embedding_size = 512
    input_spec: ClassVar[InputSpec] = _SPEC
    thresholds: ClassVar[Mapping[str, float]] = {}
    weights = ARCFACE_R50_WEIGHTS


RECOGNIZERS.alias("arcface", "arcface_r50")
RECOGNIZERS.alias("buffalo_l", "arcface_r50")  # DeepFace's name for the same InsightFace buffalo_l model
