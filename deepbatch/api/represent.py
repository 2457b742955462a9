"""``represent``: DeepFace's face embeddings over one image or a batch, batched end to end.

:func:`deepbatch.core.stream.iter_records` loads and detects the images chunk by chunk, cuts every face as
``extract_faces`` cuts it and embeds the faces of a chunk together (``recognizer.batch_size`` faces per model
call); this module turns its records into DeepFace-style dicts.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

from ..api.extract import resolve_detector
from ..checks import refuse_anti_spoofing
from ..core.on_error import BatchResult, check_on_error, collect_batch
from ..core.stream import FaceRules, iter_records
from ..core.workers import BatchSize, resolve_batch_size
from ..detectors.base import DETECTORS, Detector
from ..errors import ArgumentError
from ..formatting import confidence, facial_area, present_face
from ..io.images import as_batch
from ..performance import Performance, settle
from ..recognition.base import RECOGNIZERS, Recognizer, resolve_recognizer
from ..recognition.normalization import l2_normalize as unit_rows
from ..recognition.normalization import minmax_normalize as scale_to_range
from ..records import ImageRecord


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
    performance: Optional[Performance] = None,
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
    device, see :func:`deepbatch.core.workers.resolve_batch_size`).

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size`` is
    its advanced spelling, not to be combined with it.

    Args:
        img_path: One image or a batch, as ``extract_faces`` takes them.
        model_name: A registered recognizer name (``list_recognizers()``) or a ``Recognizer``.
        enforce_detection: Raise ``FaceNotDetectedError`` for an image without a face; else embed the whole image.
        detector_backend: A registered detector name or a ``Detector``; ``"skip"`` embeds the whole image.
        align: Warp each face onto the five-point template; ``False`` embeds the box crop.
        expand_percentage: Grow each box (and aligned square) by this percentage, 0 to 200.
        normalization: DeepFace's input normalisation; ``"base"`` is the model's own.
        anti_spoofing: Refused (``ArgumentError``): deepbatch has no anti-spoofing model.
        max_faces: Keep the largest ``max_faces`` faces of each image.
        l2_normalize: Scale each embedding to unit length.
        minmax_normalize: Scale each value to [0, 1] from the model's range.
        return_face: Add the embedded crop as ``face``.
        batch_size: Images per detector call, or ``"auto"``.
        on_error: ``"raise"`` or ``"skip"`` an unusable or faceless image of a batch.
        return_numpy: Embeddings as float32 arrays instead of lists.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Returns:
        For one image, a list with one dict per face (``embedding``, ``facial_area``, ``face_confidence``,
        ``alignment``); for a batch, a ``BatchResult`` with one such list per image, in input order.

    Raises:
        ImageError: An image cannot be used (its index and path are named).
        FaceNotDetectedError: With ``enforce_detection``, an image has no face.
        ArgumentError: An argument is out of range or not offered.
        UnknownModelError: ``model_name`` or ``detector_backend`` is not registered.
    """
    refuse_anti_spoofing(anti_spoofing)
    check_on_error(on_error)
    rules = FaceRules.of(enforce_detection, max_faces, expand_percentage, align)
    settings = settle(performance, batch_size)
    items, single = as_batch(img_path)
    if not items:  # nothing to embed: no model is loaded, but misspelt names still fail
        if isinstance(model_name, str):
            RECOGNIZERS.canonical(model_name)
        if isinstance(detector_backend, str):
            DETECTORS.canonical(detector_backend)
        return BatchResult()
    recognizer = resolve_recognizer(model_name, settings)
    spec = recognizer.spec_for(normalization)
    minmax_range = _embedding_range(recognizer) if minmax_normalize else None
    detector = resolve_detector(detector_backend, settings)
    records = iter_records(items, detector, resolve_batch_size(settings.batch_size, detector), rules,
                           recognizer=recognizer, spec=spec, crops=return_face, on_error=on_error, single=single,
                           as_loaded=True, workers=settings.workers, prefetch=settings.prefetch)
    return collect_batch(((record.index, record.error, [] if record.error is not None else
                           embedding_dicts(record, return_numpy, l2_normalize, minmax_range)) for record in records),
                         single, len(items))


def _embedding_range(recognizer: Recognizer) -> Tuple[float, float]:
    if recognizer.embedding_range is None:
        name = recognizer.display_name or recognizer.name
        raise ArgumentError(f"minmax_normalize needs the value range of {name}'s embeddings, which is not known; "
                            "use l2_normalize, or normalise the embeddings yourself")
    return recognizer.embedding_range
