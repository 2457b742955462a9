"""``extract_faces``: DeepFace's face extraction over one image or a batch of images."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..checks import refuse_anti_spoofing
from ..core.on_error import BatchResult, check_on_error, collect_batch
from ..core.stream import FaceRules, iter_detections, iter_records
from ..core.workers import DEFAULT_PREFETCH, BatchSize, resolve_batch_size
from ..detectors.base import DETECTORS, Detector, build_detector
from ..errors import DeepbatchError
from ..formatting import confidence, facial_area, present_face
from ..io.images import as_batch
from ..performance import Performance, settle
from ..records import ImageRecord
from ..structures import Faces

logger = logging.getLogger(__name__)

__all__ = ["ImageFaces", "extract_faces", "iter_detections", "iter_extract_faces", "resolve_detector"]


def resolve_detector(detector_backend: Union[str, Detector], performance: Optional[Performance] = None,
                     **options: Any) -> Detector:
    """A detector instance from a registered name (cached; built with the model options of ``performance``, such
    as its ``threads``) or an instance passed through."""
    if isinstance(detector_backend, Detector):
        return detector_backend
    if performance is not None:
        options = {**performance.model_options(DETECTORS.entry(detector_backend).factory), **options}
    return build_detector(detector_backend, **options)


def extract_faces(
    img_path: Any,
    detector_backend: Union[str, Detector] = "scrfd",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    grayscale: bool = False,
    color_face: str = "rgb",
    normalize_face: bool = True,
    anti_spoofing: bool = False,
    max_faces: Optional[int] = None,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    performance: Optional[Performance] = None,
) -> Union[List[Dict[str, Any]], BatchResult]:
    """Detect and crop faces, DeepFace-style, over one image or a batch.

    ``img_path``: a path, URL, base64 data URI, bytes, file object or BGR numpy array; or a list of those, or an
    (N, H, W, C) array. One image gives a list of face dicts; a batch gives a list with one list of face dicts per
    image, in input order (a :class:`BatchResult`, whose ``errors`` maps skipped images to their exceptions).

    Each dict has ``face`` (the crop: RGB float in [0, 1] by default), ``facial_area`` (``x, y, w, h``,
    person-relative ``left_eye``/``right_eye``, and ``nose``/``mouth_left``/``mouth_right`` when known) and
    ``confidence``. ``align=True`` warps each face onto the five-point ArcFace template, eyes levelled, as a square
    at the face's own resolution (112 to 448 pixels; the eyes alone place faces whose detector gives no other
    landmark): the very crop :func:`deepbatch.represent` embeds, so embedding a stored crop later with
    ``detector_backend="skip"`` gives the photo's embedding. ``align=False`` gives the box crop.
    ``expand_percentage`` grows the box (and the aligned square around the face); ``max_faces`` keeps the largest
    faces; ``grayscale=True`` is DeepFace's deprecated spelling of ``color_face="gray"``. The reported
    ``facial_area`` is clamped inside the image as DeepFace clamps it, and a landmark outside the image is None.
    ``enforce_detection=True`` raises :class:`FaceNotDetectedError` naming the image's index when an image has no
    face; with ``False`` such an image gives the whole image with confidence 0, as DeepFace does.
    ``detector_backend`` is a registered name (see ``list_detectors()``) or a :class:`Detector`.

    ``on_error`` decides what an unusable image (a subclass of :class:`ImageError`) or, with ``enforce_detection``,
    an image without a face does to a batch: ``"raise"`` raises the error of the first such image in input order,
    naming its index and path, whatever ``batch_size`` is; ``"skip"`` logs it, leaves that image's entry empty,
    records the exception in ``errors`` under the image's index, and returns every other image's faces in order.
    A single image always raises.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size`` is
    its advanced spelling, not to be combined with it.

    Args:
        img_path: One image (a path, URL, base64 data URI, bytes, file object or BGR array), or a batch: a list of
            those or an (N, H, W, C) array.
        detector_backend: A registered detector name (``list_detectors()``) or a ``Detector``.
        enforce_detection: Raise ``FaceNotDetectedError`` for an image without a face; else give the whole image.
        align: Warp each face onto the five-point template; ``False`` gives the box crop.
        expand_percentage: Grow each box (and aligned square) by this percentage, 0 to 200.
        grayscale: DeepFace's deprecated spelling of ``color_face="gray"``.
        color_face: ``"rgb"``, ``"bgr"`` or ``"gray"``.
        normalize_face: Crops as float in [0, 1]; ``False`` gives uint8.
        anti_spoofing: Refused (``ArgumentError``): deepbatch has no anti-spoofing model.
        max_faces: Keep the largest ``max_faces`` faces of each image.
        batch_size: Images per model call, or ``"auto"`` (chosen for the detector's device).
        on_error: ``"raise"`` or ``"skip"`` an unusable or faceless image of a batch.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Returns:
        For one image, a list of face dicts (``face``, ``facial_area``, ``confidence``); for a batch, a
        ``BatchResult`` with one such list per image, in input order.

    Raises:
        ImageError: An image cannot be used (its index and path are named).
        FaceNotDetectedError: With ``enforce_detection``, an image has no face.
        ArgumentError: An argument is out of range or not offered.
        UnknownModelError: ``detector_backend`` is not registered.
    """
    refuse_anti_spoofing(anti_spoofing)
    if grayscale:
        logger.warning("grayscale is deprecated (as in DeepFace); use color_face='gray'")
        color_face = "gray"
    rules = FaceRules.of(enforce_detection, max_faces, expand_percentage, align)
    check_on_error(on_error)
    settings = settle(performance, batch_size)
    items, single = as_batch(img_path)
    if not items:  # nothing to detect: no model is loaded, but a misspelt name still fails
        if isinstance(detector_backend, str):
            DETECTORS.canonical(detector_backend)
        return BatchResult()
    detector = resolve_detector(detector_backend, settings)
    records = iter_records(items, detector, resolve_batch_size(settings.batch_size, detector), rules, crops=True,
                           on_error=on_error, single=single, workers=settings.workers, prefetch=settings.prefetch)
    return collect_batch(((r.index, r.error, record_dicts(r, color_face, normalize_face)) for r in records), single,
                         len(items))


def record_dicts(record: ImageRecord, color_face: str, normalize_face: bool) -> List[Dict[str, Any]]:
    """DeepFace-style dicts for the faces of a record cut by :func:`~deepbatch.core.stream.iter_records`
    (``crops=True``): ``face`` (the crop as ``color_face`` asks), ``facial_area`` and ``confidence``; none for a
    record with an ``error``."""
    if record.error is not None or record.faces is None or record.crops is None:
        return []
    return [
        {
            "face": present_face(pixels, color_face, normalize_face),
            "facial_area": facial_area(face.box, face.landmarks, record.shape),
            "confidence": confidence(face.score),
        }
        for face, pixels in zip(record.faces, record.crops)
    ]


def face_dicts(
    image: np.ndarray, faces: Faces, align: bool, expand_percentage: float, color_face: str, normalize_face: bool,
    max_faces: Optional[int],
) -> List[Dict[str, Any]]:
    """DeepFace-style dicts for the faces of one decoded image (the whole image with confidence 0 when there are
    none), by the same rules and crops as :func:`extract_faces`. Deprecated: use :func:`extract_faces` (with
    ``detector_backend`` a :class:`~deepbatch.detectors.base.Detector`), or :class:`~deepbatch.stream.FaceRules`
    and :func:`record_dicts`."""
    warnings.warn("face_dicts() is deprecated; use extract_faces(), or FaceRules and record_dicts()",
                  DeprecationWarning, stacklevel=2)
    rules = FaceRules("whole_image", max_faces, expand_percentage, align)
    chosen = rules.select(faces, image.shape)
    record = ImageRecord(0, None, shape=image.shape, faces=chosen, crops=rules.cut(image, chosen).crops)
    return record_dicts(record, color_face, normalize_face)


class ImageFaces(List[Dict[str, Any]]):
    """The face dicts of one image, as in :func:`extract_faces`, plus where they came from: the image's
    ``image_index`` in the stream, its ``source`` (path or description, or None), its ``shape`` ``(height, width,
    ...)``, the typed ``faces`` behind the dicts (:class:`Faces`, float precision) and the ``error`` that stopped it
    (``None`` when it was processed; with ``on_error="skip"`` an unusable image gives an empty list with ``error``
    set). :meth:`row` is the image's output row (:mod:`deepbatch.rows`), as the command line and Ray write it."""

    def __init__(self, dicts: Iterable[Dict[str, Any]] = (), image_index: int = 0, source: Optional[str] = None,
                 error: Optional[DeepbatchError] = None, shape: Optional[Tuple[int, ...]] = None,
                 faces: Optional[Faces] = None):
        super().__init__(dicts)
        self.image_index = image_index
        self.source = source
        self.error = error
        self.shape = shape
        self.faces = faces

    @classmethod
    def of(cls, record: ImageRecord, color_face: str = "rgb", normalize_face: bool = True) -> ImageFaces:
        """The presentation of one record of :func:`~deepbatch.core.stream.iter_records` (``crops=True``)."""
        return cls(record_dicts(record, color_face, normalize_face), record.index, record.source, record.error,
                   record.shape, record.faces)

    def row(self) -> Dict[str, Any]:
        from ..rows import image_row

        return image_row(self.source, self.shape, self.faces, self.error)


def iter_extract_faces(
    paths_or_frames: Iterable[Any],
    detector_backend: Union[str, Detector] = "scrfd",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    color_face: str = "rgb",
    normalize_face: bool = True,
    max_faces: Optional[int] = None,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    workers: Optional[int] = None,
    prefetch: int = DEFAULT_PREFETCH,
    performance: Optional[Performance] = None,
) -> Iterator[ImageFaces]:
    """Stream :func:`extract_faces` over any number of images: yields one :class:`ImageFaces` per input, in order.

    ``paths_or_frames`` is any iterable of the inputs :func:`extract_faces` accepts (a list of paths, a generator
    of video frames, an (N, H, W, C) array); a single path or image is a stream of one. It is read lazily, chunk by
    chunk, and memory holds at most ``prefetch + 2`` chunks of images whatever its length (``max(prefetch, workers
    + 1) + 2`` for a model run on the CPU threads; :func:`deepbatch.core.stream.chunks_held` gives the number).
    ``workers`` threads decode and letterbox the next chunks, and cut the faces of the previous one, while the model
    runs (see :mod:`deepbatch.core.workers`; ``workers=0`` does everything in the calling thread). The other arguments
    are those of :func:`extract_faces`. ``on_error="raise"`` raises the first unusable or (with ``enforce_detection``)
    faceless image's error when the stream reaches it; ``"skip"`` logs it and yields an empty :class:`ImageFaces`
    with its ``error``.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size``,
    ``workers`` and ``prefetch`` are its advanced spellings, not to be combined with it.

    Args:
        paths_or_frames: Any iterable of images (paths, URLs, arrays, a generator of video frames), read lazily.
        detector_backend: A registered detector name or a ``Detector``.
        enforce_detection: As in ``extract_faces``.
        align: As in ``extract_faces``.
        expand_percentage: As in ``extract_faces``.
        color_face: As in ``extract_faces``.
        normalize_face: As in ``extract_faces``.
        max_faces: As in ``extract_faces``.
        batch_size: Images per model call, or ``"auto"``.
        on_error: ``"raise"`` at the first unusable or faceless image, or ``"skip"`` it (yielded with its ``error``).
        workers: Threads that prepare chunks beside the model (``0``: all in the calling thread; None: automatic).
        prefetch: Chunks prepared ahead of the model.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Yields:
        One ``ImageFaces`` per input, in order: the list of face dicts, with ``image_index``, ``source`` and ``error``.

    Raises:
        ImageError: With ``on_error="raise"``, when the stream reaches an unusable image.
        FaceNotDetectedError: With ``enforce_detection`` and ``on_error="raise"``, an image has no face.
    """
    settings = settle(performance, batch_size, workers, prefetch)
    rules = FaceRules.of(enforce_detection, max_faces, expand_percentage, align)
    detector = resolve_detector(detector_backend, settings)
    records = iter_records(as_stream(paths_or_frames), detector, resolve_batch_size(settings.batch_size, detector),
                           rules, crops=True, on_error=on_error, workers=settings.workers, prefetch=settings.prefetch)
    try:
        for record in records:
            if record.error is not None:
                logger.warning("skipped: %s", record.error)
            yield ImageFaces.of(record, color_face, normalize_face)
    finally:
        records.close()


def as_stream(paths_or_frames: Any) -> Iterable[Any]:
    """A streaming API's input as an iterable of inputs: a single path or image is a stream of one."""
    if isinstance(paths_or_frames, (str, bytes, os.PathLike)) or (
        isinstance(paths_or_frames, np.ndarray) and paths_or_frames.ndim != 4
    ):
        return [paths_or_frames]
    return paths_or_frames  # type: ignore[no-any-return]
