"""The detector contract and the shared machinery every backend builds on.

* :class:`Detector` is the contract: ``detect_faces(images)`` takes a list of HxWx3 uint8 BGR arrays of any sizes
  (or a 4-D array) and returns one :class:`~deepbatch.structures.Faces` per image, in order. The framework chunks
  the input into ``batch_size`` pieces; a backend implements either ``detect_batch`` (one model call per chunk,
  :attr:`Detector.batches_whole_chunks`) or ``detect_image`` (one image; the base class loops). A chunk runs in two
  halves, ``infer_batch(prepare_batch(images))``: :mod:`deepbatch.core.workers` runs the thread-safe
  ``prepare_batch`` ahead on prefetch threads. By default all the work is in ``infer_batch``.
* :class:`OnnxDetector` is the template for ONNX Runtime detectors: letterbox the chunk onto one canvas
  (``prepare_batch``), then one ``session.run``, the score threshold, the backend's decoding of the kept candidates,
  the landmark order, NMS per image and the mapping back to each original image (``infer_batch``). A backend file
  declares its pre-processing (:attr:`~OnnxDetector.default_input`) and landmark order, and writes ``scores`` and
  ``decode`` over the whole chunk; nothing else.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..batching import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from ..batching import chunks as chunks
from ..errors import ArgumentError
from ..io.images import validate_arrays
from ..ops.boxes import split_by_image
from ..ops.letterbox import BufferPool, InputSpec, Letterboxed, letterbox
from ..ops.nms import nms
from ..registry import Registry
from ..runtime.model import OnnxModel, load_onnx
from ..runtime.onnx_graph import declared_dims
from ..runtime.session import ProviderList, check_threads, requested_providers
from ..structures import Faces
from ..weights import WeightFile, resolve_weights

logger = logging.getLogger(__name__)

DETECTORS: Registry[Detector] = Registry("detector", "deepbatch.detectors", name_instances=True)


class _FormerName:
    """A class attribute's former name: reading it gives the attribute ``current`` with a ``DeprecationWarning``."""

    def __init__(self, current: str):
        self.current = current
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        warnings.warn(f"{owner.__name__}.{self.name} is deprecated: use {self.current}", DeprecationWarning,
                      stacklevel=2)
        return getattr(owner, self.current)


class Detector(ABC):  # noqa: B024 (abstract by contract: __init_subclass__ demands one of two overrides)
    """A face detector. Subclasses override ``detect_batch`` (one model call per chunk) or ``detect_image``
    (looped); one whose chunk has a CPU half that may run ahead of the model (letterboxing) also overrides
    ``prepare_batch`` and ``infer_batch``, so that ``infer_batch(prepare_batch(images))`` is ``detect_batch(images)``.

    ``batches_whole_chunks`` says that ``detect_batch`` hands a whole chunk to the model in one call (the MTCNNs: one
    call per distinct image size in it) rather than looping over its images. It is a property of the backend's code;
    whether an ONNX file batches as exported (``native``, ``repaired`` or ``per_image``) is :attr:`batching`.
    """

    name: ClassVar[str] = ""
    batches_whole_chunks: ClassVar[bool] = False
    native_batching = _FormerName("batches_whole_chunks")  # deprecated: the former name of batches_whole_chunks
    extra: ClassVar[str] = ""  # the deepbatch extra whose packages the backend needs ("" when none)
    runs_on: ClassVar[str] = ""  # what runs the model (the README's detector table)
    bundled_weights: ClassVar[str] = ""  # where the weights are when no file is fetched (the README's table)
    landmark_summary: ClassVar[str] = ""  # the landmarks given, when not "5 points" / "none" (the README's table)
    has_landmarks: bool = False  # instances may decide (an export without keypoint outputs has none)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "native_batching" in cls.__dict__:  # a backend written for the former name
            warnings.warn(f"{cls.__name__}.native_batching is deprecated: set batches_whole_chunks", DeprecationWarning,
                          stacklevel=2)
            cls.batches_whole_chunks = bool(cls.__dict__["native_batching"])
            delattr(cls, "native_batching")
        overrides = cls.detect_batch is not Detector.detect_batch or cls.detect_image is not Detector.detect_image
        if not overrides:
            raise TypeError(f"{cls.__name__} must override detect_batch or detect_image")

    def detect_faces(
        self, images: Union[Sequence[np.ndarray], np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> List[Faces]:
        """One :class:`Faces` per input image, in input order (empty ``Faces`` for an image without faces).

        ``images``: a list of HxWx3 uint8 BGR arrays of any sizes, or an (N, H, W, 3) array. Grayscale, BGRA and
        other dtypes are converted as :func:`deepbatch.io.images.to_bgr` documents. Backends that batch whole
        chunks run ``batch_size`` images per model call; the others loop.
        """
        arrays = validate_arrays(images)
        results: List[Faces] = []
        for chunk in chunks(arrays, batch_size):
            results.extend(self._one_per_image(self.detect_batch(chunk), len(chunk)))
        return results

    def _one_per_image(self, found: List[Faces], count: int) -> List[Faces]:
        if len(found) != count:
            raise RuntimeError(f"{type(self).__name__}.detect_batch returned {len(found)} results for {count} images")
        return found

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        """Faces for one chunk of validated images; by default one ``detect_image`` call per image."""
        return [self.detect_image(image) for image in images]

    def detect_image(self, image: np.ndarray) -> Faces:
        """Faces in one validated image; by default a chunk of one through ``detect_batch``."""
        return self.detect_batch([image])[0]

    def prepare_batch(self, images: Sequence[np.ndarray]) -> Any:
        """The CPU half of a chunk of validated images, safe to run on another thread while the model runs the
        previous chunk; by default the images themselves (the detector does all its work in :meth:`infer_batch`)."""
        return images

    def infer_batch(self, prepared: Any) -> List[Faces]:
        """One :class:`Faces` per image of a chunk from :meth:`prepare_batch`; by default :meth:`detect_batch`."""
        return self._one_per_image(self.detect_batch(prepared), len(prepared))

    @property
    def canvas(self) -> Optional[InputSpec]:
        """The :class:`InputSpec` of the canvas every image is fitted onto, or None when the detector looks at images
        at their own size (then nothing may be decoded smaller than it is)."""
        return None

    @property
    def parallel_chunks(self) -> bool:
        """Whether chunks may run through :meth:`infer_batch` on several threads at once. Backends that are safe
        to call from several threads and run on the CPU say True: the pipeline then gives each core a chunk of its
        own (decode, letterbox, model, decode of the outputs) instead of spreading one model call over every core
        while the next images wait to be decoded. A GPU is fed large batches from one thread instead."""
        return False

    @classmethod
    def designed_batching(cls) -> Optional[str]:
        """How a chunk runs when the class alone says it: ``one call per chunk`` or ``loop`` for backends that
        batch or loop by design (:attr:`batches_whole_chunks`); None where it is known only once the model file is
        loaded (ONNX models: ``native``, ``repaired`` or ``per_image``)."""
        return "one call per chunk" if cls.batches_whole_chunks else "loop (one image per call by design)"

    @property
    def batching(self) -> str:
        """How a chunk runs: ``native``, ``repaired`` or ``per_image`` with the reason (ONNX models, see
        :class:`~deepbatch.runtime.model.OnnxModel`), or :meth:`designed_batching`."""
        batching = getattr(getattr(self, "model", None), "batching", None)
        if batching is not None:
            return str(batching)
        return self.designed_batching() or "one call per chunk"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, batching={self.batching.split(' (')[0]!r})"


@dataclass(frozen=True)
class Candidates:
    """The candidates of one chunk before NMS, in canvas pixels: ``image_index`` (M,) sorted, the image of the chunk
    each belongs to; ``boxes`` (M, 4) xyxy; ``scores`` (M,); ``landmarks`` (M, K, 2) person-relative, or None."""

    image_index: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: Optional[np.ndarray]


class OnnxDetector(Detector):
    """Template for ONNX Runtime detectors: letterbox, one ``session.run`` per chunk, threshold, ``decode``, NMS, map
    back.

    ``model_path`` overrides the weights lookup; ``input_size`` is the canvas ``(width, height)`` or one int for a
    square canvas (default: the size of :attr:`default_input`, or for a model without :attr:`dynamic_spatial` the
    canvas its file declares, the only one it accepts); ``providers`` and ``threads`` configure ONNX Runtime.
    Exports whose batch axis is declared as 1 or flattened are repaired in memory and checked (see
    :class:`OnnxModel`, ``verify_batch``).

    A backend declares :attr:`default_input` (its pre-processing and default canvas) and :attr:`landmark_order`, and
    implements :meth:`scores` and :meth:`decode`.
    """

    runs_on = "ONNX Runtime"
    batches_whole_chunks = True
    weights: WeightFile
    default_input: ClassVar[InputSpec] = InputSpec()  # pre-processing; its size is the default canvas
    # Permutation from the model's landmark order to the person-relative one (OBSERVER_TO_PERSON for models that
    # put the eye on the image's left first); None when the model already gives person order or no landmarks.
    landmark_order: ClassVar[Optional[np.ndarray]] = None
    nms_free: bool = False  # True when the export already removed duplicate candidates: no NMS runs
    dynamic_spatial: bool = True  # free the declared height/width so any input_size works
    size_multiple: int = 32  # canvas sides must be multiples of the coarsest stride

    def __init__(
        self,
        model_path: Optional[Union[str, Path]] = None,
        input_size: Optional[Union[int, Tuple[int, int]]] = None,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        providers: ProviderList = "auto",
        threads: Optional[int] = None,
        weights: Optional[WeightFile] = None,
        verify_batch: Optional[bool] = None,
    ):
        if weights is not None:
            self.weights = weights
        # Arguments are checked before the weights are looked up: a bad one is reported as such, also offline.
        requested = None if input_size is None else check_input_size(input_size, self.size_multiple)
        self.score_threshold = fraction("score_threshold", score_threshold)
        self.nms_threshold = fraction("nms_threshold", nms_threshold)
        check_threads(threads)
        requested_providers(providers)
        path = resolve_weights(self.weights, model_path)
        declared = None if self.dynamic_spatial else _declared_canvas(path)
        size = requested or declared or self.default_input.size
        self.input_spec = replace(self.default_input, size=check_input_size(size, self.size_multiple))
        if declared is not None and self.input_spec.size != declared:
            raise ArgumentError(
                f"{path.name} runs only on the {declared[0]}x{declared[1]} canvas it was exported for (its graph "
                f"holds constants of that size), got input_size={input_size!r}; leave input_size out or pass "
                f"{declared}")
        self._buffers = BufferPool()
        self.model = OnnxModel(path, providers, threads, dynamic_spatial=self.dynamic_spatial,
                               probe_shape=(3, self.input_spec.height, self.input_spec.width),
                               verify_batch=verify_batch)

    @classmethod
    def designed_batching(cls) -> Optional[str]:
        return None  # native, repaired or per_image: decided when the file is loaded (see OnnxModel)

    @property
    def canvas(self) -> InputSpec:
        return self.input_spec

    @property
    def parallel_chunks(self) -> bool:
        return self.model.providers[0] == "CPUExecutionProvider"  # ONNX Runtime sessions take concurrent runs

    @abstractmethod
    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        """(B, N) float scores of every candidate of a chunk, from its raw ``outputs``."""

    @abstractmethod
    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               candidate: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Boxes (M, 4) xyxy and landmarks (M, K, 2) ``x, y`` in the model's own point order (or None), in canvas
        pixels, of the M kept candidates: candidate ``candidate[i]`` (a column of :meth:`scores`) of image
        ``image_index[i]`` of the chunk."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        return self.infer_batch(self.prepare_batch(images))

    def prepare_batch(self, images: Sequence[np.ndarray]) -> Letterboxed:
        """Letterbox one chunk of validated images into a pooled blob. Thread-safe; the blob belongs to the caller
        until it is passed to :meth:`infer_batch`."""
        return letterbox(images, self.input_spec, self._buffers)

    def infer_batch(self, prepared: Letterboxed) -> List[Faces]:
        """One ``session.run`` on a chunk from :meth:`prepare_batch` (whose blob then returns to the pool), and
        :meth:`faces` of its outputs."""
        try:
            outputs = self.model.run(prepared.blob)
        finally:
            self._buffers.give(prepared.buffer)
        return self.faces(outputs, prepared)

    def candidates(self, outputs: List[np.ndarray]) -> Candidates:
        """The candidates of a chunk at or above ``score_threshold``, decoded, landmarks in person order."""
        scores = self.scores(outputs)
        image_index, candidate = np.nonzero(scores >= self.score_threshold)
        boxes, landmarks = self.decode(outputs, image_index, candidate)
        if landmarks is not None and self.landmark_order is not None:
            landmarks = landmarks[:, self.landmark_order]
        return Candidates(image_index, boxes, scores[image_index, candidate], landmarks)

    def faces(self, outputs: List[np.ndarray], batch: Letterboxed) -> List[Faces]:
        """One :class:`Faces` per image of a chunk from its raw model ``outputs``: the :meth:`candidates`, NMS per
        image (unless :attr:`nms_free`), mapped back to each image's original pixels (``batch`` holds the
        geometry)."""
        found = self.candidates(outputs)
        result = []
        for index, part in enumerate(split_by_image(found.image_index, len(batch.shapes))):
            kept = np.arange(part.start, part.stop)
            if not self.nms_free:
                kept = kept[nms(found.boxes[part], found.scores[part], self.nms_threshold)]
            landmarks = None if found.landmarks is None else batch.to_original(index, found.landmarks[kept])
            result.append(Faces(batch.boxes_to_original(index, found.boxes[kept]), found.scores[kept], landmarks))
        return result


def _declared_canvas(path: Path) -> Optional[Tuple[int, int]]:
    """The ``(width, height)`` an ONNX file declares for its input, or None when either is not a fixed number."""
    dims = declared_dims(load_onnx(path).graph.input[0])
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[2:]):
        return None
    return int(dims[3]), int(dims[2])


def fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1], or :class:`ArgumentError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ArgumentError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def check_input_size(size: Union[int, Sequence[int]], multiple: int = 32) -> Tuple[int, int]:
    """A detector's ``input_size`` (one side, or ``(width, height)``) as ``(width, height)``, each a multiple of
    ``multiple`` and at least ``multiple``; an :class:`ArgumentError` otherwise."""
    if isinstance(size, (int, np.integer)):
        width = height = int(size)
    else:
        width, height = (int(v) for v in size)
    if width < multiple or height < multiple or width % multiple or height % multiple:
        raise ArgumentError(f"input_size must be multiples of {multiple} and at least {multiple}, got {size}")
    return width, height


def build_detector(name: str, **kwargs: Any) -> Detector:
    """The detector registered as ``name`` (built once per name and arguments, then cached).

    Args:
        name: A registered name or alias (``list_detectors()``).
        **kwargs: The detector's options (``model_path``, ``providers``, ``input_size``, ``conf``, ...).

    Returns:
        The ``Detector``; the same instance for the same name and options.

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests the closest names).
        MissingDependencyError: The backend's extra is not installed (the message names it).
        WeightsNotFoundError: The weights are neither found nor downloadable.
    """
    return DETECTORS.build(name, **kwargs)


def list_detectors() -> List[str]:
    """Every registered detector name, aliases included.

    Returns:
        The names, sorted.
    """
    return DETECTORS.names()
