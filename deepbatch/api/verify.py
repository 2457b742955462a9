"""``verify``: DeepFace's face verification, and ``verify_pairs``, which verifies many pairs while embedding each
distinct image once, in batches."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Hashable, Optional, Sequence, Tuple, Union

import numpy as np

from ..api.extract import resolve_detector
from ..batching import DEFAULT_BATCH_SIZE
from ..checks import refuse_anti_spoofing
from ..core.on_error import BatchResult, check_on_error
from ..core.stream import FaceRules, iter_records
from ..core.workers import BatchSize, resolve_batch_size
from ..detectors.base import Detector
from ..errors import ArgumentError, FaceNotDetectedError, ImageError
from ..errors import EmbeddingSizeError as EmbeddingSizeError
from ..errors import EmbeddingTypeError as EmbeddingTypeError
from ..formatting import facial_area
from ..performance import AUTOMATIC, Performance, settle
from ..recognition.base import Recognizer, resolve_recognizer
from ..recognition.distance import check_metric, distance_matrix
from ..records import ImageRecord

logger = logging.getLogger(__name__)

SIDES = ("img1", "img2")
NO_FACIAL_AREA: Dict[str, Any] = {"x": None, "y": None, "w": None, "h": None, "left_eye": None, "right_eye": None}


def is_embedding(item: Any) -> bool:
    """A precomputed embedding, as DeepFace's ``verify`` accepts: a list (or tuple), or a 1-D array; whether its
    items are numbers is checked by :func:`given_embedding`."""
    return isinstance(item, (list, tuple)) or (isinstance(item, np.ndarray) and item.ndim == 1)


def _key(item: Any) -> Hashable:
    """Identity of an input for de-duplication: paths, URLs and bytes by value, anything else by object."""
    if isinstance(item, str):
        return ("text", item)
    if isinstance(item, os.PathLike):
        return ("text", os.fspath(item))
    if isinstance(item, (bytes, bytearray)):
        return ("bytes", bytes(item))
    return ("object", id(item))


def at_pair(error: Exception, pair: int, side: str, single: bool) -> Exception:
    """``error`` re-addressed to a side of a pair, keeping its type (so ``except`` clauses still match)."""
    where = side if single else f"pair {pair} {side}"
    if isinstance(error, FaceNotDetectedError):
        new: Exception = FaceNotDetectedError(None, f"{where} ({error.source})" if error.source else where)
    elif isinstance(error, ImageError):
        new = type(error)(error.problem, None, f"{where} ({error.source})" if error.source else where)
    else:
        return error
    new.__cause__ = error.__cause__ or error
    return new


def best_pair(first: ImageRecord, second: ImageRecord, metric: str) -> Tuple[float, int, int]:
    """Smallest distance over every face of one image against every face of the other, and its face indices."""
    assert first.embeddings is not None and second.embeddings is not None
    distances = distance_matrix(first.embeddings, second.embeddings, metric)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    return float(distances[i, j]), int(i), int(j)


def face_area(result: ImageRecord, index: int) -> Dict[str, Any]:
    """DeepFace's ``facial_area`` of face ``index`` of ``result`` (every key None when it has no faces)."""
    if result.faces is None:
        return dict(NO_FACIAL_AREA)
    return facial_area(result.faces.boxes[index], None if result.faces.landmarks is None else
                       result.faces.landmarks[index], result.shape)


def verify_pairs(
    pairs: Sequence[Tuple[Any, Any]],
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    threshold: Optional[float] = None,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    performance: Optional[Performance] = None,
) -> BatchResult:
    """Verify many ``(img1, img2)`` pairs; each distinct image is detected and embedded once, ``batch_size`` images
    at a time. Images are the same when they are the same path, URL or bytes, or the same object.

    Returns a :class:`BatchResult` with one :func:`verify` dict per pair, in order; with ``on_error="skip"`` a pair
    whose image cannot be used gets an empty dict and its exception in ``errors``. ``time`` in each dict is the
    whole call's seconds divided by the number of pairs. Arguments are as in :func:`verify`.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size`` is
    its advanced spelling, not to be combined with it.

    Args:
        pairs: ``(img1, img2)`` pairs of images or embeddings.
        model_name: As in ``verify``.
        detector_backend: As in ``verify``.
        distance_metric: As in ``verify``.
        enforce_detection: As in ``verify``.
        align: As in ``verify``.
        expand_percentage: As in ``verify``.
        normalization: As in ``verify``.
        threshold: As in ``verify``.
        batch_size: Images per model call, or ``"auto"``.
        on_error: ``"raise"`` or ``"skip"`` a pair whose image cannot be used.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Returns:
        A ``BatchResult`` with one ``verify`` dict per pair, in order.

    Raises:
        ImageError: With ``on_error="raise"``, an image cannot be used.
        FaceNotDetectedError: With ``enforce_detection`` and ``on_error="raise"``, an image has no face.
    """
    settings = settle(performance, batch_size)
    return _verify(pairs, model_name, detector_backend, distance_metric, enforce_detection, align,
                   expand_percentage, normalization, threshold, settings.batch_size, on_error, single=False,
                   performance=settings)


def verify(
    img1_path: Any,
    img2_path: Any,
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    silent: bool = False,
    threshold: Optional[float] = None,
    anti_spoofing: bool = False,
    *,
    performance: Optional[Performance] = None,
) -> Dict[str, Any]:
    """Whether two images show the same person, as DeepFace's ``verify``.

    Each image is a path, URL, data URI, bytes, file object or BGR array, or a precomputed embedding (a flat list
    of floats or a 1-D array from :func:`deepbatch.represent` with the same model). When an image holds several
    faces, every face of one is compared with every face of the other and the closest pair decides.

    Returns DeepFace's keys: ``verified`` (``distance <= threshold``), ``distance``, ``threshold`` (the model's
    calibrated threshold for ``distance_metric`` unless given), ``confidence`` (DeepFace's 0 to 100: a logistic
    regression of "same person" on the distance, fitted on labelled pairs, stretched to 51-100 for pairs within the
    calibrated threshold and 0-49 for the others; 51 or 49 where no fit exists), ``model``, ``detector_backend``,
    ``similarity_metric`` (``cosine``, ``euclidean``, ``euclidean_l2`` or ``angular``), ``facial_areas``
    (``img1`` and ``img2``: the faces of the closest pair; ``None`` values for an embedding input) and ``time``
    (seconds).
    ``silent`` is accepted for DeepFace compatibility (deepbatch reports through ``logging``).

    Args:
        img1_path: An image, or a precomputed embedding (a flat list of floats or a 1-D array).
        img2_path: The other image or embedding.
        model_name: A registered recognizer name or a ``Recognizer``.
        detector_backend: A registered detector name or a ``Detector``.
        distance_metric: ``"cosine"``, ``"euclidean"``, ``"euclidean_l2"`` or ``"angular"``.
        enforce_detection: Raise ``FaceNotDetectedError`` when an image has no face.
        align: Warp each face onto the five-point template.
        expand_percentage: Grow each box by this percentage, 0 to 200.
        normalization: DeepFace's input normalisation; ``"base"`` is the model's own.
        silent: Accepted for DeepFace; deepbatch reports through ``logging``.
        threshold: The distance at or below which the faces are the same person (default: the calibrated one).
        anti_spoofing: Refused (``ArgumentError``).
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads
            (automatic by default).

    Returns:
        DeepFace's result dict (``verified``, ``distance``, ``threshold``, ``confidence``, ``model``,
        ``detector_backend``, ``similarity_metric``, ``facial_areas``, ``time``).

    Raises:
        ImageError: An image cannot be used.
        FaceNotDetectedError: With ``enforce_detection``, an image has no face (``img1`` or ``img2`` is named).
        ThresholdUnknownError: The model has no calibrated threshold for the metric and none is given.
        ArgumentError: An argument is out of range or not offered.
    """
    refuse_anti_spoofing(anti_spoofing)
    settings = settle(performance)
    return _verify([(img1_path, img2_path)], model_name, detector_backend, distance_metric, enforce_detection,
                   align, expand_percentage, normalization, threshold,
                   DEFAULT_BATCH_SIZE if performance is None else settings.batch_size, "raise", single=True,
                   performance=settings)[0]


def _verify(
    pairs: Sequence[Tuple[Any, Any]], model_name: Union[str, Recognizer], detector_backend: Union[str, Detector],
    distance_metric: str, enforce_detection: bool, align: bool, expand_percentage: int, normalization: str,
    threshold: Optional[float], batch_size: BatchSize, on_error: str, single: bool,
    performance: Performance = AUTOMATIC,
) -> BatchResult:
    started = time.perf_counter()
    check_metric(distance_metric)
    check_on_error(on_error)
    rules = FaceRules.of(enforce_detection, None, expand_percentage, align)
    pairs = [tuple(pair) for pair in pairs]
    for index, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ArgumentError(f"pair {index} has {len(pair)} items; each pair must be (img1, img2)")
    if threshold is not None:
        check_threshold(threshold)
    recognizer = resolve_recognizer(model_name, performance)
    limit = recognizer.threshold(distance_metric) if threshold is None else float(threshold)
    # DeepFace decides the confidence's side with the calibrated threshold even when the caller passes another.
    calibrated = limit if distance_metric not in recognizer.thresholds else recognizer.threshold(distance_metric)
    spec = recognizer.spec_for(normalization)
    detector = resolve_detector(detector_backend, performance)

    embedded: Dict[Hashable, ImageRecord] = {}
    distinct: Dict[Hashable, Any] = {}
    for index, pair in enumerate(pairs):
        for side, item in enumerate(pair, start=1):
            if is_embedding(item):
                key: Hashable = ("embedding", id(item))
                embedded[key] = given_embedding(item, recognizer, side if single else f"pair {index} img{side}")
            else:
                distinct.setdefault(_key(item), item)
    keys = list(distinct)
    size = resolve_batch_size(batch_size, detector)
    # Errors are collected per distinct image and re-addressed to the first pair that uses it (see at_pair).
    records = iter_records(list(distinct.values()), detector, size, rules, recognizer=recognizer, spec=spec,
                           on_error="skip", workers=performance.workers, prefetch=performance.prefetch)
    for key, record in zip(keys, records):
        embedded[key] = record

    results = BatchResult()
    model = model_name if isinstance(model_name, str) else (recognizer.display_name or recognizer.name)
    backend = detector_backend if isinstance(detector_backend, str) else detector.name
    for index, pair in enumerate(pairs):
        sides = [embedded[("embedding", id(item)) if is_embedding(item) else _key(item)] for item in pair]
        failed = [(side, r.error) for side, r in zip(SIDES, sides) if r.error is not None]
        if failed:
            error = at_pair(failed[0][1], index, failed[0][0], single)
            if on_error == "raise":
                raise error
            results.errors[index] = error
            results.append({})
            continue
        distance, i, j = best_pair(sides[0], sides[1], distance_metric)
        results.append({
            "verified": bool(distance <= limit),
            "distance": distance,
            "threshold": limit,
            "confidence": recognizer.confidence(distance, distance_metric, distance <= calibrated),
            "model": model,
            "detector_backend": backend,
            "similarity_metric": distance_metric,
            "facial_areas": {"img1": face_area(sides[0], i), "img2": face_area(sides[1], j)},
            "time": 0.0,
        })
    elapsed = round((time.perf_counter() - started) / max(len(pairs), 1), 2)
    for result in results:
        if result:
            result["time"] = elapsed
    if results.errors:
        logger.warning("%d of %d pairs could not be verified: %s", len(results.errors), len(pairs),
                       "; ".join(str(e) for e in results.errors.values()))
    return results


def check_threshold(threshold: Any) -> None:
    """A distance threshold must be a finite number at least 0: a distance is never negative, so a negative one
    rejects every pair, and NaN or infinity decide nothing."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.number)):
        raise ArgumentError(f"threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if not np.isfinite(value) or value < 0:
        raise ArgumentError(f"threshold must be a finite distance at least 0, got {threshold!r}; leave it out for "
                            "the model's calibrated threshold")


def given_embedding(item: Any, recognizer: Recognizer, where: Union[int, str]) -> ImageRecord:
    name = where if isinstance(where, str) else f"img{where}_path"
    values = list(item)
    if not values or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                             for v in values):
        raise EmbeddingTypeError(name)
    vector = np.asarray(values, dtype=np.float32).reshape(1, -1)
    if vector.shape[1] != recognizer.embedding_size:
        raise EmbeddingSizeError(vector.shape[1], recognizer, name)
    return ImageRecord(0, None, faces=None, embeddings=vector, points=np.zeros(1, np.int64))

