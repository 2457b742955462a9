"""The streaming core under every edge: one generator of :class:`~deepbatch.records.ImageRecord`, one per input.

:func:`iter_records` loads and detects the inputs chunk by chunk (:func:`iter_detections`: prefetch threads read,
decode and letterbox the next chunks while the model runs the current one), applies the face rules
(:class:`FaceRules`: no face, ``max_faces``, expansion, alignment), cuts the crops on the prefetch threads when they
are needed, and embeds the faces of a chunk together when given a recognizer. ``extract_faces``, ``detect``,
``represent``, ``verify``, ``find``, the command line and Ray all consume it; they only serialise its records
(DeepFace-style dicts, or rows with :meth:`ImageRecord.row`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Generator, Iterable, List, Optional, Sized, Tuple, Union

import numpy as np

from ..batching import DEFAULT_BATCH_SIZE
from ..checks import check_batch_size, check_expand_percentage, check_max_faces
from ..core.workers import (
    DEFAULT_PREFETCH,
    budget_chunks,
    detector_canvas,
    detector_stages,
    parallel_workers,
    prefetch_map,
)
from ..detectors.base import Detector
from ..errors import ArgumentError, FaceNotDetectedError, ImageError
from ..io.images import declared_pixels, describe, get_image_limits, load_image, load_image_for_canvas
from ..ops.align import FaceCrops, expand_boxes, face_crops
from ..ops.align import model_input as model_input
from ..ops.boxes import clip_boxes
from ..ops.letterbox import InputSpec
from ..records import ImageRecord
from ..runtime.session import threads_per_run, usable_cpus
from ..structures import Faces
from .on_error import ON_ERROR as ON_ERROR
from .on_error import check_on_error as check_on_error

if TYPE_CHECKING:
    from ..recognition.base import Recognizer

logger = logging.getLogger(__name__)

NO_FACE_RULES = ("error", "whole_image", "empty")


def no_face_rule(enforce_detection: Union[bool, str]) -> str:
    """DeepFace's ``enforce_detection`` as a rule: ``True`` makes a faceless image an error, ``False`` reports the
    whole image as one face with confidence 0; a string is already one of :data:`NO_FACE_RULES`."""
    if isinstance(enforce_detection, str):
        return enforce_detection
    return "error" if enforce_detection else "whole_image"


def select_faces(faces: Faces, shape: Tuple[int, ...], no_face: str, max_faces: Optional[int],
                 expand_percentage: float, index: Optional[int] = None, source: Optional[str] = None) -> Faces:
    """The faces an image of ``shape`` reports, by the rules every edge shares: with none found, ``no_face`` decides
    (``"error"`` raises :class:`FaceNotDetectedError` naming ``index`` and ``source``, ``"whole_image"`` gives the
    whole image with score 0, ``"empty"`` gives no face); then the ``max_faces`` largest are kept, largest first,
    and the boxes are grown by ``expand_percentage`` (clamped to the image)."""
    if no_face not in NO_FACE_RULES:
        raise ArgumentError(f"no_face must be one of {NO_FACE_RULES}, got {no_face!r}")
    height, width = shape[:2]
    if len(faces) == 0:
        if no_face == "error":
            raise FaceNotDetectedError(index, source)
        if no_face == "empty":
            return faces
        faces = Faces(np.array([[0, 0, width, height]], np.float32), np.zeros(1, np.float32))
    if max_faces is not None and max_faces < len(faces):
        faces = faces.largest(max_faces)
    if expand_percentage:
        faces = Faces(expand_boxes(faces.boxes, expand_percentage, height, width), faces.scores, faces.landmarks)
    return faces


@dataclass(frozen=True)
class FaceRules:
    """What a user gets from an image's detections, the same for every edge: ``no_face`` (one of
    :data:`NO_FACE_RULES`: ``"error"`` for ``enforce_detection=True``, ``"whole_image"`` for ``False``, ``"empty"``
    for the command line's plain rows), the ``max_faces`` largest faces, boxes grown by ``expand_percentage``, and
    crops warped onto the five-point template (``align``) or cut from the box."""

    no_face: str = "error"
    max_faces: Optional[int] = None
    expand_percentage: float = 0.0
    align: bool = True

    def __post_init__(self) -> None:
        if self.no_face not in NO_FACE_RULES:
            raise ArgumentError(f"no_face must be one of {NO_FACE_RULES}, got {self.no_face!r}")
        object.__setattr__(self, "expand_percentage", check_expand_percentage(self.expand_percentage))
        object.__setattr__(self, "max_faces", check_max_faces(self.max_faces))

    @classmethod
    def of(cls, enforce_detection: Union[bool, str] = True, max_faces: Optional[int] = None,
           expand_percentage: float = 0.0, align: bool = True) -> FaceRules:
        """The rules of DeepFace's arguments (``enforce_detection`` may also be one of :data:`NO_FACE_RULES`)."""
        return cls(no_face_rule(enforce_detection), max_faces, expand_percentage, align)

    def select(self, faces: Faces, shape: Tuple[int, ...], index: Optional[int] = None,
               source: Optional[str] = None) -> Faces:
        """:func:`select_faces` under these rules."""
        return select_faces(faces, shape, self.no_face, self.max_faces, self.expand_percentage, index, source)

    def cut(self, image: np.ndarray, faces: Faces) -> FaceCrops:
        """The crops of ``faces`` (chosen by :meth:`select`) in ``image``, as ``extract_faces`` returns them."""
        return face_crops(image, faces.boxes, faces.landmarks, self.expand_percentage, use_landmarks=self.align)


def one_chunk(items: Iterable[Any], batch_size: int, single: bool = False) -> bool:
    """Whether ``items`` make a single chunk: one image given alone, or a sequence of at most ``batch_size``. With
    nothing to overlap it with, such an input runs in the calling thread, its model calls on every core (the
    prefetch threads would run its one chunk on one core's share while the other cores wait)."""
    return single or (isinstance(items, Sized) and len(items) <= batch_size)


def iter_records(
    items: Iterable[Any],
    detector: Detector,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rules: FaceRules = FaceRules(),
    *,
    recognizer: Optional[Recognizer] = None,
    spec: Optional[InputSpec] = None,
    crops: bool = False,
    reduced: bool = False,
    on_error: str = "raise",
    single: bool = False,
    workers: Optional[int] = None,
    prefetch: int = DEFAULT_PREFETCH,
    as_loaded: bool = False,
) -> Generator[ImageRecord, None, None]:
    """One :class:`~deepbatch.records.ImageRecord` per item of ``items``, in order, its ``faces`` chosen by ``rules``.

    ``crops=True`` keeps each face's crop (uint8 BGR, as :meth:`FaceRules.cut` cuts it) in ``crops``; crops are cut
    on the prefetch threads while the model runs the next chunk. With a ``recognizer`` the faces of ``batch_size``
    images are embedded together (``spec`` overrides the recognizer's normalisation): each record gets
    ``embeddings`` and ``points``, and its decoded ``image`` is dropped. Without one the record keeps its ``image``
    (at ``1 / factor`` of the original size with ``reduced=True``, which lets large JPEG files decode at the scale
    the detector's canvas needs; faces are in original pixels all the same).

    Memory holds the decoded images of at most :func:`chunks_held` chunks whatever the length of ``items``:
    ``prefetch + 2`` (the chunks prepared ahead, the one being detected or handed out, and the one whose faces are
    being cut), or ``max(prefetch, workers + 1) + 2`` when the detector runs whole chunks on the threads (a CPU
    model), and one chunk with ``workers=0`` or ``prefetch=0``.

    An unusable image, or a faceless one under ``no_face="error"``, gets its ``error`` (and ``faces`` None).
    ``on_error="raise"`` (or ``single``: one image given alone, whose errors name no index) raises it when the
    stream reaches it, in input order whatever ``batch_size`` is; ``"skip"`` yields the record and goes on.
    ``as_loaded`` (DeepFace's ``represent``) tells a recognizer that cuts its own faces that the ``skip`` detector's
    images reach it as loaded, not as extracted faces (DeepFace resizes the one as uint8, the other as floats). Nothing
    is logged here: the edges report errors. ``items`` is read lazily (see :func:`iter_detections` for ``workers``
    and ``prefetch``).
    """
    check_on_error(on_error)
    if reduced and (crops or recognizer is not None):
        raise ArgumentError("reduced decoding gives no full-resolution pixels to cut crops from")
    workers = 0 if workers is None and one_chunk(items, batch_size, single) else workers
    detections = iter_detections(items, detector, batch_size, "skip", single, workers=workers, prefetch=prefetch,
                                 reduced=reduced)
    size = None if recognizer is None else int(recognizer.input_size)
    whole_image = as_loaded and detector.name == "skip"

    def finish(record: ImageRecord) -> Tuple[ImageRecord, Optional[np.ndarray]]:
        image = record.image
        if size is not None:
            record.image = None  # embedded records drop their pixels once the faces are cut
        if record.error is not None or image is None or record.faces is None:
            record.faces = None
            return record, None
        try:
            record.faces = rules.select(record.faces, record.shape or image.shape, None if single else record.index,
                                        record.source)
        except FaceNotDetectedError as exc:
            record.error, record.faces = exc, None
            return record, None
        if not crops and size is None:
            return record, None
        # a recognizer that must see faces as another library cuts them (DeepFace's models) cuts its own
        own = None if recognizer is None else recognizer.cut_faces(image, record.faces, rules.align, whole_image)
        cut = rules.cut(image, record.faces) if own is None else own[0]
        record.points = cut.points
        record.crops = cut.crops if crops else None
        if size is None:
            return record, None
        return record, model_input(cut, size) if own is None else own[1]

    finished = prefetch_map(finish, detections, workers, prefetch=batch_size if prefetch else 0,
                            weigh=_decoded_pixels, budget=get_image_limits().max_pixels_in_flight)
    raising = single or on_error == "raise"
    try:
        if recognizer is None:
            for record, _ in finished:
                if raising and record.error is not None:
                    raise record.error
                yield record
            return
        while True:
            chunk = list(islice(finished, batch_size))
            if not chunk:
                return
            failed = [record.error for record, _ in chunk if record.error is not None]
            if raising and failed:
                raise failed[0]
            yield from _embed(chunk, recognizer, spec)
    finally:
        finished.close()
        detections.close()


def _embed(chunk: List[Tuple[ImageRecord, Optional[np.ndarray]]], recognizer: Recognizer,
           spec: Optional[InputSpec]) -> List[ImageRecord]:
    """The chunk's records with ``embeddings`` set: every face of the chunk goes through the model together; an
    image whose rules gave no face gets ``(0, D)``."""
    pixels = [p for record, p in chunk if p is not None and len(p)]
    embeddings = recognizer.embed(np.concatenate(pixels), spec=spec) if pixels else None
    start = 0
    for record, p in chunk:
        if p is None:
            continue
        if len(p) and embeddings is not None:
            record.embeddings = embeddings[start : start + len(p)]
            start += len(p)
        else:
            record.embeddings = np.zeros((0, int(recognizer.embedding_size)), np.float32)
    return [record for record, _ in chunk]


def iter_detections(
    items: Iterable[Any], detector: Detector, batch_size: int = DEFAULT_BATCH_SIZE, on_error: str = "raise",
    single: bool = False, *, workers: Optional[int] = None, prefetch: int = DEFAULT_PREFETCH, reduced: bool = False,
) -> Generator[ImageRecord, None, None]:
    """Load and detect ``items`` chunk by chunk, yielding one :class:`~deepbatch.records.ImageRecord` per item in
    order, with every face the detector found (no rules applied: that is :func:`iter_records`).

    ``reduced=True`` (for callers that need no full-resolution pixels) lets large JPEG files decode at a reduced
    scale that still covers the detector's canvas (:func:`deepbatch.io.images.decode_for_canvas`); faces are
    reported in original pixels all the same, and ``image`` is the reduced one (see ``factor``).

    With ``on_error="raise"`` the first unusable image raises its :class:`ImageError`; with ``"skip"`` it is yielded
    with ``error`` set and the rest go on. While the model runs one chunk, ``workers`` threads read, decode and
    letterbox up to ``prefetch`` next chunks (:mod:`deepbatch.core.workers`; ``workers=0`` does it all in this thread,
    and so does ``workers=None`` for an input of one chunk, see :func:`one_chunk`).
    A detector whose ``parallel_chunks`` is True (a model on the CPU) runs whole chunks on the threads instead, one
    per core by default (:func:`~deepbatch.core.workers.parallel_workers`), up to ``max(prefetch, workers + 1)`` chunks
    at a time, each model run on its share of the cores (:func:`~deepbatch.runtime.session.threads_per_run`).
    ``items`` may be any iterable, a generator included: it is read lazily, and memory holds at most that many
    chunks plus one (see :func:`chunks_held`) whatever its length. The images decoded at once are bounded in pixels too
    (:attr:`~deepbatch.io.images.ImageLimits.max_pixels_in_flight`, from each input's header before it is decoded):
    chunks are cut to fit it, and a chunk starts only while it fits beside those in flight (a huge image runs
    alone).
    """
    check_on_error(on_error)
    batch_size = check_batch_size(batch_size)
    workers = 0 if workers is None and one_chunk(items, batch_size, single) else workers
    prepare, infer = detector_stages(detector)
    canvas = detector_canvas(detector) if reduced else None
    parallel = workers != 0 and prefetch != 0 and detector.parallel_chunks
    threads = 0
    if parallel:
        workers = parallel_workers() if workers is None else workers
        prefetch = chunks_ahead(detector, workers, prefetch)
        threads = max(1, usable_cpus() // max(1, workers))

    def detect(good: List[ImageRecord], prepared: Any) -> None:
        for record, faces in zip(good, infer(prepared)):
            record.faces = faces if record.factor == 1 else scale_faces(faces, record.factor, record.shape)

    def load_chunk(numbered: Tuple[int, List[Any], int]) -> Tuple[List[ImageRecord], List[ImageRecord], Any]:
        start, chunk, _ = numbered
        records = [_load(item, None if single else start + offset, on_error, canvas)
                   for offset, item in enumerate(chunk)]
        for offset, record in enumerate(records):
            record.index = start + offset
        good = [r for r in records if r.error is None]
        prepared = prepare([r.image for r in good]) if good else None
        if parallel and good:
            with threads_per_run(threads):
                detect(good, prepared)
            return records, [], None
        return records, good, prepared

    budget = get_image_limits().max_pixels_in_flight
    size = None if canvas is None else (canvas.width, canvas.height)
    keep_ratio = True if canvas is None else canvas.keep_ratio
    chunks = budget_chunks(items, batch_size, lambda item: declared_pixels(item, size, keep_ratio), budget)
    for records, good, prepared in prefetch_map(load_chunk, chunks, workers, prefetch,
                                                weigh=lambda numbered: numbered[2], budget=budget):
        if good:
            detect(good, prepared)
        yield from records


def chunks_ahead(detector: Detector, workers: Optional[int] = None, prefetch: int = DEFAULT_PREFETCH) -> int:
    """The chunks :func:`iter_detections` prepares ahead of the one it hands out: ``prefetch``, or, for a detector
    whose ``parallel_chunks`` is True, ``max(prefetch, workers + 1)`` (``workers`` None: one thread per core, see
    :func:`~deepbatch.pipeline.parallel_workers`); 0 when everything runs inline (``workers=0`` or ``prefetch=0``)."""
    if workers == 0 or prefetch == 0:
        return 0
    if not detector.parallel_chunks:
        return prefetch
    return max(prefetch, (parallel_workers() if workers is None else workers) + 1)


def chunks_held(detector: Detector, workers: Optional[int] = None, prefetch: int = DEFAULT_PREFETCH) -> int:
    """The most chunks whose decoded images :func:`iter_records` holds at once, whatever the length of its input:
    :func:`chunks_ahead` plus the chunk handed out and the one whose faces are being cut; one chunk when everything
    runs inline. The input is never read further ahead than these chunks."""
    ahead = chunks_ahead(detector, workers, prefetch)
    return ahead + 2 if ahead else 1


def _decoded_pixels(record: ImageRecord) -> int:
    """The pixels a record's decoded image holds (0 without one)."""
    image = record.image
    return 0 if image is None else int(image.shape[0] * image.shape[1])


def scale_faces(faces: Faces, factor: float, shape: Optional[Tuple[int, ...]]) -> Faces:
    """``faces`` found in an image decoded at ``1 / factor`` of its size, in the original's pixels: coordinates times
    ``factor``, boxes clipped to the original ``(height, width)`` ``shape``."""
    boxes = faces.boxes * np.float32(factor)
    if shape is not None:
        clip_boxes(boxes, shape)
    landmarks = None if faces.landmarks is None else faces.landmarks * np.float32(factor)
    return Faces(boxes, faces.scores, landmarks)


def _load(item: Any, index: Optional[int], on_error: str, canvas: Optional[InputSpec] = None) -> ImageRecord:
    source = describe(item) if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__") else None
    try:
        if canvas is None:
            image = load_image(item, index)
            return ImageRecord(index or 0, source, image=image, shape=(image.shape[0], image.shape[1]))
        loaded = load_image_for_canvas(item, (canvas.width, canvas.height), index, canvas.keep_ratio)
        return ImageRecord(index or 0, source, image=loaded.image, factor=loaded.factor, shape=loaded.shape)
    except ImageError as exc:
        if on_error == "raise":
            raise
        return ImageRecord(index or 0, source, error=exc)
