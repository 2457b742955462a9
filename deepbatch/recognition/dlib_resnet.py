"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``): 128-d, optional extra
``deepbatch[dlib]``.

The model reads 150x150 RGB face chips aligned "the way ``dlib.get_face_chip`` does it" (its 5-point shape
predictor, padding 0.25). Here faces are warped onto :data:`DLIB_TEMPLATE`, the five detector landmarks' median
position inside dlib's own chips, measured on the 74 faces of DeepFace's test photos (SCRFD-0.5GF landmarks mapped
through ``dlib.get_face_chip_details(shape_predictor_5(face), 150, 0.25)``), so any detector with five landmarks
gives dlib the chip it expects. All faces of a chunk go through dlib's list API
(``compute_face_descriptor(list_of_chips)``) in one call.

Weights: an explicit ``model_path``, then ``$DEEPBATCH_WEIGHTS`` and the cache, then the copy that the
``face_recognition_models`` package ships (installed by the ``dlib`` extra). dlib.net publishes the file as a bz2
archive, which is not downloaded automatically.

Thresholds (``verified = distance <= threshold``) were calibrated with
``python benchmarks/verify_master.py --calibrate --model dlib`` on the 300 labelled pairs of ``master.csv`` with
``scrfd`` faces, like MobileFaceNet's (see :mod:`deepbatch.recognition.mobilefacenet`); 38 pairs are the same
person. Every threshold separates all 300 pairs; they lie close to dlib's published 0.6 euclidean.

==============  =========  =========  ==============  ===================
metric          threshold  10-fold    same-person     different-person
                                      max distance    min distance
==============  =========  =========  ==============  ===================
cosine          0.0811     99.67%     0.0759          0.0862
euclidean       0.6313     99.67%     0.6063          0.6562
euclidean_l2    0.4024     99.67%     0.3896          0.4153
==============  =========  =========  ==============  ===================
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import ClassVar, Mapping, Optional, Union

import numpy as np

from ..ops.letterbox import InputSpec
from ..optional import require
from ..weights import WeightFile, find_weights, resolve_weights
from .base import DEFAULT_FACE_BATCH, RECOGNIZERS, Recognizer, UnsupportedNormalizationError

DLIB_WEIGHTS = WeightFile(
    "dlib_face_recognition_resnet_model_v1.dat",
    homepage="https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2 (decompress it), or "
             "`pip install face_recognition_models`",
)
PACKAGE = "face_recognition_models"

# Person-relative (left eye, right eye, nose, mouth left, mouth right) in a 112-pixel square; measured at 150
# pixels as [[100.6954, 45.0088], [46.9146, 45.5925], [73.1205, 76.9318], [98.2541, 99.9647], [50.2760, 100.5186]].
DLIB_TEMPLATE = np.array(
    [[100.6954, 45.0088], [46.9146, 45.5925], [73.1205, 76.9318], [98.2541, 99.9647], [50.2760, 100.5186]],
    dtype=np.float32,
) * np.float32(112 / 150)


def packaged_weights() -> Optional[Path]:
    """The descriptor file shipped by the ``face_recognition_models`` package, if it is installed.

    The package is located without being imported: its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer provide.
    """
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "models" / DLIB_WEIGHTS.filename
        if candidate.is_file():
            return candidate
    return None


class DlibModel:
    """dlib's descriptor network with a call counter: ``run(chips)`` embeds a list of 150x150 RGB chips in one
    ``compute_face_descriptor`` call."""

    def __init__(self, path: Path):
        dlib = require("dlib", "dlib", "The Dlib face recognizer")
        self.path = path
        self.network = dlib.face_recognition_model_v1(str(path))
        self.run_calls = 0
        self.last_batch_size = 0
        self._lock = threading.Lock()  # one dlib network object is not documented as safe across threads

    def run(self, chips: list, num_jitters: int = 0) -> np.ndarray:
        with self._lock:
            self.run_calls += 1
            self.last_batch_size = len(chips)
            vectors = self.network.compute_face_descriptor(chips, num_jitters)
        return np.array([np.asarray(v) for v in vectors], np.float32).reshape(len(chips), -1)


@RECOGNIZERS.register("dlib", summary="dlib ResNet face descriptor, 128-d (deepbatch[dlib]), dlib's list API")
class DlibResNet(Recognizer):
    """dlib's face descriptor, batched through its list API. ``num_jitters`` > 0 averages that many randomly
    jittered copies per face (dlib's option: slower, slightly more accurate, not deterministic)."""

    name = "dlib"
    display_name = "Dlib"
    embedding_size = 128
    input_spec: ClassVar[InputSpec] = InputSpec(size=(150, 150), mean=0.0, std=1.0, rgb=True, center=True)
    template: ClassVar[np.ndarray] = DLIB_TEMPLATE
    thresholds: ClassVar[Mapping[str, float]] = {"cosine": 0.0811, "euclidean": 0.6313, "euclidean_l2": 0.4024}

    def __init__(self, model_path: Optional[Union[str, Path]] = None, batch_size: int = DEFAULT_FACE_BATCH,
                 num_jitters: int = 0):
        super().__init__(batch_size)
        if num_jitters < 0:
            raise ValueError(f"num_jitters must be 0 or more, got {num_jitters}")
        self.num_jitters = int(num_jitters)
        path = None if model_path is not None else (find_weights(DLIB_WEIGHTS) or packaged_weights())
        self.model = DlibModel(path or resolve_weights(DLIB_WEIGHTS, model_path, download=False))

    def spec_for(self, normalization: str = "base") -> InputSpec:
        """dlib reads raw RGB chips: only ``"base"`` applies."""
        if str(normalization).lower() != "base":
            raise UnsupportedNormalizationError(normalization)
        return self.input_spec

    def embed_blob(self, blob: np.ndarray) -> np.ndarray:
        # The blob holds the chips' RGB values unchanged (mean 0, std 1): back to the uint8 HxWx3 dlib takes.
        chips = np.clip(np.rint(blob), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return self.model.run([np.ascontiguousarray(chip) for chip in chips], self.num_jitters)
