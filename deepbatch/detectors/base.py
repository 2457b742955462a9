"""The detector contract and the shared machinery every backend builds on.

* :class:`Detector` is the contract: ``detect_faces(images)`` takes a list of HxWx3 uint8 BGR arrays of any sizes
  (or a 4-D array) and returns one :class:`~deepbatch.structures.Faces` per image, in order. The framework chunks
  the input into ``batch_size`` pieces; a backend implements either ``detect_batch`` (one chunk at once: native
  batching) or ``detect_image`` (one image; the base class loops).
* :class:`OnnxDetector` is the template for ONNX Runtime detectors: letterbox the chunk onto one canvas, one
  ``session.run``, a model-specific vectorised ``decode`` to canvas pixels, NMS per image, and the mapping back to
  each original image. A backend file declares its :class:`InputSpec` and writes ``decode``; nothing else.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ArgumentError
from ..io.images import validate_arrays
from ..ops.letterbox import BufferPool, InputSpec, Letterboxed, letterbox
from ..ops.nms import nms
from ..registry import Registry
from ..runtime.model import OnnxModel
from ..runtime.session import ProviderList
from ..structures import Faces
from ..weights import WeightFile, resolve_weights

logger = logging.getLogger(__name__)

DETECTORS: Registry[Detector] = Registry("detector", "deepbatch.detectors", name_instances=True)
DEFAULT_BATCH_SIZE = 32


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive pieces of ``items`` of at most ``size`` elements."""
    if size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Detector(ABC):  # noqa: B024 (abstract by contract: __init_subclass__ demands one of two overrides)
    """A face detector. Subclasses override ``detect_batch`` (native batching) or ``detect_image`` (looped)."""

    name: ClassVar[str] = ""
    native_batching: ClassVar[bool] = False
    extra: ClassVar[str] = ""  # the deepbatch extra whose packages the backend needs ("" when none)
    has_landmarks: bool = False  # instances may decide (an export without keypoint outputs has none)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides = cls.detect_batch is not Detector.detect_batch or cls.detect_image is not Detector.detect_image
        if not overrides:
            raise TypeError(f"{cls.__name__} must override detect_batch or detect_image")

    def detect_faces(
        self, images: Union[Sequence[np.ndarray], np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> List[Faces]:
        """One :class:`Faces` per input image, in input order (empty ``Faces`` for an image without faces).

        ``images``: a list of HxWx3 uint8 BGR arrays of any sizes, or an (N, H, W, 3) array. Grayscale, BGRA and
        other dtypes are converted as :func:`deepbatch.io.images.to_bgr` documents. Native backends run
        ``batch_size`` images per model call; the others loop.
        """
        arrays = validate_arrays(images)
        results: List[Faces] = []
        for chunk in chunks(arrays, batch_size):
            found = self.detect_batch(chunk)
            if len(found) != len(chunk):
                raise RuntimeError(
                    f"{type(self).__name__}.detect_batch returned {len(found)} results for {len(chunk)} images"
                )
            results.extend(found)
        return results

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        """Faces for one chunk of validated images; by default one ``detect_image`` call per image."""
        return [self.detect_image(image) for image in images]

    def detect_image(self, image: np.ndarray) -> Faces:
        """Faces in one validated image; by default a chunk of one through ``detect_batch``."""
        return self.detect_batch([image])[0]

    @property
    def batching(self) -> str:
        """How a chunk runs: ``native``, ``repaired`` or ``per_image`` with the reason (ONNX models), or
        ``native`` / ``loop`` for backends that batch or loop by design."""
        batching = getattr(getattr(self, "model", None), "batching", None)
        if batching is not None:
            return str(batching)
        return "native" if self.native_batching else "loop (one image per call by design)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, batching={self.batching.split(' ')[0]!r})"


@dataclass
class RawDetections:
    """Decoded candidates of one image before NMS, in canvas pixels (landmarks person-relative or None)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: Optional[np.ndarray] = None
    suppressed: bool = False  # True when the model already removed duplicates (NMS-free exports): no NMS runs


class OnnxDetector(Detector):
    """Template for ONNX Runtime detectors: letterbox, one ``session.run`` per chunk, ``decode``, NMS, map back.

    ``model_path`` overrides the weights lookup; ``input_size`` is the canvas ``(width, height)`` or one int for a
    square canvas; ``providers`` and ``threads`` configure ONNX Runtime. Exports whose batch axis is declared as 1 or
    flattened are repaired in memory and checked (see :class:`OnnxModel`, ``verify_batch``).
    """

    native_batching = True
    weights: WeightFile
    dynamic_spatial: bool = True  # free the declared height/width so any input_size works
    size_multiple: int = 32  # canvas sides must be multiples of the coarsest stride

    def __init__(
        self,
        model_path: Optional[Union[str, Path]] = None,
        input_size: Union[int, Tuple[int, int]] = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        providers: ProviderList = "auto",
        threads: Optional[int] = None,
        weights: Optional[WeightFile] = None,
        verify_batch: Optional[bool] = None,
    ):
        if weights is not None:
            self.weights = weights
        self.input_spec = self.build_input_spec(_as_size(input_size, self.size_multiple))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        path = resolve_weights(self.weights, model_path)
        self._buffers = BufferPool()
        self.model = OnnxModel(path, providers, threads, dynamic_spatial=self.dynamic_spatial,
                               probe_shape=(3, self.input_spec.height, self.input_spec.width),
                               verify_batch=verify_batch)

    @abstractmethod
    def build_input_spec(self, size: Tuple[int, int]) -> InputSpec:
        """The model's pre-processing for a ``(width, height)`` canvas."""

    @abstractmethod
    def decode(self, outputs: List[np.ndarray], batch: Letterboxed) -> List[RawDetections]:
        """Turn the raw outputs of one chunk into per-image candidates above ``score_threshold``, canvas pixels."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        return self.infer_batch(self.prepare_batch(images))

    def prepare_batch(self, images: Sequence[np.ndarray]) -> Letterboxed:
        """The CPU half of :meth:`detect_batch`: letterbox one chunk of validated images into a pooled blob.

        Thread-safe, so :mod:`deepbatch.pipeline` runs it on prefetch threads while the model runs the previous
        chunk. The blob belongs to the caller until it is passed to :meth:`infer_batch`.
        """
        return letterbox(images, self.input_spec, self._buffers)

    def infer_batch(self, batch: Letterboxed) -> List[Faces]:
        """The model half of :meth:`detect_batch`: one ``session.run``, ``decode``, NMS and mapping back for a
        chunk from :meth:`prepare_batch`, whose blob then returns to the pool."""
        try:
            outputs = self.model.run(batch.blob)
            return [self._finish(raw, batch, index) for index, raw in enumerate(self.decode(outputs, batch))]
        finally:
            self._buffers.give(batch.buffer)

    def _finish(self, raw: RawDetections, batch: Letterboxed, index: int) -> Faces:
        keep = np.arange(len(raw.scores)) if raw.suppressed else nms(raw.boxes, raw.scores, self.nms_threshold)
        boxes = batch.boxes_to_original(index, raw.boxes[keep])
        landmarks = None if raw.landmarks is None else batch.to_original(index, raw.landmarks[keep])
        return Faces(boxes, raw.scores[keep], landmarks)


def _as_size(size: Union[int, Sequence[int]], multiple: int = 32) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        width = height = int(size)
    else:
        width, height = (int(v) for v in size)
    if width < multiple or height < multiple or width % multiple or height % multiple:
        raise ArgumentError(f"input_size must be multiples of {multiple} and at least {multiple}, got {size}")
    return width, height


def build_detector(name: str, **kwargs: Any) -> Detector:
    """The detector registered as ``name`` (built once per name and arguments, then cached)."""
    return DETECTORS.build(name, **kwargs)


def list_detectors() -> List[str]:
    """Every registered detector name, aliases included."""
    return DETECTORS.names()
