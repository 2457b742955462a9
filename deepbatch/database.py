"""DeepFace's stateless database functions, ``register``, ``search`` and ``build_index``, batched.

``register`` runs a folder, a list or a stream of photos through the batched pipeline
(:func:`deepbatch.stream.iter_records`) and writes them ``commit_every`` images per transaction. Each image is
keyed by the SHA-256 of its bytes (of its pixels for an array): a photo already registered under the same settings
is skipped before it is decoded, so a re-run registers only what is new and a run killed at any point resumes where
its last transaction ended. A photo that cannot be read or has no face (``enforce_detection=True``) is registered
as an error row, reported in the result, and the rest go on.

Every face is stored with its configuration (:class:`~deepbatch.store.base.EmbeddingConfig`: recogniser,
detector, alignment, L2 normalisation, input normalisation, expansion, size); ``search`` reads only the faces of
the configuration it is called with, and raises :class:`~deepbatch.errors.EmbeddingMismatchError` when the
database holds none of it, instead of comparing vectors of different models.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .api.extract import resolve_detector
from .checks import refuse_anti_spoofing
from .core.stream import FaceRules, iter_records
from .core.workers import BatchSize, resolve_batch_size
from .detectors.base import Detector
from .errors import ArgumentError, DeepbatchError, ImageError
from .io.images import as_batch, list_image_files, read_encoded
from .performance import AUTOMATIC, Performance, settle
from .recognition.base import Recognizer, resolve_recognizer
from .recognition.distance import check_metric, distance_matrix
from .recognition.normalization import l2_normalize as unit_rows
from .records import ImageRecord
from .store import open_store
from .store.base import DEFAULT_MAX_NEIGHBORS, EmbeddingConfig, FaceRows, FaceStore, ImageEntry

logger = logging.getLogger(__name__)

SEARCH_METHODS = ("exact", "ann")
DEFAULT_ANN_K = 20  # DeepFace's number of neighbours of an approximate search without k
COMMIT_EVERY = 64  # images per transaction: a crash loses at most this many images' work
TARGET_COLUMNS = ("target_x", "target_y", "target_w", "target_h")
SOURCE_COLUMNS = ("source_x", "source_y", "source_w", "source_h")
# DeepFace's columns of search, then the query face's box (as find gives it).
RESULT_COLUMNS = ("id", "img_name", "model_name", "detector_backend", "aligned", "l2_normalized", "search_method",
                  *TARGET_COLUMNS, "threshold", "distance_metric", "distance", "confidence", *SOURCE_COLUMNS)


def embedding_config(recognizer: Recognizer, detector: Detector, align: bool, l2_normalize: bool,
                     normalization: str, expand_percentage: float) -> EmbeddingConfig:
    """The configuration faces are stored and searched under; an unknown ``normalization`` raises here."""
    recognizer.spec_for(normalization)  # an unknown normalisation fails here, before anything is written
    return EmbeddingConfig(recognizer.name, detector.name, bool(align), bool(l2_normalize), normalization,
                           float(expand_percentage), int(recognizer.embedding_size))


def _inputs(img: Any) -> Tuple[Iterable[Any], bool]:
    """``(items, single)``: a folder's image files, a list's items, a stream's items, or one image."""
    if isinstance(img, (str, os.PathLike)) and not str(img).startswith(("data:", "http://", "https://")) \
            and Path(img).is_dir():
        return [str(p) for p in list_image_files(Path(img))], False
    if isinstance(img, Iterator) and not hasattr(img, "read"):
        return img, False
    return as_batch(img)


def image_digest(item: Any, index: Optional[int] = None) -> Tuple[str, Any]:
    """``(SHA-256 hex, what the pipeline reads)`` of one input: the digest of its encoded bytes (which are handed
    on, so a file is read once), or of an array's shape, dtype and pixels."""
    if isinstance(item, np.ndarray):
        array = np.ascontiguousarray(item)
        digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest(), array
    data = read_encoded(item, index)
    assert data is not None
    return hashlib.sha256(data).hexdigest(), data


def entry_name(item: Any, img_name: Union[None, str, Sequence[str]], position: int, digest: str) -> str:
    """The name an image is registered under: ``img_name`` (one for all, or the ``position``-th), a path itself,
    else ``sha256:<digest>``."""
    if isinstance(img_name, str):
        return img_name
    if img_name is not None:
        return str(img_name[position])
    if isinstance(item, (str, os.PathLike)) and not str(item).startswith("data:"):
        return str(item)
    return f"sha256:{digest}"


def image_entry(record: ImageRecord, digest: str, name: str, l2_normalize: bool, dimensions: int) -> ImageEntry:
    """What is stored for one image's record: its faces and embeddings, or an error row when the record carries
    an error (or no embedding)."""
    if record.error is not None or record.faces is None or record.embeddings is None:
        error = record.error if record.error is not None else "no embedding"
        return ImageEntry(digest, name, np.zeros((0, 4), np.int64), np.zeros(0, np.float32),
                          np.zeros((0, dimensions), np.float32), error=f"{type(error).__name__}: {error}"
                          if isinstance(error, Exception) else str(error))
    embeddings = record.embeddings.astype(np.float32)
    if l2_normalize:
        embeddings = unit_rows(embeddings).astype(np.float32)
    corners = np.rint(record.faces.boxes[: len(embeddings)]).astype(np.int64)
    boxes = np.concatenate([corners[:, :2], np.maximum(corners[:, 2:] - corners[:, :2], 0)], axis=1)
    return ImageEntry(digest, name, boxes, record.faces.scores[: len(embeddings)].astype(np.float32), embeddings)


def register(
    img: Any,
    img_name: Optional[Union[str, Sequence[str]]] = None,
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    enforce_detection: bool = True,
    align: bool = True,
    l2_normalize: bool = False,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    database_type: str = "embedded",
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    connection: Any = None,
    *,
    batch_size: BatchSize = "auto",
    commit_every: int = COMMIT_EVERY,
    performance: Optional[Performance] = None,
) -> Dict[str, Any]:
    """Register the faces of ``img`` in a face database, as DeepFace's ``register``, batched.

    ``img`` is a folder (its image files, recursively), one image or a list of images (anything
    :func:`deepbatch.extract_faces` takes), or an iterator of them (read lazily: a stream of any length).
    ``img_name`` names the image(s) in the database (one name for all, or one per image); by default a path is its
    own name and other inputs are named ``sha256:<digest>``. ``database_type`` and ``connection_details`` /
    ``connection`` choose the database (:func:`deepbatch.store.open_store`; the default is the embedded one).

    ``batch_size`` images are detected per model call and their faces embedded together; ``commit_every`` images
    are written per transaction. Images registered before (same bytes, same settings) are skipped unread.
    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models built from a name; ``batch_size`` is its advanced spelling.

    Returns DeepFace's ``{"inserted": faces written}`` with ``images`` (images written, error rows included),
    ``skipped`` (already registered) and ``errors`` (``{"img_name", "error"}`` per image that gave no embedding).
    """
    refuse_anti_spoofing(anti_spoofing)
    if commit_every < 1:
        raise ArgumentError(f"commit_every must be a positive integer, got {commit_every}")
    settings = settle(performance, batch_size)
    recognizer = resolve_recognizer(model_name, settings)
    detector = resolve_detector(detector_backend, settings)
    config = embedding_config(recognizer, detector, align, l2_normalize, normalization, expand_percentage)
    items, _ = _inputs(img)
    if img_name is not None and not isinstance(img_name, str) and isinstance(items, list) \
            and len(img_name) != len(items):
        raise ArgumentError(f"img_name has {len(img_name)} names for {len(items)} images")
    store = open_store(database_type, connection_details, connection)
    try:
        return _register(store, config, items, img_name, recognizer, detector, enforce_detection, align,
                         l2_normalize, expand_percentage, normalization,
                         resolve_batch_size(settings.batch_size, detector), commit_every, settings)
    finally:
        store.close()


def _register(store: FaceStore, config: EmbeddingConfig, items: Iterable[Any],
              img_name: Union[None, str, Sequence[str]], recognizer: Recognizer, detector: Detector,
              enforce_detection: bool, align: bool, l2_normalize: bool, expand_percentage: float,
              normalization: str, batch_size: int, commit_every: int,
              performance: Performance = AUTOMATIC) -> Dict[str, Any]:
    config_id = store.config_id(config, create=True)
    registered = store.registered_digests(config_id)
    result: Dict[str, Any] = {"inserted": 0, "images": 0, "skipped": 0, "errors": []}
    pending: List[Tuple[str, str]] = []  # (digest, name) of each image sent down the pipeline, in stream order

    def todo() -> Iterator[Any]:
        for position, item in enumerate(items):
            try:
                digest, data = image_digest(item, position)
            except ImageError as exc:
                name = entry_name(item, img_name, position, "")
                result["errors"].append({"img_name": name, "error": str(exc)})
                continue
            if digest in registered:
                result["skipped"] += 1
                continue
            registered.add(digest)  # the same photo twice in one call is registered once
            pending.append((digest, entry_name(item, img_name, position, digest)))
            yield data

    batch: List[ImageEntry] = []

    def commit() -> None:
        images, faces = store.insert_embeddings(config_id, batch)
        result["images"] += images
        result["inserted"] += faces
        batch.clear()

    rules = FaceRules.of(enforce_detection, None, expand_percentage, align)
    for record in iter_records(todo(), detector, batch_size, rules, recognizer=recognizer,
                               spec=recognizer.spec_for(normalization), on_error="skip",
                               workers=performance.workers, prefetch=performance.prefetch):
        digest, name = pending[record.index]
        entry = image_entry(record, digest, name, l2_normalize, config.dimensions)
        if entry.error is not None:
            result["errors"].append({"img_name": name, "error": entry.error})
            logger.warning("%s: registered without a face (%s)", name, entry.error)
        batch.append(entry)
        if len(batch) >= commit_every:
            commit()
    if batch:
        commit()
    store.after_insert(config_id)
    return result


def resolve_return_type(return_type: Optional[str]) -> str:
    from .api.find import resolve_return_type as resolve

    return resolve(return_type)


@dataclass(frozen=True)
class Matching:
    """How a search ranks the registered faces against each query face (see :func:`search`); built, and its
    arguments checked, by :meth:`of` before any model runs."""

    distance_metric: str
    limit: float  # the largest distance kept (inf: every candidate)
    similarity_search: bool
    k: Optional[int]
    search_method: str
    ef_search: Optional[int]
    return_type: str

    @classmethod
    def of(cls, recognizer: Recognizer, distance_metric: str = "cosine", similarity_search: bool = False,
           k: Optional[int] = None, search_method: str = "exact", threshold: Optional[float] = None,
           ef_search: Optional[int] = None, return_type: Optional[str] = None) -> Matching:
        if search_method not in SEARCH_METHODS:
            raise ArgumentError(f"search_method must be one of {SEARCH_METHODS}, got {search_method!r}")
        if k is not None and k < 1:
            raise ArgumentError(f"k must be a positive integer or None, got {k}")
        check_metric(distance_metric)
        if threshold is not None:
            limit = float(threshold)
        elif similarity_search and distance_metric not in recognizer.thresholds:
            limit = float("inf")
        else:
            limit = recognizer.threshold(distance_metric)
        return cls(distance_metric, limit, bool(similarity_search), k, search_method, ef_search,
                   resolve_return_type(return_type))


def match_records(store: FaceStore, config_id: int, config: EmbeddingConfig, recognizer: Recognizer,
                  matching: Matching, queries: Sequence[ImageRecord]) -> List[List[Any]]:
    """For each query record (faces detected and embedded under ``config``), one table of matches per face,
    nearest first: the registered faces of ``config_id`` in ``store`` that ``matching`` keeps."""
    vectors = [q.embeddings for q in queries if q.embeddings is not None and len(q.embeddings)]
    query_vectors = np.concatenate(vectors) if vectors else np.zeros((0, config.dimensions), np.float32)
    if config.l2_normalized:
        query_vectors = unit_rows(query_vectors).astype(np.float32)
    if matching.search_method == "exact":
        rows = store.fetch_all_embeddings(config_id)
    else:
        rows = store.search_by_vector(config_id, query_vectors, matching.k or DEFAULT_ANN_K, matching.ef_search)
    distances = distance_matrix(query_vectors, rows.embeddings, matching.distance_metric) if len(rows) and \
        len(query_vectors) else np.zeros((len(query_vectors), len(rows)))
    results: List[List[Any]] = []
    row = 0
    for query in queries:
        tables = []
        count = 0 if query.faces is None or query.embeddings is None else len(query.embeddings)
        for face in range(count):
            assert query.faces is not None
            tables.append(_table(rows, distances[row], query.faces.boxes[face], matching, recognizer, config))
            row += 1
        results.append(tables)
    return results


def search(
    img: Any,
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    align: bool = True,
    l2_normalize: bool = False,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    similarity_search: bool = False,
    k: Optional[int] = None,
    database_type: str = "embedded",
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    connection: Any = None,
    search_method: str = "exact",
    return_type: Optional[str] = None,
    *,
    batch_size: BatchSize = "auto",
    threshold: Optional[float] = None,
    ef_search: Optional[int] = None,
    performance: Optional[Performance] = None,
) -> List[Any]:
    """The registered faces that match each face of ``img``, as DeepFace's ``search``, for many queries at once.

    ``img`` is one image or a list of images; their faces are detected and embedded in batches. For one image the
    result is a list with one table per face found in it; for a list, one such list per image, in input order (as
    :func:`deepbatch.find`). A table is a DataFrame (``return_type="pandas"``, the default with pandas) or a list
    of dicts with DeepFace's columns ``id``, ``img_name``, ``model_name``, ``detector_backend``, ``aligned``,
    ``l2_normalized``, ``search_method``, ``target_x/y/w/h`` (the registered face's box), ``threshold``,
    ``distance_metric``, ``distance``, ``confidence``, and ``source_x/y/w/h`` (the query face's box), nearest
    first.

    Rows are the faces within ``threshold`` (default: the model's for ``distance_metric``); with
    ``similarity_search`` every candidate is ranked; ``k`` keeps the nearest ``k``. ``search_method="exact"``
    compares with every registered face of the configuration; ``"ann"`` asks the approximate index (usearch,
    PostgreSQL's client-built one or pgvector's HNSW; ``ef_search`` candidates) for the ``k`` (default 20) nearest
    by cosine, then ranks those by ``distance_metric``. Distances are always computed here from the stored float32
    vectors, so every backend gives the same numbers. ``performance`` (a :class:`deepbatch.Performance`) is as in
    :func:`register`.
    """
    refuse_anti_spoofing(anti_spoofing)
    settings = settle(performance, batch_size)
    recognizer = resolve_recognizer(model_name, settings)
    matching = Matching.of(recognizer, distance_metric, similarity_search, k, search_method, threshold, ef_search,
                           return_type)
    detector = resolve_detector(detector_backend, settings)
    config = embedding_config(recognizer, detector, align, l2_normalize, normalization, expand_percentage)
    store = open_store(database_type, connection_details, connection)
    try:
        config_id = store.config_id(config)  # a database without these embeddings fails before any model runs
        items, single = as_batch(img)
        rules = FaceRules.of(enforce_detection, None, expand_percentage, align)
        queries = list(iter_records(items, detector, resolve_batch_size(settings.batch_size, detector), rules,
                                    recognizer=recognizer, spec=recognizer.spec_for(normalization), single=single,
                                    workers=settings.workers, prefetch=settings.prefetch))
        results = match_records(store, config_id, config, recognizer, matching, queries)
    finally:
        store.close()
    return results[0] if single else results


def _table(rows: FaceRows, distances: np.ndarray, box: np.ndarray, matching: Matching, recognizer: Recognizer,
           config: EmbeddingConfig) -> Any:
    limit, k, metric, search_method = matching.limit, matching.k, matching.distance_metric, matching.search_method
    keep = np.isfinite(distances) if matching.similarity_search else distances <= limit
    order = np.flatnonzero(keep)
    order = order[np.lexsort((rows.ids[order], distances[order]))][:k]  # ties broken by id: same order everywhere
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    source = (x1, y1, max(0, x2 - x1), max(0, y2 - y1))
    n = len(order)
    columns: Dict[str, Any] = {
        "id": rows.ids[order].tolist(),
        "img_name": [rows.img_names[i] for i in order],
        "model_name": [config.model_name] * n,
        "detector_backend": [config.detector_backend] * n,
        "aligned": [config.aligned] * n,
        "l2_normalized": [config.l2_normalized] * n,
        "search_method": [search_method] * n,
        **{name: rows.boxes[order, i].tolist() for i, name in enumerate(TARGET_COLUMNS)},
        "threshold": [limit] * n,
        "distance_metric": [metric] * n,
        "distance": distances[order].tolist(),
        "confidence": [recognizer.confidence(float(d), metric, bool(d <= limit)) for d in distances[order]],
        **{name: [source[i]] * n for i, name in enumerate(SOURCE_COLUMNS)},
    }
    if matching.return_type == "pandas":
        import pandas as pd

        return pd.DataFrame(columns, columns=list(RESULT_COLUMNS))
    return [dict(zip(RESULT_COLUMNS, values)) for values in zip(*(columns[c] for c in RESULT_COLUMNS))]


def build_index(
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    align: bool = True,
    l2_normalize: bool = False,
    database_type: str = "embedded",
    connection: Any = None,
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS,
    *,
    normalization: str = "base",
    expand_percentage: int = 0,
) -> None:
    """Bring the approximate index of one configuration up to date, as DeepFace's ``build_index``: resumable
    (only faces the index lacks are added). The embedded store also keeps its index up to date while registering,
    and pgvector keeps its HNSW index in the server; for them this only makes sure the index exists.
    ``max_neighbors_per_node`` is the HNSW graph's links per node for an index built from scratch."""
    if max_neighbors_per_node < 2:
        raise ArgumentError(f"max_neighbors_per_node must be at least 2, got {max_neighbors_per_node}")
    recognizer = resolve_recognizer(model_name)
    detector = resolve_detector(detector_backend)
    config = embedding_config(recognizer, detector, align, l2_normalize, normalization, expand_percentage)
    store = open_store(database_type, connection_details, connection)
    try:
        store.build_index(store.config_id(config), max_neighbors_per_node)
    finally:
        store.close()


__all__ = ["register", "search", "build_index", "DeepbatchError"]
