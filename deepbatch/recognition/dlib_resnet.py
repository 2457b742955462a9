"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``): 128-d, optional extra
``deepbatch[dlib]``.

The model reads 150x150 RGB chips framed as ``dlib.get_face_chip`` frames them (dlib's 5-point shape predictor,
padding 0.25). It is given the crop every recognizer gets (the face warped onto the five-point ArcFace template,
the crop ``extract_faces`` returns, shrunk into 150x150), so a stored crop embedded with
``detector_backend="skip"`` still gives the photo's descriptor; inside the model that crop is reframed by one fixed
similarity that moves the ArcFace template onto :data:`DLIB_CHIP_POINTS`, where the detector's five landmarks lie in
dlib's own chips (their median over the 74 faces of DeepFace's test photos: SCRFD-0.5GF landmarks mapped through
``dlib.get_face_chip_details(shape_predictor_5(face), 150, 0.25)``). The chip's bottom tenth lies below the ArcFace
crop and is black. Descriptors then stay within 0.3 (euclidean; 0.17 on average) of those of dlib's own chips,
against 0.66 on average for the ArcFace crop fed as it is. All faces of a chunk go through dlib's list API
(``compute_face_descriptor(list_of_chips)``) in one call.

Weights: an explicit ``model_path``, then ``$DEEPBATCH_WEIGHTS`` and the cache, then the copy that the
``face_recognition_models`` package ships (installed by the ``dlib`` extra). dlib.net publishes the file as a bz2
archive, which is not downloaded automatically.

Thresholds (``verified = distance <= threshold``) and confidence mappings were calibrated with
``python benchmarks/verify_master.py --calibrate --model dlib`` on the 300 labelled pairs of ``master.csv`` with
``scrfd`` faces, like MobileFaceNet's (see :mod:`deepbatch.recognition.mobilefacenet`); 38 pairs are the same
person. Every threshold separates all 300 pairs; the euclidean one lies close to dlib's published 0.6. The
calibration's figures are the thresholds table of the docs (``docs/measurements/thresholds.json``).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import ClassVar, Mapping, Optional, Tuple, Union

import numpy as np

from ..batching import DEFAULT_FACE_BATCH
from ..errors import UnsupportedNormalizationError
from ..ops.align import ARCFACE_TEMPLATE, similarity_transform
from ..ops.letterbox import InputSpec
from ..optional import require, require_all
from ..weights import WeightFile, find_weights, resolve_weights, verify_found
from .base import RECOGNIZERS, Recognizer
from .calibration import ConfidenceModel
from .normalization import NORMALIZATION_NAMES

DLIB_WEIGHTS = WeightFile(
    "dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",  # the decompressed file
    homepage="https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2 (decompress it), or "
             "`pip install face_recognition_models`",
)
PACKAGE = "face_recognition_models"
CHIP_SIZE = 150
# Person-relative (left eye, right eye, nose, mouth left, mouth right) in dlib's 150x150 chips.
DLIB_CHIP_POINTS = np.array(
    [[100.6954, 45.0088], [46.9146, 45.5925], [73.1205, 76.9318], [98.2541, 99.9647], [50.2760, 100.5186]]
)
# The ArcFace-framed face, shrunk to 150x150, to dlib's chip framing (scale 1.073, shifted up by 29 pixels).
REFRAME = similarity_transform(ARCFACE_TEMPLATE * (CHIP_SIZE / 112.0), DLIB_CHIP_POINTS)


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


@RECOGNIZERS.register("dlib", summary="dlib ResNet face descriptor, 128-d (deepbatch[dlib]), dlib's list API",
                       licence="CC0 (dlib-models)")
class DlibResNet(Recognizer):
    """dlib's face descriptor, batched through its list API. ``num_jitters`` > 0 averages that many randomly
    jittered copies per face (dlib's option: slower, slightly more accurate, not deterministic)."""

    name = "dlib"
    extra = "dlib"
    runs_on = "dlib"
    bundled_weights = "`dlib_face_recognition_resnet_model_v1.dat` in the face_recognition_models package"
    display_name = "Dlib"
    embedding_size = 128
    input_spec: ClassVar[InputSpec] = InputSpec(size=(CHIP_SIZE, CHIP_SIZE), mean=0.0, std=1.0, rgb=True, center=True)
    thresholds: ClassVar[Mapping[str, float]] = {
        "cosine": 0.0766, "euclidean": 0.6109, "euclidean_l2": 0.3913, "angular": 0.1254,
    }
    confidences: ClassVar[Mapping[str, ConfidenceModel]] = {
        "cosine": ConfidenceModel(-4.2157, -1.3129, 1.0000, (16.43, 20.39), (8.04, 16.18)),
        "euclidean": ConfidenceModel(-6.7190, 2.6043, 1.0835, (24.97, 75.05), (1.61, 21.95)),
        "euclidean_l2": ConfidenceModel(-6.6522, 1.3397, 1.0000, (22.67, 58.09), (2.88, 21.42)),
        "angular": ConfidenceModel(-3.5345, -1.3281, 1.0000, (14.62, 18.25), (10.26, 14.46)),
    }
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = (-0.4308, 0.5502)

    def __init__(self, model_path: Optional[Union[str, Path]] = None, batch_size: int = DEFAULT_FACE_BATCH,
                 num_jitters: int = 0):
        super().__init__(batch_size)
        if num_jitters < 0:
            raise ValueError(f"num_jitters must be 0 or more, got {num_jitters}")
        self.num_jitters = int(num_jitters)
        # every package still missing is named at once: dlib, and face_recognition_models where it holds the weights
        weights_elsewhere = model_path is not None or find_weights(DLIB_WEIGHTS) is not None
        require_all(("dlib",) if weights_elsewhere else ("dlib", PACKAGE), "dlib", "The Dlib face recognizer")
        packaged = packaged_weights() if model_path is None and find_weights(DLIB_WEIGHTS) is None else None
        path = verify_found(DLIB_WEIGHTS, packaged) if packaged is not None else resolve_weights(
            DLIB_WEIGHTS, model_path, download=False)
        self.model = DlibModel(path)

    def spec_for(self, normalization: str = "base") -> InputSpec:
        """dlib reads raw RGB chips: only ``"base"`` applies."""
        if str(normalization).lower() != "base":
            raise UnsupportedNormalizationError(normalization, NORMALIZATION_NAMES)
        return self.input_spec

    def embed_blob(self, blob: np.ndarray) -> np.ndarray:
        import cv2

        # The blob holds the faces' RGB values unchanged (mean 0, std 1): back to the uint8 HxWx3 dlib takes,
        # reframed as dlib's chips (one fixed warp per face: OpenCV has no batched warp).
        faces = np.clip(np.rint(blob), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        chips = [cv2.warpAffine(np.ascontiguousarray(face), REFRAME, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0) for face in faces]
        return self.model.run(chips, self.num_jitters)
