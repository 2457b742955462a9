"""DeepFace's recognition models under DeepFace's names, batched, giving DeepFace's embeddings.

A user's stored DeepFace embeddings stay usable only if the same weights read the same pixels: so these backends
run DeepFace's own models on DeepFace's own weight files (where DeepFace keeps them:
``$DEEPFACE_HOME/.deepface/weights``, ``DEEPFACE_HOME`` defaulting to the home folder) and cut and scale each face as
DeepFace does (:mod:`deepbatch.ops.deepface_align`: the box rotated level by the eyes, fitted into the model's
input on black, BGR in [0, 1], DeepFace's ``normalization``), but run every chunk of faces in one model call.

* ``VGG-Face``, ``Facenet``, ``Facenet512``, ``OpenFace``, ``DeepID``, ``GhostFaceNet`` and ``ArcFace``: DeepFace's
  Keras models (extra ``deepbatch[deepface]``: the ``deepface`` package, TensorFlow and tf-keras), built by
  DeepFace's own code from its weight file, which must already be there: nothing publishes their digests, so they
  are not downloaded (the error names the file, its source and the folder).
* ``SFace``: the OpenCV Zoo ONNX file (DeepFace's folder, else deepbatch's weights lookup, downloaded with its
  pinned digest), fed as DeepFace feeds it (uint8-truncated RGB).
* ``Dlib``: dlib's descriptor (DeepFace's folder, else the ``face_recognition_models`` copy), on DeepFace's 150x150
  fitted crop instead of dlib's own chip.

DeepFace's names are also case-insensitive, except ``ArcFace``, ``SFace`` and ``Dlib``, whose other spellings
already named deepbatch's own pipelines (``arcface`` InsightFace's ResNet-50, deprecated for ``arcface_r50``;
``sface`` and ``dlib`` the same weights on the ArcFace-template crop): their canonical names here are
``deepface_arcface``, ``deepface_sface`` and ``deepface_dlib``. DeepFace's ``DeepFace`` model needs Keras'
``LocallyConnected2D``, gone since TensorFlow 2.13; asking for it raises :class:`ModelUnavailableError`.

Verification thresholds, confidence mappings and ``minmax_normalize`` ranges are DeepFace's own, so ``verify``
answers as DeepFace does.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..batching import DEFAULT_FACE_BATCH, chunks
from ..errors import LegacyKerasError, UnsupportedNormalizationError, WeightsNotFoundError
from ..ops.align import FaceCrops
from ..ops.deepface_align import deepface_crops, deepface_normalize, deepface_resize
from ..ops.letterbox import InputSpec
from ..optional import load_triton_before_tensorflow, require
from ..structures import Faces
from ..weights import find_weights, resolve_weights, verify_found
from .base import RECOGNIZERS, Recognizer
from .calibration import ConfidenceModel
from .normalization import NORMALIZATION_NAMES, NORMALIZATIONS

EXTRA = "deepface"
RELEASES = "https://github.com/serengil/deepface_models/releases/download/v1.0/"

# DeepFace's verification thresholds (deepface/config/threshold.py) and minmax ranges (deepface/config/minmax.py).
THRESHOLDS: Dict[str, Dict[str, float]] = {
    "VGG-Face": {"cosine": 0.68, "euclidean": 1.17, "euclidean_l2": 1.17, "angular": 0.39},
    "Facenet": {"cosine": 0.40, "euclidean": 10, "euclidean_l2": 0.80, "angular": 0.33},
    "Facenet512": {"cosine": 0.30, "euclidean": 23.56, "euclidean_l2": 1.04, "angular": 0.35},
    "ArcFace": {"cosine": 0.68, "euclidean": 4.15, "euclidean_l2": 1.13, "angular": 0.39},
    "Dlib": {"cosine": 0.07, "euclidean": 0.6, "euclidean_l2": 0.4, "angular": 0.12},
    "SFace": {"cosine": 0.593, "euclidean": 10.734, "euclidean_l2": 1.055, "angular": 0.36},
    "OpenFace": {"cosine": 0.10, "euclidean": 0.55, "euclidean_l2": 0.55, "angular": 0.11},
    "DeepID": {"cosine": 0.015, "euclidean": 45, "euclidean_l2": 0.17, "angular": 0.04},
    "GhostFaceNet": {"cosine": 0.65, "euclidean": 35.71, "euclidean_l2": 1.10, "angular": 0.38},
}
RANGES: Dict[str, Tuple[float, float]] = {
    "VGG-Face": (0.0, 0.27054874177488775),
    "Facenet": (-3.541942596435547, 3.247769594192505),
    "Facenet512": (-4.388302803039551, 3.643190622329712),
    "OpenFace": (-0.34191709756851196, 0.26318004727363586),
    "DeepID": (0.0, 127.86836242675781),
    "Dlib": (-0.41398656368255615, 0.5201137661933899),
    "ArcFace": (-2.945136308670044, 2.087090015411377),
}
# DeepFace's names this module cannot offer: why, and what comes closest.
UNAVAILABLE: Dict[str, str] = {
    "DeepFace": "DeepFace's 'DeepFace' model (Facebook DeepFace, VGGFace2 weights) needs Keras' LocallyConnected2D, "
                "which TensorFlow removed after 2.12, and DeepFace itself refuses it on newer TensorFlow; no model "
                "here reads its 152x152 inputs with its weights, so none gives comparable embeddings. The closest "
                "offered are 'VGG-Face' (4096-d, DeepFace's default) and 'Facenet512'; embeddings stored from "
                "'DeepFace' must be computed again with the model you switch to",
}


def deepface_home() -> Path:
    """The folder DeepFace keeps its weight files in: ``$DEEPFACE_HOME/.deepface/weights`` (``~`` by default)."""
    return Path(os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")) / ".deepface" / "weights"


def deepface_file(filename: str, sources: str, model: str) -> Path:
    """``filename`` in DeepFace's weights folder, or :class:`WeightsNotFoundError` naming it, where it comes from and
    where to put it (nothing is downloaded: no digest of the file is published)."""
    path = deepface_home() / filename
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{model} needs DeepFace's weight file {filename!r}, which is not in {str(path.parent)!r}. Download it "
            f"from {sources} and put it there (set DEEPFACE_HOME to use another home folder); running "
            f"DeepFace.build_model({model!r}) once with network access also puts it there. deepbatch does not "
            "download it itself: no digest of the file is published to check it against"
        )
    return path


class DeepFaceRecognizer(Recognizer):
    """A DeepFace model: faces cut, scaled and normalised as DeepFace does, then :meth:`forward` on whole chunks.

    ``deepface_name`` is DeepFace's name for the model; ``input_hw`` the ``(height, width)`` it reads.
    """

    extra = EXTRA
    deepface_name: ClassVar[str] = ""
    input_hw: ClassVar[Tuple[int, int]] = (112, 112)

    @property
    def input_size(self) -> int:
        return int(self.input_hw[1])

    def spec_for(self, normalization: str = "base") -> InputSpec:
        """DeepFace's ``normalization`` (its exact spelling), carried to :meth:`embed`."""
        if normalization not in {n.name for n in NORMALIZATIONS.values()}:
            raise UnsupportedNormalizationError(normalization, NORMALIZATION_NAMES)
        return DeepFaceInput(size=(self.input_hw[1], self.input_hw[0]), rgb=False, center=True,
                             normalization=normalization)

    def cut_faces(self, image: np.ndarray, faces: Faces, align: bool,
                  whole_image: bool) -> Optional[Tuple[FaceCrops, np.ndarray]]:
        """DeepFace's crops of ``faces`` and the ``(N, H, W, 3)`` float32 BGR [0, 1] input made of them.
        ``whole_image`` (``represent`` with ``detector_backend="skip"``): the image is resized as loaded, uint8, as
        DeepFace's ``represent`` does; its ``verify`` and ``find`` extract the face first, which makes it floats."""
        if whole_image:
            height, width = image.shape[:2]
            cut = FaceCrops([image], np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), np.zeros(1, np.int64))
            pixels = deepface_resize(np.ascontiguousarray(image), self.input_hw)
            return cut, pixels[None]
        cut = deepface_crops(image, faces.boxes, faces.landmarks, align)
        pixels = np.zeros((len(cut), *self.input_hw, 3), np.float32)
        for i, face in enumerate(cut.crops):
            if face.size:  # a face rotated out of its region has no pixels left: DeepFace drops it, zeros here
                pixels[i] = deepface_resize(face.astype(np.float64) / 255.0, self.input_hw)
        return cut, pixels

    def embed(self, faces: np.ndarray, batch_size: Optional[int] = None,
              spec: Optional[InputSpec] = None) -> np.ndarray:
        """``(N, D)`` embeddings of ``(N, H, W, 3)`` faces: float32 BGR in [0, 1] as :meth:`cut_faces` gives them,
        or uint8 BGR faces of any size, fitted as DeepFace fits a ``"skip"`` image."""
        faces = np.asarray(faces)
        if faces.dtype == np.uint8 or faces.shape[1:3] != tuple(self.input_hw):
            faces = np.stack([deepface_resize(np.ascontiguousarray(f), self.input_hw) for f in faces]) if len(
                faces) else np.zeros((0, *self.input_hw, 3), np.float32)
        normalization = spec.normalization if isinstance(spec, DeepFaceInput) else "base"
        out = np.empty((len(faces), self.embedding_size), np.float32)
        start = 0
        for piece in chunks(faces, batch_size or self.batch_size):
            out[start : start + len(piece)] = self.forward(deepface_normalize(piece.astype(np.float32), normalization))
            start += len(piece)
        return out

    def embed_blob(self, blob: np.ndarray) -> np.ndarray:
        """:meth:`forward` of a channels-first ``(n, 3, H, W)`` chunk already normalised as DeepFace does."""
        return self.forward(np.ascontiguousarray(blob.transpose(0, 2, 3, 1)))

    @abstractmethod
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 embeddings of one normalised ``(n, H, W, 3)`` BGR chunk, in one model call."""

    @classmethod
    def threshold(cls, metric: str) -> float:
        return float(THRESHOLDS[cls.deepface_name][metric]) if metric in THRESHOLDS.get(
            cls.deepface_name, {}) else super().threshold(metric)

    @classmethod
    def confidence(cls, distance: float, metric: str, verified: bool) -> float:
        model = _confidence_model(cls.deepface_name, metric)
        return super().confidence(distance, metric, verified) if model is None else model.confidence(distance,
                                                                                                     verified)


@dataclass(frozen=True)
class DeepFaceInput(InputSpec):
    """The input of a DeepFace model: its ``(width, height)`` and DeepFace's ``normalization`` name."""

    normalization: str = "base"


def _confidence_model(name: str, metric: str) -> Optional[ConfidenceModel]:
    """DeepFace's distance-to-confidence fit for ``name`` and ``metric`` (read from the installed deepface)."""
    try:
        from deepface.config.confidence import confidences
    except ImportError:
        return None
    config = confidences.get(name, {}).get(metric)
    if config is None:
        return None
    return ConfidenceModel(config["w"], config["b"], config["normalizer"],
                           (config["denorm_min_true"], config["denorm_max_true"]),
                           (config["denorm_min_false"], config["denorm_max_false"]))


def _keras_client(module: str, cls: str) -> Any:
    """DeepFace's own client for a TensorFlow model (built, and its weights loaded, by DeepFace's code)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # DeepFace's Keras 2 models, as deepface.DeepFace sets it
    load_triton_before_tensorflow()
    require("tf_keras", EXTRA, "DeepFace's Keras models on TensorFlow 2.16 or later", package="tf-keras")
    tf = require("tensorflow", EXTRA, "DeepFace's Keras models")
    keras = getattr(getattr(getattr(tf, "keras", None), "Model", None), "__module__", "")
    if int(tf.__version__.split(".")[1]) >= 16 and not keras.startswith("tf_keras"):
        raise LegacyKerasError(
            "DeepFace's Keras models need tf-keras, but TensorFlow was imported with Keras 3 before they were built "
            "(TensorFlow reads TF_USE_LEGACY_KERAS once, when it is imported); set TF_USE_LEGACY_KERAS=1 in the "
            "environment, or import deepbatch's DeepFace models (or deepface) before TensorFlow")
    loaded = require(f"deepface.models.facial_recognition.tf.{module}", EXTRA, "DeepFace's models", "deepface")
    return getattr(loaded, cls)()


class KerasDeepFaceModel(DeepFaceRecognizer):
    """One of DeepFace's TensorFlow models, run on whole chunks (``model(batch)``; DeepFace runs one image each)."""

    runs_on = "TensorFlow (DeepFace's Keras model)"
    batching = "one call per chunk"  # one model(batch) per chunk of faces
    module: ClassVar[str] = ""
    client: ClassVar[str] = ""
    weight_file: ClassVar[str] = ""
    sources: ClassVar[str] = ""
    l2_output: ClassVar[bool] = False  # DeepFace's VGG-Face divides its output by its norm

    @classmethod
    def designed_batching(cls) -> Optional[str]:
        """One ``model(batch)`` per chunk, known without loading TensorFlow."""
        return "one call per chunk"

    @classmethod
    def locate_weights(cls) -> Optional[Path]:
        """DeepFace's weight file of this model in DeepFace's folder, or None where it is not there."""
        path = deepface_home() / cls.weight_file
        return path if path.is_file() else None

    def __init__(self, batch_size: int = DEFAULT_FACE_BATCH):
        super().__init__(batch_size)
        self.weights_path = deepface_file(self.weight_file, self.sources or RELEASES + self.weight_file,
                                          self.deepface_name)
        self.model = _keras_client(self.module, self.client).model

    def forward(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self.model(batch, training=False), np.float32).reshape(len(batch), -1)
        if self.l2_output:
            out = (out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-10)).astype(np.float32)
        return out


def _keras(name: str, module: str, client: str, weight_file: str, size: int, hw: Tuple[int, int],
           summary: str, sources: str = "", l2_output: bool = False, key: str = "") -> None:
    """Register DeepFace's Keras model ``name`` under ``key`` (default: the name itself, case-insensitive)."""
    attributes = dict(name=key or name, display_name=name, deepface_name=name, module=module, client=client,
                      weight_file=weight_file, sources=sources, embedding_size=size, input_hw=hw,
                      l2_output=l2_output, embedding_range=RANGES.get(name), thresholds=THRESHOLDS.get(name, {}),
                      bundled_weights=f"`{weight_file}` in DeepFace's `~/.deepface/weights` (`$DEEPFACE_HOME`): "
                                      "you supply it",
                      __doc__=f"DeepFace's {name}: {summary}.", __module__=__name__)
    backend = type(name.replace("-", ""), (KerasDeepFaceModel,), attributes)
    RECOGNIZERS.register(key or name, summary=f"DeepFace's {name} ({summary}), DeepFace's weight file",
                         licence="that of DeepFace's weight file")(backend)


_keras("VGG-Face", "VGGFace", "VggFaceClient", "vgg_face_weights.h5", 4096, (224, 224),
       "VGG-16, 4096-d, DeepFace's default", l2_output=True)
_keras("Facenet", "Facenet", "FaceNet128dClient", "facenet_weights.h5", 128, (160, 160), "Inception-ResNet-v1, 128-d")
_keras("Facenet512", "Facenet", "FaceNet512dClient", "facenet512_weights.h5", 512, (160, 160),
       "Inception-ResNet-v1, 512-d")
_keras("OpenFace", "OpenFace", "OpenFaceClient", "openface_weights.h5", 128, (96, 96), "nn4.small2, 128-d")
_keras("DeepID", "DeepID", "DeepIdClient", "deepid_keras_weights.h5", 160, (55, 47), "160-d")
_keras("GhostFaceNet", "GhostFaceNet", "GhostFaceNetClient", "ghostfacenet_v1.h5", 512, (112, 112),
       "GhostFaceNetV1, 512-d",
       sources="https://github.com/HamadYA/GhostFaceNets/releases/download/v1.2/GhostFaceNet_W1.3_S1_ArcFace.h5")
_keras("ArcFace", "ArcFace", "ArcFaceClient", "arcface_weights.h5", 512, (112, 112), "Keras ResNet-34, 512-d",
       key="deepface_arcface")


class DeepFaceSFace(DeepFaceRecognizer):
    """DeepFace's SFace: OpenCV Zoo's ONNX file on DeepFace's crop, truncated to uint8 RGB as DeepFace feeds it."""

    name = "deepface_sface"
    display_name = "SFace"
    deepface_name = "SFace"
    runs_on = "ONNX Runtime"
    extra = ""
    bundled_weights = ("`face_recognition_sface_2021dec.onnx` in DeepFace's `~/.deepface/weights`, else deepbatch's "
                       "`sface` file (downloaded, pinned digest)")
    embedding_size = 128
    input_hw = (112, 112)
    thresholds: ClassVar[Mapping[str, float]] = THRESHOLDS["SFace"]

    def __init__(self, model_path: Optional[Union[str, Path]] = None, batch_size: int = DEFAULT_FACE_BATCH,
                 providers: Any = "auto", threads: Optional[int] = None):
        from ..runtime.model import OnnxModel
        from .sface import SFACE_WEIGHTS

        super().__init__(batch_size)
        own = deepface_home() / SFACE_WEIGHTS.filename
        if model_path is None and own.is_file() and find_weights(SFACE_WEIGHTS) is None:
            path = verify_found(SFACE_WEIGHTS, own)
        else:
            path = resolve_weights(SFACE_WEIGHTS, model_path)
        self.model = OnnxModel(path, providers, threads, probe_shape=(3, 112, 112))

    def forward(self, batch: np.ndarray) -> np.ndarray:
        blob = (batch * 255).astype(np.uint8)[..., ::-1].transpose(0, 3, 1, 2)
        return np.asarray(self.model.run(np.ascontiguousarray(blob, dtype=np.float32))[0],
                          np.float32).reshape(len(batch), -1)


class DeepFaceDlib(DeepFaceRecognizer):
    """DeepFace's Dlib: dlib's descriptor on DeepFace's 150x150 fitted crop (uint8-truncated RGB), through dlib's
    list API in one call per chunk."""

    name = "deepface_dlib"
    display_name = "Dlib"
    deepface_name = "Dlib"
    runs_on = "dlib"
    extra = "dlib"
    bundled_weights = ("`dlib_face_recognition_resnet_model_v1.dat` in DeepFace's `~/.deepface/weights`, else the "
                       "face_recognition_models package's")
    embedding_size = 128
    input_hw = (150, 150)
    thresholds: ClassVar[Mapping[str, float]] = THRESHOLDS["Dlib"]
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = RANGES["Dlib"]

    def __init__(self, model_path: Optional[Union[str, Path]] = None, batch_size: int = DEFAULT_FACE_BATCH):
        from .dlib_resnet import DLIB_WEIGHTS, DlibModel, packaged_weights

        super().__init__(batch_size)
        own = deepface_home() / DLIB_WEIGHTS.filename
        if model_path is not None:
            path = resolve_weights(DLIB_WEIGHTS, model_path)
        elif own.is_file():
            path = verify_found(DLIB_WEIGHTS, own)
        else:
            packaged = packaged_weights() if find_weights(DLIB_WEIGHTS) is None else None
            path = verify_found(DLIB_WEIGHTS, packaged) if packaged is not None else resolve_weights(
                DLIB_WEIGHTS, None, download=False)
        self.model = DlibModel(path)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        rgb = batch[:, :, :, ::-1]
        if rgb.max() <= 1:
            rgb = rgb * 255
        chips: List[np.ndarray] = list(np.ascontiguousarray(rgb.astype(np.uint8)))
        return self.model.run(chips)


RECOGNIZERS.register("deepface_sface", summary="DeepFace's SFace (OpenCV Zoo 2021dec) on DeepFace's crop, 128-d",
                     licence="Apache-2.0 (OpenCV Zoo)")(DeepFaceSFace)
RECOGNIZERS.register("deepface_dlib", summary="DeepFace's Dlib on DeepFace's crop, 128-d (deepbatch[dlib])",
                     licence="CC0 (dlib-models)")(DeepFaceDlib)
for _exact, _target in (("ArcFace", "deepface_arcface"), ("SFace", "deepface_sface"), ("Dlib", "deepface_dlib")):
    RECOGNIZERS.exact_alias(_exact, _target)
RECOGNIZERS.deprecate("arcface", "the recognizer name 'arcface' (InsightFace's ArcFace ResNet-50) is deprecated: "
                      "use 'arcface_r50'; DeepFace's own ArcFace is 'ArcFace', spelled so, or 'deepface_arcface'")
for _name, _reason in UNAVAILABLE.items():
    RECOGNIZERS.unavailable(_name, _reason)


def deepface_names() -> List[str]:
    """DeepFace's recognition model names, as DeepFace spells them, that this module offers."""
    return sorted(THRESHOLDS)


__all__ = ["DeepFaceRecognizer", "KerasDeepFaceModel", "DeepFaceSFace", "DeepFaceDlib", "deepface_home",
           "deepface_names"]
