"""The client-side approximate nearest-neighbour index: an HNSW graph of usearch, keyed by face id.

The database is the truth and the index a cache of it: :meth:`AnnIndex.sync` adds the faces registered since the
index last looked (by anyone), so an index file that is stale, missing or unreadable costs time, never a result.
The graph keeps each vector L2-normalised and quantised to int8 (a quarter of float32's memory, and usearch's VNNI
kernels make both building and walking the graph about twice as fast as with float16); the index is asked for
:data:`REFINE` times the ``k`` requested and those candidates are re-ranked on the stored float32 vectors
(:func:`refine`), so quantisation moves a face in the candidate list, not out of the answer.
"""

from __future__ import annotations

import abc
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ..optional import require
from ..runtime.session import usable_cpus
from .base import DEFAULT_MAX_NEIGHBORS, FaceRows, SqlStore

logger = logging.getLogger(__name__)

EXPANSION_ADD = 128  # candidates kept while linking a new node (HNSW's ef_construction)
EXPANSION_SEARCH = 96  # candidates kept while searching (ef_search; docs/database.md: recall against size)
REFINE = 2  # candidates asked of the graph per face wanted, re-ranked on the float32 vectors
SYNC_PAGE = 50_000  # faces read from the database per step while catching an index up (bounds the memory)
QUANTIZATION = "i8"

_INDEXES: Dict[Tuple[str, int], AnnIndex] = {}  # per process: an index is loaded once and synced on each use
_INDEX_LOCK = threading.Lock()


class AnnIndex:
    """An HNSW index of ``dimensions``-d vectors under the cosine distance; keys are face ids."""

    def __init__(self, dimensions: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS,
                 index: Any = None):
        require("usearch", "database", "the embedded face database's approximate index")
        from usearch.index import Index

        self.dimensions = dimensions
        self.index: Any = index if index is not None else Index(
            ndim=dimensions, metric="cos", dtype=QUANTIZATION, connectivity=max_neighbors_per_node // 2,
            expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        self.upto = int(max(self.index.keys)) if len(self.index) else 0

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def restore(cls, source: Union[str, Path, bytes], dimensions: int) -> Optional[AnnIndex]:
        """An index saved by :meth:`save` or :meth:`to_bytes`, or None when it is missing or unreadable (it is
        rebuilt from the database then)."""
        require("usearch", "database", "the embedded face database's approximate index")
        from usearch.index import Index

        try:
            index: Any = Index.restore(source if isinstance(source, (bytes, bytearray)) else str(source))
        except (OSError, RuntimeError, ValueError) as exc:
            logger.warning("approximate index %s unreadable (%s); rebuilding it from the database",
                           source if not isinstance(source, (bytes, bytearray)) else "in the database", exc)
            return None
        if index is None or index.ndim != dimensions:
            return None
        index.expansion_search = EXPANSION_SEARCH
        return cls(dimensions, index=index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        keys = np.asarray(ids, np.uint64)
        fresh = ~np.asarray(self.index.contains(keys)).astype(bool)
        if fresh.any():
            # unit rows: the cosine is unchanged and int8 quantisation needs components within [-1, 1]
            self.index.add(keys[fresh], unit_rows(np.asarray(vectors, np.float32)[fresh]), threads=usable_cpus())
        self.upto = max(self.upto, int(keys.max()))

    def sync(self, store: SqlStore, config_id: int, complete: bool = False) -> int:
        """Add the faces of ``config_id`` the index lacks; how many. By default those with an id above the
        highest indexed one (ids grow in commit order in SQLite); ``complete`` compares every id (PostgreSQL's
        sequences are not in commit order)."""
        if complete:
            if store.count(config_id) == len(self.index):  # faces are never deleted: same count, same faces
                return 0
            ids = store.all_ids(config_id)
            missing = ids[~np.asarray(self.index.contains(ids.astype(np.uint64))).astype(bool)] if len(ids) else ids
            if not len(missing):
                return 0
            rows = store.fetch_by_ids(config_id, missing.tolist())
            self.add(rows.ids, rows.embeddings)
            return len(rows)
        added = 0
        while True:  # in pages: a million faces are never all in memory twice
            ids, vectors = store.ids_after(config_id, self.upto, SYNC_PAGE)
            self.add(ids, vectors)
            added += len(ids)
            if len(ids) < SYNC_PAGE:
                return added

    def search(self, queries: np.ndarray, k: int, expansion: Optional[int] = None) -> np.ndarray:
        """``(Q, k)`` int64 face ids, nearest first, -1 where fewer than ``k`` faces exist."""
        queries = unit_rows(np.atleast_2d(np.asarray(queries, np.float32)))  # as the graph's vectors: within [-1, 1]
        out = np.full((len(queries), k), -1, np.int64)
        if not len(self.index) or not len(queries):
            return out
        wanted = max(int(expansion), k) if expansion is not None else EXPANSION_SEARCH
        if self.index.expansion_search != wanted:
            self.index.expansion_search = wanted
        matches = self.index.search(queries, k, threads=1 if len(queries) == 1 else usable_cpus())
        keys = np.atleast_2d(np.asarray(matches.keys)).astype(np.int64)
        # one query gives usearch's Matches (no counts), several its BatchMatches
        counts = np.atleast_1d(np.asarray(getattr(matches, "counts", len(np.asarray(matches.keys)))))
        for row, count in enumerate(counts):
            out[row, :count] = keys[row, :count]
        return out

    def candidates(self, queries: np.ndarray, k: int, expansion: Optional[int] = None) -> np.ndarray:
        """``(Q, REFINE * k)`` face ids to re-rank with :func:`refine`, -1 where there are fewer."""
        return self.search(queries, REFINE * k, expansion)

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically (a temporary file beside it, then a rename)."""
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(handle)
        try:
            self.index.save(temporary)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def to_bytes(self) -> bytes:
        return bytes(self.index.save())


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 rows of length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)


def refine(rows: FaceRows, queries: np.ndarray, candidates: np.ndarray, k: int) -> FaceRows:
    """The union over queries of the ``k`` of each row of ``candidates`` (face ids, -1 for none) nearest to its
    query by the cosine of the float32 vectors in ``rows`` (the candidates' rows, by id), in id order."""
    queries = unit_rows(np.atleast_2d(np.asarray(queries, np.float32)))
    vectors = unit_rows(rows.embeddings)
    keep = np.zeros(len(rows), bool)
    for query, ids in zip(queries, candidates):
        ids = ids[ids >= 0]
        at = np.searchsorted(rows.ids, ids)
        at = at[(at < len(rows)) & (rows.ids[np.minimum(at, len(rows) - 1)] == ids)]
        if len(at) > k:
            at = at[np.argsort(-(vectors[at] @ query), kind="stable")[:k]]
        keep[at] = True
    return rows.subset(np.flatnonzero(keep))


class ClientIndexed(SqlStore):
    """A store whose approximate index lives on the client (:class:`AnnIndex`): loaded once per process from where
    the store keeps it (:meth:`stored_index`), completed with the faces registered since, searched and re-ranked."""

    complete_sync = False  # True where ids are not in commit order: every id is compared (see AnnIndex.sync)

    @abc.abstractmethod
    def index_key(self) -> str:
        """What tells this database apart from another in this process's index cache."""

    @abc.abstractmethod
    def stored_index(self, config_id: int) -> Optional[AnnIndex]:
        """The index saved for ``config_id``, or None when there is none or it cannot be read."""

    def index(self, config_id: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS) -> AnnIndex:
        """The approximate index of ``config_id``, loaded once per process and brought up to date."""
        key = (self.index_key(), config_id)
        with _INDEX_LOCK:
            index = _INDEXES.get(key)
            if index is None:
                index = self.stored_index(config_id)
                if index is None:
                    logger.info("no approximate index stored for configuration %d: building it", config_id)
                    index = AnnIndex(self.dimensions(config_id), max_neighbors_per_node)
                _INDEXES[key] = index
            index.sync(self, config_id, complete=self.complete_sync)
        return index

    def search_by_vector(self, config_id: int, queries: np.ndarray, k: int,
                         expansion: Optional[int] = None) -> FaceRows:
        candidates = self.index(config_id).candidates(queries, k, expansion)
        return refine(self.fetch_by_ids(config_id, candidates[candidates >= 0].tolist()), queries, candidates, k)


def forget_indexes() -> None:
    """Drop the indexes this process holds (they are reloaded from where they are stored on next use)."""
    with _INDEX_LOCK:
        _INDEXES.clear()
