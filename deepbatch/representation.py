"""``represent``: DeepFace's face embeddings over one image or a batch, batched end to end.

Images are loaded and detected chunk by chunk (:func:`deepbatch.detection.iter_detections`); every face of every
image in the chunk is aligned (:func:`deepbatch.ops.align.align_faces`) and the chunk's faces go through the
recognition model together, ``recognizer.batch_size`` faces per model call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np

from .detection import ImageDetections, check_face_options, check_on_error, iter_detections, resolve_detector
from .detectors.base import DEFAULT_BATCH_SIZE, Detector
from .errors import ArgumentError, DeepbatchError, FaceNotDetectedError
from .formatting import BatchResult, confidence, facial_area
from .io.images import as_batch
from .ops.align import align_faces, alignment_methods, expand_boxes
from .ops.letterbox import InputSpec
from .recognition.base import Recognizer, resolve_recognizer
from .recognition.distance import l2_normalize as unit_rows
from .structures import Faces

logger = logging.getLogger(__name__)


@dataclass
class ImageEmbeddings:
    """One input after detection, alignment and embedding, or the ``error`` that stopped it.

    ``faces`` holds the faces embedded (the whole image with score 0 when none was found and detection is not
    enforced), with ``boxes`` after ``expand_percentage``; ``embeddings`` is ``(N, D)`` float32 in face order;
    ``points`` ``(N,)`` int is how many landmarks placed each face on the template (5, 2 to 4, or 0 for a box crop;
    see :class:`deepbatch.ops.align.AlignedFaces`).
    """

    index: int
    source: Optional[str]
    faces: Optional[Faces] = None
    embeddings: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    error: Optional[DeepbatchError] = None

    @property
    def alignments(self) -> List[str]:
        """Per face ``"five_point"``, ``"partial_points"`` or ``"box_crop"``."""
        return [] if self.points is None else alignment_methods(self.points)


def iter_embeddings(
    items: Iterable[Any],
    detector: Detector,
    recognizer: Recognizer,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: str = "raise",
    single: bool = False,
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: float = 0,
    max_faces: Optional[int] = None,
    spec: Optional[InputSpec] = None,
) -> Iterator[ImageEmbeddings]:
    """Detect, align and embed ``items`` chunk by chunk, yielding one :class:`ImageEmbeddings` per item in order.

    ``batch_size`` images are detected together and all their faces embedded together. ``on_error`` and
    ``enforce_detection`` behave as in :func:`deepbatch.extract_faces` (``single`` marks one image given alone: its
    errors name no index and always raise); ``align=False`` embeds box crops; ``spec`` overrides the recognizer's
    normalisation.
    """
    check_face_options(on_error, expand_percentage, max_faces)
    # Errors come back per image and are raised in input order by _embed_chunk, whatever the batch size.
    detections = iter_detections(items, detector, batch_size, "skip", single=single)
    while True:
        chunk = list(islice(detections, batch_size))
        if not chunk:
            return
        yield from _embed_chunk(chunk, recognizer, on_error, single, enforce_detection, align, expand_percentage,
                                max_faces, spec)


def _embed_chunk(
    chunk: List[ImageDetections], recognizer: Recognizer, on_error: str, single: bool, enforce_detection: bool,
    align: bool, expand_percentage: float, max_faces: Optional[int], spec: Optional[InputSpec],
) -> List[ImageEmbeddings]:
    results, pixels = [], []
    for record in chunk:
        result = ImageEmbeddings(record.index, record.source, error=record.error)
        if record.error is not None and (single or on_error == "raise"):
            raise record.error
        results.append(result)
        if record.error is not None or record.image is None or record.faces is None:
            continue
        faces = record.faces
        height, width = record.image.shape[:2]
        if len(faces) == 0:
            if enforce_detection:
                result.error = FaceNotDetectedError(None if single else record.index, record.source)
                if single or on_error == "raise":
                    raise result.error
                continue
            faces = Faces(np.array([[0, 0, width, height]], np.float32), np.zeros(1, np.float32))
        if max_faces is not None and max_faces < len(faces):
            faces = faces.largest(max_faces)
        boxes = expand_boxes(faces.boxes, expand_percentage, height, width) if expand_percentage else faces.boxes
        aligned = align_faces(record.image, boxes, faces.landmarks, recognizer.input_size, use_landmarks=align)
        result.faces = Faces(boxes, faces.scores, faces.landmarks)
        result.points = aligned.points
        pixels.append(aligned.pixels)
    if pixels:
        embeddings = recognizer.embed(np.concatenate(pixels), spec=spec)
        start = 0
        for result in results:
            if result.faces is not None:
                result.embeddings = embeddings[start : start + len(result.faces)]
                start += len(result.faces)
    return results


def embedding_dicts(result: ImageEmbeddings, return_numpy: bool = False, l2_normalize: bool = False) -> List[Dict]:
    """DeepFace-style dicts for one image's faces: ``embedding``, ``facial_area``, ``face_confidence``, and
    ``alignment`` (``"five_point"``, ``"partial_points"`` or ``"box_crop"``)."""
    if result.faces is None or result.embeddings is None:
        return []
    embeddings = unit_rows(result.embeddings).astype(np.float32) if l2_normalize else result.embeddings
    out = []
    for face, embedding, method in zip(result.faces, embeddings, result.alignments):
        out.append({
            "embedding": embedding.copy() if return_numpy else embedding.tolist(),
            "facial_area": facial_area(face.box, face.landmarks),
            "face_confidence": confidence(face.score),
            "alignment": method,
        })
    return out


def represent(
    img_path: Any,
    model_name: Union[str, Recognizer] = "MobileFaceNet",
    detector_backend: Union[str, Detector] = "scrfd",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    max_faces: Optional[int] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: str = "raise",
    return_numpy: bool = False,
    l2_normalize: bool = False,
) -> Union[List[Dict[str, Any]], BatchResult]:
    """Face embeddings, DeepFace-style, over one image or a batch.

    ``img_path`` is anything :func:`deepbatch.extract_faces` takes. One image gives a list with one dict per face;
    a list or an (N, H, W, C) array gives a :class:`BatchResult` with one such list per image, in input order
    (``errors`` maps skipped images to their exceptions when ``on_error="skip"``). ``on_error`` and
    ``enforce_detection`` behave as in :func:`deepbatch.extract_faces`: ``"raise"`` raises the first unusable or
    faceless image's error in input order; ``"skip"`` records it and goes on; a single image always raises.

    Each dict has ``embedding`` (a list of floats, or a float32 numpy array with ``return_numpy``; unit length with
    ``l2_normalize``), ``facial_area`` (integer ``x, y, w, h`` and person-relative eyes, as ``extract_faces``),
    ``face_confidence`` (the detector's score, 0 for ``detector_backend="skip"`` or an undetected image) and
    ``alignment``: ``"five_point"`` when the face was warped onto the ArcFace 112x112 template from its five
    landmarks, ``"partial_points"`` when only some were known (the eyes of the ``opencv`` detector), ``"box_crop"``
    when its box crop was resized instead (no landmarks, ``align=False``, or ``detector_backend="skip"``, which
    embeds the whole image).

    ``model_name`` is a registered recognizer (see ``list_recognizers()``, case-insensitive) or a
    :class:`Recognizer`; ``normalization`` accepts ``"base"`` (the model's own pre-processing) and ``"ArcFace"``
    (DeepFace's ``(x - 127.5) / 128``). ``expand_percentage`` grows the reported box and the box crop (the
    five-point warp is fixed by the template). ``max_faces`` keeps the largest faces. ``batch_size`` images are
    detected per model call, and all their faces embedded together.
    """
    if anti_spoofing:
        raise ArgumentError("anti_spoofing is not supported by deepbatch")
    check_on_error(on_error)
    items, single = as_batch(img_path)
    recognizer = resolve_recognizer(model_name)
    spec = recognizer.spec_for(normalization)
    detector = resolve_detector(detector_backend)
    results = BatchResult()
    for record in iter_embeddings(items, detector, recognizer, batch_size, on_error, single, enforce_detection,
                                  align, expand_percentage, max_faces, spec):
        if record.error is not None:
            results.errors[record.index] = record.error
            results.append([])
            continue
        results.append(embedding_dicts(record, return_numpy, l2_normalize))
    if results.errors and on_error == "skip":
        logger.warning("%d of %d images were skipped: %s", len(results.errors), len(items),
                       "; ".join(str(e) for e in results.errors.values()))
    return results[0] if single else results
