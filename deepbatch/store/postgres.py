"""The face database on a PostgreSQL server without extensions: vectors in a ``bytea`` column (float32), the
approximate index built on the client (usearch, as the embedded store) and kept in the database, in parts of at
most :data:`PART_BYTES` (a ``bytea`` value holds at most 1 GB).

Registration writes an image's row and its faces in one transaction, ``ON CONFLICT DO NOTHING`` on the image's
digest: concurrent writers neither duplicate nor lose an image. Schema changes take an advisory lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

from ..errors import DatabaseConnectionError
from ..optional import require
from .ann import AnnIndex, ClientIndexed
from .base import DEFAULT_MAX_NEIGHBORS

logger = logging.getLogger(__name__)

ENVIRONMENT = ("DEEPBATCH_POSTGRES_URI", "DEEPFACE_POSTGRES_URI")
SCHEMA_LOCK = 0x6465_6570  # advisory lock key taken while the schema is created or migrated
PART_BYTES = 256 << 20



def connect(connection_details: Any) -> Any:
    """A psycopg connection from a URI, a dict of ``psycopg.connect`` arguments, or the environment."""
    psycopg = require("psycopg", "database", "the PostgreSQL face database")
    details = connection_details
    if details is None:
        details = next((os.environ[name] for name in ENVIRONMENT if os.environ.get(name)), None)
    if not details:
        raise DatabaseConnectionError(
            "PostgreSQL connection information not found: pass connection_details (a URI such as "
            "'postgresql://user:password@host:5432/db', or a dict of psycopg.connect arguments) or set "
            f"${ENVIRONMENT[0]} (or ${ENVIRONMENT[1]})")
    try:
        if isinstance(details, dict):
            return psycopg.connect(**details, autocommit=True)
        if isinstance(details, str):
            return psycopg.connect(details, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseConnectionError(f"cannot connect to PostgreSQL: {exc}") from exc
    raise DatabaseConnectionError(f"connection_details must be a URI or a dict, got {type(details).__name__}")


class PostgresStore(ClientIndexed):
    """A face database in PostgreSQL, the approximate index on the client (see the module docstring)."""

    database_type = "postgres"
    complete_sync = True  # sequences are not in commit order
    serial = "BIGSERIAL"
    vector_type = "BYTEA"
    bytes_type = "BYTEA"
    placeholder = "%s"

    def __init__(self, connection_details: Any = None, connection: Any = None):
        self.owned = connection is None
        self.conn = connect(connection_details) if connection is None else connection
        self.name = f"{self.conn.info.host}:{self.conn.info.port}/{self.conn.info.dbname}"
        self.initialize_database()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Any]:
        with self.conn.cursor(binary=True) as cursor:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))

    def table_exists(self, name: str) -> bool:
        return bool(self.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0])

    def encode_vectors(self, vectors: np.ndarray) -> List[Any]:
        return [row.tobytes() for row in np.ascontiguousarray(vectors, "<f4")]

    def decode_vectors(self, values: Sequence[Any], dimensions: int) -> np.ndarray:
        return np.frombuffer(b"".join(bytes(v) for v in values), "<f4").reshape(len(values), dimensions) \
            .astype(np.float32)

    def index_key(self) -> str:
        return self.name

    def stored_index(self, config_id: int) -> Optional[AnnIndex]:
        with self.transaction(write=False):
            parts = self.query("SELECT data FROM deepbatch_indexes WHERE config_id = %s ORDER BY part", (config_id,))
        if not parts:
            return None
        return AnnIndex.restore(b"".join(bytes(p[0]) for p in parts), self.dimensions(config_id))

    def build_index(self, config_id: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS) -> None:
        data = self.index(config_id, max_neighbors_per_node).to_bytes()
        with self.transaction():
            self.execute("DELETE FROM deepbatch_indexes WHERE config_id = %s", (config_id,))
            for part, start in enumerate(range(0, len(data), PART_BYTES)):
                self.execute("INSERT INTO deepbatch_indexes (config_id, part, data) VALUES (%s, %s, %s)",
                             (config_id, part, data[start : start + PART_BYTES]))

    def close(self) -> None:
        if self.owned:
            self.conn.close()
