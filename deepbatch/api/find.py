"""``find``: DeepFace's search of a folder of face photos, with the folder embedded once, in batches.

The first call embeds every image under ``db_path`` (recursively) ``batch_size`` images at a time and stores the
embeddings in an index file in that folder (written to a temporary file, then renamed into place, so an interrupted
run never leaves a broken index). The index carries a SHA-256 of its arrays, checked with their shapes when it is
loaded: an index that is damaged or was edited is rebuilt, with a warning. A folder where the index cannot be
written (read-only) is still searched: the index is kept in memory for the call, with one warning. Later calls
compare the folder with the index and embed only the images added or changed since (by size and modification
time, or by content hash with ``change_detection="content"``), and drop the rows of images removed. One index
exists per recognizer, detector, alignment, normalisation and expansion.

Many query images are searched in one call: their faces are detected and embedded in batches, and the distances
of every query face to every database face come from one matrix product.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..api.extract import resolve_detector
from ..checks import refuse_anti_spoofing
from ..core.stream import FaceRules, iter_records
from ..core.workers import BatchSize, resolve_batch_size
from ..detectors.base import Detector
from ..errors import ArgumentError
from ..errors import EmptyDatabaseError as EmptyDatabaseError
from ..errors import IndexFormatError as IndexFormatError
from ..io.images import as_batch, list_image_files
from ..performance import AUTOMATIC, Performance, settle
from ..recognition.base import Recognizer, resolve_recognizer
from ..recognition.distance import check_metric, distance_matrix
from ..records import ImageRecord
from .face_index import INDEX_VERSION as INDEX_VERSION
from .face_index import FaceIndex, IndexUpdate, file_signature, index_file_name

logger = logging.getLogger(__name__)

RETURN_TYPES = ("pandas", "dict")
CHANGE_DETECTIONS = ("stat", "content")
TARGET_COLUMNS = ("target_x", "target_y", "target_w", "target_h")
SOURCE_COLUMNS = ("source_x", "source_y", "source_w", "source_h")
# DeepFace's column order: the database row, then the query face, then the comparison.
RESULT_COLUMNS = ("identity", "hash", *TARGET_COLUMNS, "threshold", *SOURCE_COLUMNS, "distance", "confidence")


def _rows(results: List[ImageRecord], names: Sequence[str], signatures: Sequence[str], dim: int,
          key: str, update: IndexUpdate) -> FaceIndex:
    identities, hashes, embeddings, boxes, valid = [], [], [], [], []
    for result in results:
        name, signature = names[result.index], signatures[result.index]
        faces = result.faces
        if result.error is not None or faces is None or result.embeddings is None or len(faces) == 0:
            if result.error is not None:
                update.failed[name] = result.error
            identities.append(name)
            hashes.append(signature)
            embeddings.append(np.zeros((1, dim), np.float32))
            boxes.append(np.zeros((1, 4), np.int64))
            valid.append(np.zeros(1, bool))
            continue
        corners = np.rint(faces.boxes).astype(np.int64)
        identities.extend([name] * len(faces))
        hashes.extend([signature] * len(faces))
        embeddings.append(result.embeddings.astype(np.float32))
        boxes.append(np.concatenate([corners[:, :2], np.maximum(corners[:, 2:] - corners[:, :2], 0)], axis=1))
        valid.append(np.ones(len(faces), bool))
    if not identities:
        return FaceIndex.empty(dim, key)
    return FaceIndex(np.array(identities, dtype=str), np.array(hashes, dtype=str), np.concatenate(embeddings),
                     np.concatenate(boxes), np.concatenate(valid), key)


def update_index(
    db_path: Union[str, os.PathLike],
    model_name: Union[str, Recognizer] = "arcface_mbf",
    detector_backend: Union[str, Detector] = "scrfd",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: float = 0,
    normalization: str = "base",
    silent: bool = False,
    refresh_database: bool = True,
    batch_size: BatchSize = "auto",
    change_detection: str = "stat",
    performance: Optional[Performance] = None,
) -> Tuple[FaceIndex, IndexUpdate]:
    """The index of ``db_path`` brought up to date (see the module docstring), and what the update did.

    Images are embedded ``batch_size`` at a time with a progress bar (hidden when ``silent``). An image without a
    face (``enforce_detection=True``) or that cannot be read is kept as a row without embedding, as DeepFace does,
    so it is not retried until it changes. ``refresh_database=False`` uses the stored index as it is.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size`` is
    its advanced spelling, not to be combined with it.
    """
    folder = Path(db_path)
    if not folder.is_dir():
        raise ArgumentError(f"db_path must be a folder of face images, got {str(db_path)!r}")
    if change_detection not in CHANGE_DETECTIONS:
        raise ArgumentError(f"change_detection must be one of {CHANGE_DETECTIONS}, got {change_detection!r}")
    settings = settle(performance, batch_size)
    recognizer = resolve_recognizer(model_name, settings)
    spec = recognizer.spec_for(normalization)
    detector = resolve_detector(detector_backend, settings)
    name = index_file_name(recognizer, detector, align, normalization, expand_percentage)
    path = folder / name
    key = name[: -len(".npz")]
    dim = recognizer.embedding_size
    index = FaceIndex.empty(dim, key)
    rebuild = False
    if path.is_file():
        try:
            index = FaceIndex.load(path, key, dim)
        except IndexFormatError as exc:
            if not refresh_database:
                raise IndexFormatError(f"{exc}; run with refresh_database=True to rebuild it") from exc
            logger.warning("%s; it is rebuilt from the images", exc)
            rebuild = True
    update = IndexUpdate(path)
    batch_size = resolve_batch_size(settings.batch_size, detector)
    if not refresh_database:
        if not len(index):
            raise EmptyDatabaseError(f"nothing is indexed in {path} and refresh_database=False")
        return index, update

    files = {p.relative_to(folder).as_posix(): p for p in list_image_files(folder)}
    if not files:
        raise EmptyDatabaseError(f"no image found in {folder}")
    signatures = {rel: file_signature(p, change_detection) for rel, p in files.items()}
    stored = dict(zip(index.identities.tolist(), index.hashes.tolist()))
    update.added = sorted(set(files) - set(stored))
    update.removed = sorted(set(stored) - set(files))
    update.changed = sorted(rel for rel in set(files) & set(stored) if stored[rel] != signatures[rel])
    if not update.modified and path.is_file() and not rebuild:
        return index, update
    if update.removed or update.changed:
        index = index.select(~np.isin(index.identities, update.removed + update.changed))
    todo = update.added + update.changed
    if todo:
        if not silent:
            logger.info("%s: %d new, %d changed, %d removed images", folder, len(update.added),
                        len(update.changed), len(update.removed))
        results = _embed_files([files[rel] for rel in todo], detector, recognizer, batch_size, enforce_detection,
                               align, expand_percentage, spec, silent, settings)
        update.embedded = len(todo)
        index = index.extend(_rows(results, todo, [signatures[rel] for rel in todo], dim, key, update))
        for rel, error in update.failed.items():
            logger.warning("%s: no embedding (%s)", rel, error)
    try:
        index.save(path)
    except OSError as exc:  # a read-only folder: the search goes on with the index in memory
        logger.warning("could not save the face index in %s (%s); searching without saving it, so the next call "
                       "embeds the images again", folder, exc.strerror or exc)
    return index, update


def _embed_files(paths: List[Path], detector: Detector, recognizer: Recognizer, batch_size: int,
                 enforce_detection: bool, align: bool, expand_percentage: float, spec: Any,
                 silent: bool, performance: Performance = AUTOMATIC) -> List[ImageRecord]:
    from tqdm import tqdm

    stream = iter_records([str(p) for p in paths], detector, batch_size,
                          FaceRules.of(enforce_detection, None, expand_percentage, align), recognizer=recognizer,
                          spec=spec, on_error="skip", workers=performance.workers, prefetch=performance.prefetch)
    with tqdm(total=len(paths), desc="Embedding the database", unit="img", disable=silent) as progress:
        results = []
        for result in stream:
            results.append(result)
            progress.update(1)
    return results


def _resolve_threshold(recognizer: Recognizer, metric: str, threshold: Optional[float],
                       similarity_search: bool) -> float:
    if threshold is not None:
        return float(threshold)
    if similarity_search and metric not in recognizer.thresholds:
        return float("inf")  # nothing to filter by: every face is ranked
    return recognizer.threshold(metric)


def find(
    img_path: Any,
    db_path: Union[str, os.PathLike],
    model_name: Union[str, Recognizer] = "arcface_mbf",
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    detector_backend: Union[str, Detector] = "scrfd",
    align: bool = True,
    similarity_search: bool = False,
    k: Optional[int] = None,
    expand_percentage: int = 0,
    threshold: Optional[float] = None,
    normalization: str = "base",
    silent: bool = False,
    refresh_database: bool = True,
    anti_spoofing: bool = False,
    datastore_format: str = "npz",
    return_type: Optional[str] = None,
    *,
    batch_size: BatchSize = "auto",
    change_detection: str = "stat",
    performance: Optional[Performance] = None,
) -> List[Any]:
    """The faces of ``db_path`` that match each face of ``img_path``, as DeepFace's ``find``.

    ``img_path`` is one image (anything :func:`deepbatch.extract_faces` takes) or a list of images. For one image
    the result is a list with one table per face found in it; for a list, one such list per image, in input
    order. A table is a pandas DataFrame (``return_type="pandas"``, the default when pandas is installed) or a list
    of dicts (``return_type="dict"``) with DeepFace's columns: ``identity`` (the database image's path),
    ``hash``, ``target_x/y/w/h`` (the database face), ``threshold``, ``source_x/y/w/h`` (the query face),
    ``distance`` and ``confidence`` (percent, as :func:`deepbatch.verify` gives it), sorted by distance.

    Rows are the database faces within ``threshold`` (default: the model's calibrated threshold for
    ``distance_metric``); with ``similarity_search`` every database face is ranked. ``k`` keeps the nearest ``k``.
    The database index is maintained by :func:`update_index` (``refresh_database``, ``change_detection``) as an
    ``.npz`` file (``datastore_format`` accepts only ``"npz"``; DeepFace's feather and parquet are not offered);
    ``batch_size`` images are detected per model call, for the database and for the queries.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size`` is
    its advanced spelling, not to be combined with it.

    Args:
        img_path: One query image, or a list of images.
        db_path: The folder of face photos, searched recursively.
        model_name: A registered recognizer name or a ``Recognizer``.
        distance_metric: ``"cosine"``, ``"euclidean"``, ``"euclidean_l2"`` or ``"angular"``.
        enforce_detection: Raise ``FaceNotDetectedError`` when a query image has no face.
        detector_backend: A registered detector name or a ``Detector``.
        align: Warp each face onto the five-point template.
        similarity_search: Rank every database face instead of those within the threshold.
        k: Keep the nearest ``k`` faces of each table.
        expand_percentage: Grow each box by this percentage, 0 to 200.
        threshold: The largest distance kept (default: the model's calibrated threshold).
        normalization: DeepFace's input normalisation; ``"base"`` is the model's own.
        silent: Hide the progress bar.
        refresh_database: Embed the photos added or changed since the index was written.
        anti_spoofing: Refused (``ArgumentError``).
        datastore_format: ``"npz"`` only.
        return_type: ``"pandas"`` or ``"dict"`` (default: pandas when installed).
        batch_size: Images per model call, for the database and the queries.
        change_detection: ``"stat"`` (size and modification time) or ``"content"`` (a hash of the bytes).
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Returns:
        For one image, one table per face found in it; for a list, one such list per image, in input order.

    Raises:
        ImageError: A query image cannot be used.
        FaceNotDetectedError: With ``enforce_detection``, a query image has no face.
        ArgumentError: An argument is out of range or not offered.
    """
    refuse_anti_spoofing(anti_spoofing)
    if datastore_format != "npz":
        raise ArgumentError(f"datastore_format={datastore_format!r} is not supported: deepbatch stores its index as "
                            "'npz' (numpy only)")
    if k is not None and k < 1:
        raise ArgumentError(f"k must be a positive integer or None, got {k}")
    return_type = resolve_return_type(return_type)
    settings = settle(performance, batch_size)
    recognizer = resolve_recognizer(model_name, settings)
    detector = resolve_detector(detector_backend, settings)
    check_metric(distance_metric)
    limit = _resolve_threshold(recognizer, distance_metric, threshold, similarity_search)
    batch_size = resolve_batch_size(settings.batch_size, detector)
    index, _ = update_index(db_path, recognizer, detector, enforce_detection, align, expand_percentage,
                            normalization, silent, refresh_database, "auto", change_detection,
                            replace(settings, batch_size=batch_size))
    items, single = as_batch(img_path)
    rules = FaceRules.of(enforce_detection, None, expand_percentage, align)
    queries = list(iter_records(items, detector, batch_size, rules, recognizer=recognizer,
                                spec=recognizer.spec_for(normalization), single=single, workers=settings.workers,
                                prefetch=settings.prefetch))
    query_embeddings = [q.embeddings for q in queries if q.embeddings is not None and len(q.embeddings)]
    distances = np.zeros((0, len(index)))
    if query_embeddings and len(index):
        distances = distance_matrix(np.concatenate(query_embeddings), index.embeddings, distance_metric)
        distances[:, ~index.valid] = np.inf
    folder = Path(db_path)
    identities = np.array([str(folder / rel) for rel in index.identities.tolist()], dtype=object)
    results: List[List[Any]] = []
    row = 0
    for query in queries:
        tables = []
        faces = query.faces
        count = 0 if faces is None or query.embeddings is None else len(query.embeddings)
        for face in range(count):
            assert faces is not None
            tables.append(_table(index, identities, distances[row], faces.boxes[face], limit, similarity_search,
                                 k, return_type, recognizer, distance_metric))
            row += 1
        results.append(tables)
    return results[0] if single else results


def resolve_return_type(return_type: Optional[str]) -> str:
    """``find``'s ``return_type``: ``None`` is ``"pandas"`` when pandas is installed, else ``"dict"``; ``"pandas"``
    needs pandas (:class:`MissingDependencyError` naming the extra otherwise)."""
    if return_type is None:
        try:
            import pandas  # noqa: F401
        except ImportError:
            return "dict"
        return "pandas"
    if return_type not in RETURN_TYPES:
        raise ArgumentError(f"return_type must be one of {RETURN_TYPES} or None, got {return_type!r}")
    if return_type == "pandas":
        from ..optional import require

        require("pandas", "find", "find(return_type='pandas')")
    return return_type


def _table(index: FaceIndex, identities: np.ndarray, distances: np.ndarray, box: np.ndarray, limit: float,
           similarity_search: bool, k: Optional[int], return_type: str, recognizer: Recognizer,
           metric: str) -> Any:
    """One query face's matches, nearest first, as a DataFrame or a list of dicts; ``confidence`` as ``verify``
    gives it for the same distance."""
    keep = np.isfinite(distances) if similarity_search else distances <= limit
    order = np.flatnonzero(keep)
    order = order[np.argsort(distances[order], kind="stable")][:k]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    source = (x1, y1, max(0, x2 - x1), max(0, y2 - y1))
    columns: Dict[str, Any] = {
        "identity": identities[order].tolist(),
        "hash": index.hashes[order].tolist(),
        **{name: index.boxes[order, i].tolist() for i, name in enumerate(TARGET_COLUMNS)},
        "threshold": [limit] * len(order),
        **{name: [source[i]] * len(order) for i, name in enumerate(SOURCE_COLUMNS)},
        "distance": distances[order].tolist(),
        "confidence": [recognizer.confidence(float(d), metric, bool(d <= limit)) for d in distances[order]],
    }
    if return_type == "pandas":
        import pandas as pd

        return pd.DataFrame(columns, columns=list(RESULT_COLUMNS))
    return [dict(zip(RESULT_COLUMNS, values)) for values in zip(*(columns[c] for c in RESULT_COLUMNS))]


