"""``represent``: DeepFace's face embeddings over one image or a batch, batched end to end.

Images are loaded and detected chunk by chunk (:func:`deepbatch.detection.iter_detections`); every face of every
image in the chunk is cut as ``extract_faces`` cuts it (:func:`deepbatch.ops.align.face_crops`) and resized into
the model's square and the chunk's faces go through the
recognition model together, ``recognizer.batch_size`` faces per model call.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from .detection import (
    check_face_options,
    check_on_error,
    iter_detections,
    no_face_rule,
    resolve_detector,
    select_faces,
)
from .detectors.base import DEFAULT_BATCH_SIZE, DETECTORS, Detector
from .errors import ArgumentError, FaceNotDetectedError
from .formatting import BatchResult, collect_batch, confidence, facial_area, present_face
from .io.images import as_batch
from .ops.align import FaceCrops, face_crops, resize_into
from .ops.letterbox import InputSpec
from .pipeline import BatchSize, resolve_batch_size
from .recognition.base import RECOGNIZERS, Recognizer, resolve_recognizer
from .recognition.normalization import l2_normalize as unit_rows
from .recognition.normalization import minmax_normalize as scale_to_range
from .records import ImageRecord


def iter_embeddings(
    items: Iterable[Any],
    detector: Detector,
    recognizer: Recognizer,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: str = "raise",
    single: bool = False,
    enforce_detection: Union[bool, str] = True,
    align: bool = True,
    expand_percentage: float = 0,
    max_faces: Optional[int] = None,
    spec: Optional[InputSpec] = None,
    keep_crops: bool = False,
) -> Iterator[ImageRecord]:
    """Detect, align and embed ``items`` chunk by chunk, yielding one
    :class:`~deepbatch.records.ImageRecord` per item in order.

    ``batch_size`` images are detected together and all their faces embedded together. ``on_error`` and
    ``enforce_detection`` behave as in :func:`deepbatch.extract_faces` (``enforce_detection`` may also be one of
    :data:`~deepbatch.detection.NO_FACE_RULES`; ``single`` marks one image given alone: its
    errors name no index and always raise); ``align=False`` embeds box crops; ``spec`` overrides the recognizer's
    normalisation; ``keep_crops`` keeps each face's crop in the result.
    """
    check_face_options(on_error, expand_percentage, max_faces)
    # Errors come back per image and are raised in input order by _embed_chunk, whatever the batch size.
    detections = iter_detections(items, detector, batch_size, "skip", single=single)
    while True:
        chunk = list(islice(detections, batch_size))
        if not chunk:
            return
        yield from _embed_chunk(chunk, recognizer, on_error, single, enforce_detection, align, expand_percentage,
                                max_faces, spec, keep_crops)


def _embed_chunk(
    chunk: List[ImageRecord], recognizer: Recognizer, on_error: str, single: bool,
    enforce_detection: Union[bool, str],
    align: bool, expand_percentage: float, max_faces: Optional[int], spec: Optional[InputSpec], keep_crops: bool,
) -> List[ImageRecord]:
    """The chunk's records, each completed in place: faces chosen by the face rules, cut, embedded together; the
    decoded image is dropped once its faces are cut."""
    rule = enforce_detection if isinstance(enforce_detection, str) else no_face_rule(enforce_detection)
    pixels = []
    for record in chunk:
        if record.error is not None and (single or on_error == "raise"):
            raise record.error
        image, record.image = record.image, None
        if record.error is not None or image is None or record.faces is None:
            record.faces = None
            continue
        try:
            faces = select_faces(record.faces, image.shape, rule, max_faces, expand_percentage,
                                 None if single else record.index, record.source)
        except FaceNotDetectedError as exc:
            record.error, record.faces = exc, None
            if single or on_error == "raise":
                raise
            continue
        cut = face_crops(image, faces.boxes, faces.landmarks, expand_percentage, use_landmarks=align)
        record.faces = faces
        record.points = cut.points
        record.crops = cut.crops if keep_crops else None
        if len(faces):
            pixels.append(model_input(cut, recognizer.input_size))
        else:  # no face under the "empty" rule
            record.embeddings = np.zeros((0, int(recognizer.embedding_size)), np.float32)
    if pixels:
        embeddings = recognizer.embed(np.concatenate(pixels), spec=spec)
        start = 0
        for record in chunk:
            if record.faces is not None and record.error is None and len(record.faces):
                record.embeddings = embeddings[start : start + len(record.faces)]
                start += len(record.faces)
    return chunk


def model_input(cut: FaceCrops, size: int) -> np.ndarray:
    """``(N, size, size, 3)`` uint8: each crop resized into the model's square, exactly as
    :func:`deepbatch.ops.align.align_faces` does, so a stored crop embedded with ``"skip"`` gives the same input."""
    pixels = np.empty((len(cut), size, size, 3), np.uint8)
    for i, face in enumerate(cut.crops):
        resize_into(pixels[i], face)
    return pixels


def embedding_dicts(result: ImageRecord, return_numpy: bool = False, l2_normalize: bool = False,
                    minmax_range: Optional[Tuple[float, float]] = None) -> List[Dict[str, Any]]:
    """DeepFace-style dicts for one image's faces: ``embedding``, ``facial_area``, ``face_confidence``, and
    ``alignment`` (``"five_point"``, ``"partial_points"`` or ``"box_crop"``); ``face`` (RGB float in [0, 1]) when
    the crops were kept. ``minmax_range`` then ``l2_normalize`` rescale the embeddings as DeepFace does."""
    if result.faces is None or result.embeddings is None:
        return []
    embeddings = result.embeddings
    if minmax_range is not None:
        embeddings = scale_to_range(embeddings, *minmax_range)
    if l2_normalize:
        embeddings = unit_rows(embeddings)
    out = []
    for k, (face, embedding, method) in enumerate(zip(result.faces, embeddings, result.alignments)):
        entry: Dict[str, Any] = {
            "embedding": embedding.copy() if return_numpy else embedding.tolist(),
            "facial_area": facial_area(face.box, face.landmarks, result.shape),
            "face_confidence": confidence(face.score),
            "alignment": method,
        }
        if result.crops is not None:
            entry["face"] = present_face(result.crops[k], "rgb", True)
        out.append(entry)
    return out


def represent(
    img_path: Any,
    model_name: Union[str, Recognizer] = "arcface_mbf",
    enforce_detection: bool = True,
    detector_backend: Union[str, Detector] = "scrfd",
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    max_faces: Optional[int] = None,
    l2_normalize: bool = False,
    minmax_normalize: bool = False,
    return_face: bool = False,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    return_numpy: bool = False,
) -> Union[List[Dict[str, Any]], BatchResult]:
    """Face embeddings, DeepFace-style, over one image or a batch.

    ``img_path`` is anything :func:`deepbatch.extract_faces` takes. One image gives a list with one dict per face;
    a list or an (N, H, W, C) array gives a :class:`BatchResult` with one such list per image, in input order
    (``errors`` maps skipped images to their exceptions when ``on_error="skip"``). ``on_error`` and
    ``enforce_detection`` behave as in :func:`deepbatch.extract_faces`: ``"raise"`` raises the first unusable or
    faceless image's error in input order; ``"skip"`` records it and goes on; a single image always raises.

    Each dict has ``embedding`` (a list of floats, or a float32 numpy array with ``return_numpy``),
    ``facial_area`` (as ``extract_faces``), ``face_confidence`` (the detector's score, 0 for
    ``detector_backend="skip"`` or an undetected image), ``alignment`` and, with ``return_face``, ``face``: the
    crop that was embedded, as ``extract_faces`` returns it (RGB float in [0, 1]). ``alignment`` is
    ``"five_point"`` when the face was warped onto the ArcFace template from its five landmarks,
    ``"partial_points"`` when only some were known (the eyes of the ``opencv`` detector), ``"box_crop"`` when its
    box crop was used instead (no landmarks, ``align=False``, or ``detector_backend="skip"``, which embeds the
    whole image). The model reads the crop ``extract_faces`` returns, resized into its square: so
    ``represent(face, detector_backend="skip")`` on a stored BGR crop (``extract_faces(..., color_face="bgr")``, or
    the RGB crop flipped with ``[:, :, ::-1]``) gives the embedding of the photo it came from.

    ``model_name`` is a registered recognizer (see ``list_recognizers()``, case-insensitive) or a
    :class:`Recognizer`; ``normalization`` is one of DeepFace's (see :mod:`deepbatch.recognition.normalization`;
    ``"base"`` is the model's own pre-processing). ``minmax_normalize`` clips each value to the model's range
    and scales it to [0, 1]; ``l2_normalize`` then scales each embedding to unit length. ``expand_percentage``
    grows the box and the aligned square. ``max_faces`` keeps the largest faces. ``batch_size`` images are
    detected per model call, and all their faces embedded together (``"auto"``: chosen for the detector's
    device, see :func:`deepbatch.pipeline.resolve_batch_size`).
    """
    if anti_spoofing:
        raise ArgumentError("anti_spoofing is not supported by deepbatch")
    check_on_error(on_error)
    items, single = as_batch(img_path)
    if not items:  # nothing to embed: no model is loaded, but misspelt names still fail
        if isinstance(model_name, str):
            RECOGNIZERS.canonical(model_name)
        if isinstance(detector_backend, str):
            DETECTORS.canonical(detector_backend)
        return BatchResult()
    recognizer = resolve_recognizer(model_name)
    spec = recognizer.spec_for(normalization)
    minmax_range = _embedding_range(recognizer) if minmax_normalize else None
    detector = resolve_detector(detector_backend)
    records = iter_embeddings(items, detector, recognizer, resolve_batch_size(batch_size, detector), on_error,
                              single, enforce_detection, align, expand_percentage, max_faces, spec,
                              keep_crops=return_face)
    return collect_batch(((record.index, record.error, [] if record.error is not None else
                           embedding_dicts(record, return_numpy, l2_normalize, minmax_range)) for record in records),
                         single, len(items))


def _embedding_range(recognizer: Recognizer) -> Tuple[float, float]:
    if recognizer.embedding_range is None:
        name = recognizer.display_name or recognizer.name
        raise ArgumentError(f"minmax_normalize needs the value range of {name}'s embeddings, which is not known; "
                            "use l2_normalize, or normalise the embeddings yourself")
    return recognizer.embedding_range
