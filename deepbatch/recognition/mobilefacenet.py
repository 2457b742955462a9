"""MobileFaceNet: 128-d embeddings of faces aligned to the five-point ArcFace 112x112 template.

Two public exports, trained separately (their embeddings are not interchangeable, so each has its own thresholds):

* ``mobilefacenet`` (``MobileFaceNet``): ``mobilefacenet_dyn.onnx``, input ``x`` ``[batch, 3, 112, 112]`` with a
  dynamic batch axis;
* ``mobilefacenet_b1``: ``mobilefacenet_b1.onnx``, input ``input`` declared ``[1, 3, 112, 112]`` with a Reshape
  that hard-codes batch 1; the shared runtime gives it a batch axis in memory and checks frames stay independent.

Both read RGB ``(x - 127.5) / 127.5``.

Thresholds (``verified = distance <= threshold``) were calibrated with
``python benchmarks/verify_master.py --calibrate``: the 300 labelled pairs of DeepFace's unit-test photos
(``master.csv``), faces found by ``scrfd`` (SCRFD-0.5GF) and warped to the template, each threshold the most
accurate one with the widest margin (:func:`deepbatch.recognition.calibration.calibrate_threshold`). 38 of the
pairs are the same person. Every threshold separates all 300 pairs; "10-fold" refits the threshold on nine tenths
of the pairs and scores the held-out tenth, the accuracy to expect on pairs the threshold has not seen.

==================  ============  =========  =========  ==============  ===================
model               metric        threshold  10-fold    same-person     different-person
                                                        max distance    min distance
==================  ============  =========  =========  ==============  ===================
mobilefacenet       cosine        0.6032     99.67%     0.5874          0.6189
mobilefacenet       euclidean     18.14      100%       16.77           19.51
mobilefacenet       euclidean_l2  1.0983     99.67%     1.0839          1.1126
mobilefacenet_b1    cosine        0.5462     99.67%     0.4958          0.5967
mobilefacenet_b1    euclidean     16.99      100%       16.05           17.93
mobilefacenet_b1    euclidean_l2  1.0441     99.67%     0.9958          1.0924
==================  ============  =========  =========  ==============  ===================
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from ..weights import WeightFile
from .base import RECOGNIZERS, OnnxRecognizer

MOBILEFACENET_WEIGHTS = {
    "mobilefacenet": WeightFile(
        "mobilefacenet_dyn.onnx", sha256="6ced4e0c36abba9dd24b48d725f7dbb94089f75b3d3445d3d67b85157cb64743"
    ),
    "mobilefacenet_b1": WeightFile(
        "mobilefacenet_b1.onnx", sha256="f055d9c9a4d826d198c42666590fdefa0fdc1374a75ccb6306c3d1b1bf8f74c5"
    ),
}


@RECOGNIZERS.register("mobilefacenet", summary="MobileFaceNet, 128-d (dynamic-batch export)")
class MobileFaceNet(OnnxRecognizer):
    """MobileFaceNet with native batching over faces."""

    name = "mobilefacenet"
    display_name = "MobileFaceNet"
    embedding_size = 128
    weights = MOBILEFACENET_WEIGHTS["mobilefacenet"]
    thresholds: ClassVar[Mapping[str, float]] = {"cosine": 0.6032, "euclidean": 18.14, "euclidean_l2": 1.0983}


@RECOGNIZERS.register("mobilefacenet_b1", summary="MobileFaceNet, 128-d (export declared with batch 1)")
class MobileFaceNetB1(MobileFaceNet):
    """The batch-1 MobileFaceNet export, batched by the shared runtime."""

    name = "mobilefacenet_b1"
    weights = MOBILEFACENET_WEIGHTS["mobilefacenet_b1"]
    thresholds: ClassVar[Mapping[str, float]] = {"cosine": 0.5462, "euclidean": 16.99, "euclidean_l2": 1.0441}
