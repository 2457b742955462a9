"""The face database on PostgreSQL with pgvector: vectors in a ``vector`` column and an HNSW index in the server.

One table holds every configuration, so the column has no fixed size; each configuration gets its own partial
expression index, ``USING hnsw ((embedding::vector(D)) vector_cosine_ops) WHERE config_id = N``, which the server
keeps up to date as faces are inserted. An approximate search sets ``hnsw.ef_search`` for the session and
orders by ``embedding::vector(D) <=> query``. Vectors are read in pgvector's binary form (big-endian float32).
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Sequence

import numpy as np

from .ann import EXPANSION_ADD, EXPANSION_SEARCH
from .base import DEFAULT_MAX_NEIGHBORS, FaceRows
from .postgres import PostgresStore


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a float32 vector; ``%.9g`` gives back the same float32."""
    return "[" + ",".join(f"{v:.9g}" for v in vector.tolist()) + "]"


class PgvectorStore(PostgresStore):
    """A face database in PostgreSQL with pgvector (see the module docstring)."""

    database_type = "pgvector"
    vector_type = "vector"
    _ef_search = 0

    def initialize_database(self) -> None:
        with self.transaction():
            self.lock_schema()
            self.execute("CREATE EXTENSION IF NOT EXISTS vector")
        super().initialize_database()

    def encode_vectors(self, vectors: np.ndarray) -> List[Any]:
        return [vector_text(row) for row in np.asarray(vectors, np.float32)]

    def decode_vectors(self, values: Sequence[Any], dimensions: int) -> np.ndarray:
        out = np.empty((len(values), dimensions), np.float32)
        for i, value in enumerate(values):
            data = bytes(value)
            size, = struct.unpack(">H", data[:2])
            out[i] = np.frombuffer(data, ">f4", count=size, offset=4)
        return out

    def index_name(self, config_id: int) -> str:
        return f"deepbatch_faces_hnsw_{int(config_id)}"

    def build_index(self, config_id: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS) -> None:
        """Create the configuration's HNSW index if it does not exist (the server maintains it from then on)."""
        dimensions = self.dimensions(config_id)
        # under the schema lock: two writers finishing at once would otherwise race on the index's name, and
        # CREATE INDEX IF NOT EXISTS fails for the second with a duplicate key in pg_class
        with self.transaction():
            self.lock_schema()
            self.execute(f"CREATE INDEX IF NOT EXISTS {self.index_name(config_id)} ON deepbatch_faces USING hnsw "
                         f"((embedding::vector({dimensions})) vector_cosine_ops) "
                         f"WITH (m = {int(max_neighbors_per_node) // 2}, ef_construction = {EXPANSION_ADD}) "
                         f"WHERE config_id = {int(config_id)}")
        # fresh statistics: without them the planner guesses a few rows per configuration and sorts them all
        # instead of walking the HNSW index
        self.execute("ANALYZE deepbatch_faces")

    def after_insert(self, config_id: int) -> None:
        self.build_index(config_id)

    def search_by_vector(self, config_id: int, queries: np.ndarray, k: int,
                         expansion: Optional[int] = None) -> FaceRows:
        dimensions = self.dimensions(config_id)
        # config_id and the size are integers written into the statement so the planner matches the partial index
        statement = (f"SELECT id, img_name, x, y, w, h, embedding FROM deepbatch_faces WHERE config_id = "
                     f"{int(config_id)} ORDER BY embedding::vector({dimensions}) <=> %s::vector({dimensions}) "
                     f"LIMIT {int(k)}")
        rows: List[Any] = []
        seen = set()
        ef_search = max(int(expansion or EXPANSION_SEARCH), int(k))
        if ef_search != self._ef_search:  # a session setting: one round trip per change, not per query
            self.execute(f"SET hnsw.ef_search = {ef_search}")
            self._ef_search = ef_search
        for query in np.atleast_2d(np.asarray(queries, np.float32)):
            for row in self.query(statement, (vector_text(query),)):
                if row[0] not in seen:
                    seen.add(row[0])
                    rows.append(row)
        rows.sort(key=lambda r: r[0])
        return self.face_rows(rows, dimensions)
