"""``extract_faces``: DeepFace's face extraction over one image or a batch of images."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Generator, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from .detectors.base import DEFAULT_BATCH_SIZE, DETECTORS, Detector, build_detector
from .errors import ArgumentError, DeepbatchError, FaceNotDetectedError, ImageError
from .formatting import BatchResult, collect_batch, confidence, facial_area, present_face
from .io.images import as_batch, describe, load_image, load_image_for_canvas
from .ops.align import expand_boxes, face_crops
from .ops.letterbox import InputSpec
from .pipeline import (
    DEFAULT_PREFETCH,
    BatchSize,
    detector_canvas,
    detector_stages,
    numbered_chunks,
    prefetch_map,
    resolve_batch_size,
)
from .records import ImageRecord
from .structures import Faces

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


def resolve_detector(detector_backend: Union[str, Detector], **options: Any) -> Detector:
    """A detector instance from a registered name (cached) or an instance passed through."""
    if isinstance(detector_backend, Detector):
        return detector_backend
    return build_detector(detector_backend, **options)


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ArgumentError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def check_face_options(on_error: str, expand_percentage: float, max_faces: Optional[int]) -> None:
    """Validate the arguments shared by the face-extracting and face-embedding APIs."""
    check_on_error(on_error)
    if expand_percentage < 0:
        raise ArgumentError(f"expand_percentage must be >= 0, got {expand_percentage}")
    if max_faces is not None and max_faces < 1:
        raise ArgumentError(f"max_faces must be a positive integer or None, got {max_faces}")


def iter_detections(
    items: Iterable[Any], detector: Detector, batch_size: int = DEFAULT_BATCH_SIZE, on_error: str = "raise",
    single: bool = False, *, workers: Optional[int] = None, prefetch: int = DEFAULT_PREFETCH, reduced: bool = False,
) -> Generator[ImageRecord, None, None]:
    """Load and detect ``items`` chunk by chunk, yielding one :class:`~deepbatch.records.ImageRecord` per item in order.

    ``reduced=True`` (for callers that need no full-resolution pixels) lets large JPEG files decode at a reduced
    scale that still covers the detector's canvas (:func:`deepbatch.io.images.decode_for_canvas`); faces are
    reported in original pixels all the same, and ``image`` is the reduced one (see ``factor``).

    With ``on_error="raise"`` the first unusable image raises its :class:`ImageError`; with ``"skip"`` it is yielded
    with ``error`` set and the rest go on. While the model runs one chunk, ``workers`` threads read, decode and
    letterbox up to ``prefetch`` next chunks (:mod:`deepbatch.pipeline`; ``workers=0`` does it all in this thread).
    ``items`` may be any iterable, a generator included: it is read lazily, and memory holds at most
    ``prefetch + 1`` chunks of images at a time whatever its length.
    """
    check_on_error(on_error)
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size}")
    prepare, infer = detector_stages(detector, batch_size)
    canvas = detector_canvas(detector) if reduced else None

    def load_chunk(numbered: Tuple[int, List[Any]]) -> Tuple[List[ImageRecord], List[ImageRecord], Any]:
        start, chunk = numbered
        records = [_load(item, None if single else start + offset, on_error, canvas)
                   for offset, item in enumerate(chunk)]
        for offset, record in enumerate(records):
            record.index = start + offset
        good = [r for r in records if r.error is None]
        return records, good, prepare([r.image for r in good]) if good else None

    for records, good, prepared in prefetch_map(load_chunk, numbered_chunks(items, batch_size), workers, prefetch):
        if good:
            for record, faces in zip(good, infer(prepared)):
                record.faces = faces if record.factor == 1 else scale_faces(faces, record.factor, record.shape)
        yield from records


def scale_faces(faces: Faces, factor: float, shape: Optional[Tuple[int, ...]]) -> Faces:
    """``faces`` found in an image decoded at ``1 / factor`` of its size, in the original's pixels: coordinates times
    ``factor``, boxes clipped to the original ``(height, width)`` ``shape``."""
    boxes = faces.boxes * np.float32(factor)
    if shape is not None:
        np.clip(boxes[:, 0::2], 0, shape[1], out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, shape[0], out=boxes[:, 1::2])
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
        logger.warning("unusable image: %s", exc)
        return ImageRecord(index or 0, source, error=exc)


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
    """
    if anti_spoofing:
        raise ArgumentError("anti_spoofing is not supported by deepbatch")
    if grayscale:
        logger.warning("grayscale is deprecated (as in DeepFace); use color_face='gray'")
        color_face = "gray"
    check_on_error(on_error)  # a single image always raises, so the stream below may not see the caller's choice
    items, single = as_batch(img_path)
    results = BatchResult()
    if not items:  # nothing to detect: no model is loaded, but a misspelt name still fails
        if isinstance(detector_backend, str):
            DETECTORS.canonical(detector_backend)
        return results
    stream = iter_extract_faces(items, detector_backend, enforce_detection, align, expand_percentage, color_face,
                                normalize_face, max_faces, batch_size=batch_size,
                                on_error="raise" if single else on_error)
    return collect_batch(((faces.image_index, faces.error, list(faces)) for faces in stream), single, len(items))


NO_FACE_RULES = ("error", "whole_image", "empty")


def no_face_rule(enforce_detection: bool) -> str:
    """DeepFace's ``enforce_detection`` as a rule: ``True`` makes a faceless image an error, ``False`` reports the
    whole image as one face with confidence 0."""
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


def face_dicts(
    image: np.ndarray, faces: Faces, align: bool, expand_percentage: float, color_face: str, normalize_face: bool,
    max_faces: Optional[int],
) -> List[Dict[str, Any]]:
    """DeepFace-style dicts for the faces of one image (the whole image with confidence 0 when there are none)."""
    selected = select_faces(faces, image.shape, "whole_image", max_faces, expand_percentage)
    return present_faces(image, selected, align, expand_percentage, color_face, normalize_face)


def present_faces(image: np.ndarray, faces: Faces, align: bool, expand_percentage: float, color_face: str,
                  normalize_face: bool) -> List[Dict[str, Any]]:
    """DeepFace-style dicts for faces already chosen by :func:`select_faces`: crop, ``facial_area``, confidence."""
    cut = face_crops(image, faces.boxes, faces.landmarks, expand_percentage, use_landmarks=align)
    return [
        {
            "face": present_face(pixels, color_face, normalize_face),
            "facial_area": facial_area(face.box, face.landmarks, image.shape),
            "confidence": confidence(face.score),
        }
        for face, pixels in zip(faces, cut.crops)
    ]


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

    def row(self) -> Dict[str, Any]:
        from .rows import image_row

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
) -> Iterator[ImageFaces]:
    """Stream :func:`extract_faces` over any number of images: yields one :class:`ImageFaces` per input, in order.

    ``paths_or_frames`` is any iterable of the inputs :func:`extract_faces` accepts (a list of paths, a generator
    of video frames, an (N, H, W, C) array); a single path or image is a stream of one. It is read lazily, chunk by
    chunk, and memory holds at most ``prefetch + 2`` chunks of images whatever its length. ``workers`` threads
    decode and letterbox the next chunks, and cut the faces of the previous one, while the model runs (see
    :mod:`deepbatch.pipeline`; ``workers=0`` does everything in the calling thread). The other arguments are those
    of :func:`extract_faces`. ``on_error="raise"`` raises the first unusable or (with ``enforce_detection``)
    faceless image's error when the stream reaches it; ``"skip"`` logs it and yields an empty :class:`ImageFaces`
    with its ``error``.
    """
    check_face_options(on_error, expand_percentage, max_faces)
    if isinstance(paths_or_frames, (str, bytes, os.PathLike)) or (
        isinstance(paths_or_frames, np.ndarray) and paths_or_frames.ndim != 4
    ):
        paths_or_frames = [paths_or_frames]
    detector = resolve_detector(detector_backend)
    size = resolve_batch_size(batch_size, detector)
    records = iter_detections(paths_or_frames, detector, size, "skip", workers=workers, prefetch=prefetch)

    def crop(record: ImageRecord) -> ImageFaces:
        if record.error is not None or record.image is None or record.faces is None:
            return ImageFaces((), record.index, record.source, record.error)
        shape = record.image.shape
        try:
            faces = select_faces(record.faces, shape, no_face_rule(enforce_detection), max_faces,
                                 expand_percentage, record.index, record.source)
        except FaceNotDetectedError as exc:
            return ImageFaces((), record.index, record.source, exc, shape)
        dicts = present_faces(record.image, faces, align, expand_percentage, color_face, normalize_face)
        return ImageFaces(dicts, record.index, record.source, shape=shape, faces=faces)

    # Crops are cut on the prefetch threads too, while this thread runs the model on the next chunk.
    results = prefetch_map(crop, records, workers, prefetch=size if prefetch else 0)
    try:
        for result in results:
            if result.error is not None and on_error == "raise":
                raise result.error
            yield result
    finally:
        results.close()
        records.close()
