"""The recognizer contract and the shared machinery every face-embedding backend builds on.

* :class:`Recognizer` is the contract: ``embed(faces)`` takes ``(N, S, S, 3)`` uint8 BGR faces already aligned to
  the model's template and returns ``(N, D)`` float32 embeddings, in order. The framework chunks the faces into
  ``batch_size`` pieces and normalises each chunk as the model's :class:`InputSpec` declares; a backend implements
  ``embed_blob`` (one normalised ``(n, 3, S, S)`` chunk in, ``(n, D)`` out).
* :class:`OnnxRecognizer` runs ``embed_blob`` as one ``session.run`` per chunk through :class:`OnnxModel`, which
  gives exports declared with batch 1 a true batch axis and checks it. A backend file declares its weights, input
  spec, embedding size and calibrated verification thresholds; nothing else.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..batching import DEFAULT_FACE_BATCH as DEFAULT_FACE_BATCH
from ..batching import chunks
from ..checks import check_batch_size
from ..errors import ModelFormatError
from ..errors import ThresholdUnknownError as ThresholdUnknownError
from ..ops.letterbox import InputSpec
from ..registry import Registry
from ..runtime.model import OnnxModel
from ..runtime.session import ProviderList, check_threads, requested_providers
from ..weights import WeightFile, resolve_weights
from .calibration import ConfidenceModel, default_confidence
from .distance import check_metric
from .normalization import NORMALIZATIONS as NORMALIZATIONS
from .normalization import UnsupportedNormalizationError as UnsupportedNormalizationError
from .normalization import normalize_faces, spec_for

if TYPE_CHECKING:
    from ..ops.align import FaceCrops
    from ..structures import Faces

logger = logging.getLogger(__name__)

RECOGNIZERS: Registry[Recognizer] = Registry("recognizer", "deepbatch.recognition")

class Recognizer(ABC):
    """A face-embedding model. Subclasses declare ``input_spec`` and ``embedding_size`` and override ``embed_blob``.

    ``thresholds`` maps each distance metric (``cosine``, ``euclidean``, ``euclidean_l2``, ``angular``) to the
    distance below which two faces are the same person, calibrated on labelled pairs, and ``confidences`` to
    DeepFace's distance-to-confidence mapping fitted on them (see :mod:`deepbatch.recognition.calibration`).
    ``embedding_range`` is the ``(low, high)`` value range ``minmax_normalize`` maps to [0, 1].
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    extra: ClassVar[str] = ""  # the deepbatch extra whose packages the backend needs ("" when none)
    runs_on: ClassVar[str] = ""  # what runs the model (the README's recognizer table)
    bundled_weights: ClassVar[str] = ""  # where the weights are when no file is fetched (the README's table)
    embedding_size: ClassVar[int] = 0
    input_spec: ClassVar[InputSpec] = InputSpec(size=(112, 112), mean=127.5, std=127.5, rgb=True, center=True)
    thresholds: ClassVar[Mapping[str, float]] = {}
    confidences: ClassVar[Mapping[str, ConfidenceModel]] = {}
    embedding_range: ClassVar[Optional[Tuple[float, float]]] = None

    def __init__(self, batch_size: int = DEFAULT_FACE_BATCH):
        self.batch_size = check_batch_size(batch_size)

    @property
    def input_size(self) -> int:
        """Side in pixels of the square aligned face the model reads."""
        return self.input_spec.width

    def spec_for(self, normalization: str = "base") -> InputSpec:
        """The input spec with DeepFace's ``normalization`` applied (see :mod:`deepbatch.recognition.normalization`)."""
        return spec_for(self.input_spec, normalization)

    def cut_faces(self, image: np.ndarray, faces: Faces, align: bool,
                  whole_image: bool) -> Optional[Tuple[FaceCrops, np.ndarray]]:
        """``None``: the model reads the crops every recognizer reads. A model trained on another library's crops
        returns its own ``(crops, model input)`` for ``faces`` in ``image`` (``whole_image``: the detector was
        ``skip``)."""
        return None

    def embed(self, faces: np.ndarray, batch_size: Optional[int] = None,
              spec: Optional[InputSpec] = None) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``(N, S, S, 3)`` uint8 BGR aligned faces, ``batch_size`` faces per call.

        ``spec`` overrides the model's normalisation (see :meth:`spec_for`); its size must be the model's.
        """
        faces = np.asarray(faces)
        side = self.input_size
        if faces.ndim != 4 or faces.shape[1:] != (side, side, 3) or faces.dtype != np.uint8:
            raise ValueError(
                f"{self.display_name or self.name} embeds (N, {side}, {side}, 3) uint8 BGR aligned faces, got "
                f"shape {faces.shape} and dtype {faces.dtype}; align them first (deepbatch.ops.align.align_faces)"
            )
        spec = spec or self.input_spec
        out = np.empty((len(faces), self.embedding_size), np.float32)
        start = 0
        for chunk in chunks(faces, batch_size or self.batch_size):
            out[start : start + len(chunk)] = self.embed_blob(normalize_faces(chunk, spec))
            start += len(chunk)
        return out

    @abstractmethod
    def embed_blob(self, blob: np.ndarray) -> np.ndarray:
        """``(n, D)`` embeddings of one normalised ``(n, 3, S, S)`` float32 chunk."""

    @classmethod
    def threshold(cls, metric: str) -> float:
        """The calibrated same-person distance threshold for ``metric``."""
        if check_metric(metric) not in cls.thresholds:
            raise ThresholdUnknownError(cls.display_name or cls.name, metric)
        return float(cls.thresholds[metric])

    @classmethod
    def confidence(cls, distance: float, metric: str, verified: bool) -> float:
        """DeepFace's ``confidence`` (0 to 100) that two faces ``distance`` apart are the same person; 51 or 49 for
        a metric without a fitted mapping, as DeepFace."""
        model = cls.confidences.get(check_metric(metric))
        return default_confidence(verified) if model is None else model.confidence(distance, verified)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class OnnxRecognizer(Recognizer):
    """Template for ONNX Runtime recognizers: one ``session.run`` per chunk of faces, through :class:`OnnxModel`.

    ``model_path`` overrides the weights lookup; ``providers`` and ``threads`` configure ONNX Runtime;
    ``batch_size`` is the number of faces per model call; ``verify_batch`` forces the cross-frame check of a
    repaired batch axis on or off (by default it runs when the export had to be repaired).
    """

    runs_on = "ONNX Runtime"
    weights: WeightFile

    def __init__(
        self,
        model_path: Optional[Union[str, Path]] = None,
        providers: ProviderList = "auto",
        threads: Optional[int] = None,
        batch_size: int = DEFAULT_FACE_BATCH,
        weights: Optional[WeightFile] = None,
        verify_batch: Optional[bool] = None,
    ):
        super().__init__(batch_size)
        if weights is not None:
            self.weights = weights
        check_threads(threads)  # arguments first: a bad one is reported as such, also offline
        requested_providers(providers)
        path = resolve_weights(self.weights, model_path)
        side = self.input_size
        self.model = OnnxModel(path, providers, threads, probe_shape=(3, side, side), verify_batch=verify_batch)
        self._check_signature()

    def _check_signature(self) -> None:
        shape = self.model.input_shape
        side = self.input_size
        if len(shape) != 4 or shape[1] != 3 or any(isinstance(d, int) and d != side for d in shape[2:]):
            raise ModelFormatError(
                f"{self.model.path.name}: input {self.model.input_name!r} has shape {shape}; "
                f"{self.display_name} expects (batch, 3, {side}, {side})"
            )
        if len(self.model.output_names) != 1:
            raise ModelFormatError(
                f"{self.model.path.name}: expected one embedding output, found {self.model.output_names}"
            )
        declared = self.model.session.get_outputs()[0].shape
        if declared and isinstance(declared[-1], int) and declared[-1] != self.embedding_size:
            raise ModelFormatError(
                f"{self.model.path.name}: output {self.model.output_names[0]!r} has shape {declared}; "
                f"{self.display_name} gives {self.embedding_size}-d embeddings"
            )

    def embed_blob(self, blob: np.ndarray) -> np.ndarray:
        out = self.model.run(blob)[0]
        return out.reshape(len(blob), -1)


def build_recognizer(name: str, **kwargs: Any) -> Recognizer:
    """The recognizer registered as ``name`` (case-insensitive; built once per name and arguments, then cached).

    Args:
        name: A registered name or alias (``list_recognizers()``), in any case.
        **kwargs: The recognizer's options (``model_path``, ``providers``, ...).

    Returns:
        The ``Recognizer``; the same instance for the same name and options.

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests the closest names).
        MissingDependencyError: The backend's extra is not installed (the message names it).
        WeightsNotFoundError: The weights are neither found nor downloadable.
    """
    return RECOGNIZERS.build(name, **kwargs)


def list_recognizers() -> List[str]:
    """Every registered recognizer name, aliases included.

    Returns:
        The names, sorted.
    """
    return RECOGNIZERS.names()


def resolve_recognizer(model_name: Union[str, Recognizer], performance: Any = None, **options: Any) -> Recognizer:
    """A recognizer instance from a registered name (cached; built with the model options of ``performance``, a
    :class:`deepbatch.Performance`, such as its ``threads``) or an instance passed through."""
    if isinstance(model_name, Recognizer):
        return model_name
    if performance is not None:
        options = {**performance.model_options(RECOGNIZERS.entry(model_name).factory), **options}
    return build_recognizer(model_name, **options)
