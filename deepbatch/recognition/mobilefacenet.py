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
of the pairs and scores the held-out tenth, the accuracy to expect on pairs the threshold has not seen. The same
run fits ``confidences`` (:func:`deepbatch.recognition.calibration.fit_confidence`) and reports the value range of
the embeddings of the faces in the 64 photos (``embedding_range``, for ``minmax_normalize``). The calibration's
figures (accuracy, the distances either side of each threshold) are the thresholds table of the docs
(``docs/measurements/thresholds.json``).
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Optional, Tuple

from ..weights import WeightFile
from .base import RECOGNIZERS, OnnxRecognizer
from .calibration import ConfidenceModel

# Nobody publishes these exports at a stable address, so nothing is downloaded: the user supplies the file.
_MANUAL = ("export a MobileFaceNet trained on faces aligned to the ArcFace 112x112 five-point template to ONNX, "
           "input (N, 3, 112, 112) RGB (x - 127.5) / 127.5, output (N, 128); or use the default recognizer "
           "arcface_mbf, which is downloaded")
MOBILEFACENET_WEIGHTS = {
    "mobilefacenet": WeightFile(
        "mobilefacenet_dyn.onnx", sha256="6ced4e0c36abba9dd24b48d725f7dbb94089f75b3d3445d3d67b85157cb64743",
        manual=_MANUAL,
    ),
    "mobilefacenet_b1": WeightFile(
        "mobilefacenet_b1.onnx", sha256="f055d9c9a4d826d198c42666590fdefa0fdc1374a75ccb6306c3d1b1bf8f74c5",
        manual=_MANUAL,
    ),
}


@RECOGNIZERS.register("mobilefacenet", summary="MobileFaceNet, 128-d (dynamic-batch export)",
                       licence="that of the export you supply")
class MobileFaceNet(OnnxRecognizer):
    """MobileFaceNet, one model call per chunk of faces."""

    name = "mobilefacenet"
    display_name = "MobileFaceNet"
    embedding_size = 128
    weights = MOBILEFACENET_WEIGHTS["mobilefacenet"]
    thresholds: ClassVar[Mapping[str, float]] = {
        "cosine": 0.5852, "euclidean": 18.22, "euclidean_l2": 1.0803, "angular": 0.3635,
    }
    confidences: ClassVar[Mapping[str, ConfidenceModel]] = {
        "cosine": ConfidenceModel(-6.5610, 2.0438, 1.2445, (32.85, 79.75), (1.08, 20.29)),
        "euclidean": ConfidenceModel(-6.7915, 2.6177, 33.1762, (32.34, 68.79), (1.52, 18.47)),
        "euclidean_l2": ConfidenceModel(-6.7979, 3.2757, 1.5776, (24.37, 74.99), (2.87, 16.43)),
        "angular": ConfidenceModel(-6.3394, 0.8404, 1.0000, (20.97, 45.25), (5.58, 16.78)),
    }
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = (-5.9305, 5.9031)


@RECOGNIZERS.register("mobilefacenet_b1", summary="MobileFaceNet, 128-d (export declared with batch 1)",
                       licence="that of the export you supply")
class MobileFaceNetB1(MobileFaceNet):
    """The batch-1 MobileFaceNet export, batched by the shared runtime."""

    name = "mobilefacenet_b1"
    weights = MOBILEFACENET_WEIGHTS["mobilefacenet_b1"]
    thresholds: ClassVar[Mapping[str, float]] = {
        "cosine": 0.5276, "euclidean": 16.78, "euclidean_l2": 1.0257, "angular": 0.3430,
    }
    confidences: ClassVar[Mapping[str, ConfidenceModel]] = {
        "cosine": ConfidenceModel(-6.6097, 1.8703, 1.2974, (37.35, 79.13), (0.87, 24.63)),
        "euclidean": ConfidenceModel(-6.7233, 2.3987, 34.1659, (32.45, 67.79), (1.31, 25.45)),
        "euclidean_l2": ConfidenceModel(-6.7807, 3.1175, 1.6108, (27.73, 76.56), (2.50, 19.12)),
        "angular": ConfidenceModel(-6.3363, 0.8127, 1.0000, (22.69, 46.94), (4.91, 18.30)),
    }
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = (-5.8398, 5.9728)
