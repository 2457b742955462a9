"""The callable classes Ray Data runs on each actor: they build their models once, then turn batches of rows into
face rows."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ..errors import WorkerSpecError
from ..registry import accepts
from ..rows import image_row
from .columns import arrow_table, batch_items, encode_crops, input_column

if TYPE_CHECKING:
    import pyarrow

    from ..detectors.base import Detector
    from ..recognition.base import Recognizer

logger = logging.getLogger(__name__)


DetectorSpec = Union[str, Callable[[], "Detector"]]
RecognizerSpec = Union[str, Callable[[], "Recognizer"]]


def check_spec(spec: Any, kind: str, base: type) -> None:
    if isinstance(spec, base):
        raise WorkerSpecError(
            f"a built {kind} cannot be shipped to Ray workers (its ONNX Runtime session does not pickle); pass its "
            f"registered name, or a function without arguments that builds it on the worker, e.g. "
            f"functools.partial(MyClass, ...)"
        )
    if not isinstance(spec, str) and not callable(spec):
        raise WorkerSpecError(
            f"{kind} must be a registered name or a function that builds one, got {type(spec).__name__}"
        )


def _options_with_threads(registry: Any, name: str, options: Mapping[str, Any], threads: Optional[int]) -> Dict:
    """``options`` plus ONNX Runtime's ``threads`` sized to the worker's CPUs, when the backend takes it."""
    out = dict(options)
    if threads is not None and "threads" not in out and accepts(registry.entry(name).factory, "threads"):
        out["threads"] = threads
    return out


def _build_detector(spec: DetectorSpec, options: Mapping[str, Any], threads: Optional[int]) -> Detector:
    if not isinstance(spec, str):
        return spec()
    from ..detectors.base import DETECTORS, build_detector

    return build_detector(spec, **_options_with_threads(DETECTORS, spec, options, threads))


def _build_recognizer(spec: RecognizerSpec, options: Mapping[str, Any], threads: Optional[int]) -> Recognizer:
    if not isinstance(spec, str):
        return spec()
    from ..recognition.base import RECOGNIZERS, build_recognizer

    return build_recognizer(spec, **_options_with_threads(RECOGNIZERS, spec, options, threads))


class _Worker(ABC):
    """State shared by the detection and embedding workers: the input column, what to keep, how to batch."""

    embedding_size = 0

    def __init__(self, column: Optional[str], channels: str, keep_columns: Sequence[str], batch_size: int,
                 include_face: bool, align: bool, enforce_detection: Union[bool, str], max_faces: Optional[int],
                 expand_percentage: float, image_limits: Optional[Mapping[str, Any]] = None):
        from ..core.stream import FaceRules

        if image_limits:
            from ..io.images import set_image_limits

            set_image_limits(**image_limits)  # this actor's process: the run's limits, as the local engine's
        self.column = column
        self.channels = channels
        self.keep_columns = list(keep_columns)
        self.batch_size = batch_size
        self.include_face = include_face
        self.rules = FaceRules.of(enforce_detection, max_faces, expand_percentage, align)

    def __call__(self, batch: Dict[str, Any]) -> pyarrow.Table:
        column = input_column(list(batch), self.column)
        keep = (["path"] if "path" in batch else []) + [c for c in self.keep_columns if c != "path"]
        items = batch_items(batch, column, self.channels)
        try:
            results = self.process(items)
        except Exception as exc:  # one image that breaks a model must not fail its batch: find it, image by image
            logger.warning("a batch of %d images failed (%s: %s); retrying them one by one", len(items),
                           type(exc).__name__, exc)
            results = [self._process_alone(item) for item in items]
        return arrow_table(batch, keep, results, self.embedding_size, self.include_face)

    def _process_alone(self, item: Any) -> Dict[str, Any]:
        try:
            return self.process([item])[0]
        except Exception as exc:  # recorded in the row's error column
            return image_row(None, None, None, exc)

    @abstractmethod
    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        """One row (:func:`deepbatch.rows.image_row`, its ``path`` filled in later) per item."""


class FaceDetectionWorker(_Worker):
    """Ray Data callable class: builds the detector once per actor, then turns batches of rows into face rows."""

    def __init__(self, detector_backend: DetectorSpec, detector_options: Mapping[str, Any],
                 threads: Optional[int], **settings: Any):
        super().__init__(**settings)
        self.detector = _build_detector(detector_backend, detector_options, threads)

    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        from ..core.stream import iter_records

        out = []
        for record in iter_records(items, self.detector, self.batch_size, self.rules, crops=self.include_face,
                                   on_error="skip"):
            row = record.row()
            if record.crops is not None:
                for face, crop in zip(row["faces"], encode_crops(record.crops)):
                    face["face"] = crop
            out.append(row)
        return out


class FaceEmbeddingWorker(_Worker):
    """Ray Data callable class: builds the detector and recognizer once per actor, then embeds batches of rows."""

    def __init__(self, model_name: RecognizerSpec, recognizer_options: Mapping[str, Any], normalization: str,
                 l2_normalize: bool, detector_backend: DetectorSpec, detector_options: Mapping[str, Any],
                 threads: Optional[int], **settings: Any):
        super().__init__(**settings)
        self.detector = _build_detector(detector_backend, detector_options, threads)
        self.recognizer = _build_recognizer(model_name, recognizer_options, threads)
        self.spec = self.recognizer.spec_for(normalization)
        self.l2_normalize = l2_normalize
        self.embedding_size = int(self.recognizer.embedding_size)

    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        from ..core.stream import iter_records
        from ..recognition.normalization import l2_normalize

        out = []
        for record in iter_records(items, self.detector, self.batch_size, self.rules, recognizer=self.recognizer,
                                   spec=self.spec, on_error="skip"):
            if self.l2_normalize and record.embeddings is not None:
                record.embeddings = l2_normalize(record.embeddings)
            out.append(record.row())
        return out
