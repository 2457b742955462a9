"""The embedded face database: one SQLite file, and one usearch HNSW index file per configuration beside it.

SQLite because it needs no server and its transactions survive a killed process (write-ahead log, synchronous
commits): a registration killed at any point leaves the file at its last committed chunk. Writers from several
processes queue on SQLite's write lock (``BEGIN IMMEDIATE`` and a busy timeout), so face ids grow in commit order,
which lets the approximate index catch up with "every id above the highest I hold".

The index (``<database>-ann-<config id>.usearch``) is a cache of the faces table: it is updated after every
committed chunk while registering, saved atomically at the end, and brought up to date from the table whenever it
is opened; a missing, stale or corrupt file is rebuilt, never trusted over the table.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

from ..errors import DatabaseConnectionError
from .ann import AnnIndex, ClientIndexed
from .base import DEFAULT_MAX_NEIGHBORS

ENVIRONMENT = "DEEPBATCH_DATABASE_PATH"
BUSY_TIMEOUT_S = 600.0  # how long a writer waits for another's transaction (a chunk of images) to commit



def database_path(connection_details: Any) -> Path:
    """The database file from ``connection_details`` (a path, or a dict with ``"path"``) or
    ``$DEEPBATCH_DATABASE_PATH``."""
    details = connection_details if connection_details is not None else os.environ.get(ENVIRONMENT)
    if isinstance(details, dict):
        details = details.get("path")
    if not details:
        raise DatabaseConnectionError(
            "the embedded face database needs a file: pass connection_details='faces.db' (or {'path': ...}) or "
            f"set ${ENVIRONMENT}")
    if not isinstance(details, (str, os.PathLike)):
        raise DatabaseConnectionError(f"connection_details for the embedded database must be a path or a dict with "
                                      f"'path', got {type(details).__name__}")
    return Path(details)


class EmbeddedStore(ClientIndexed):
    """A face database in one SQLite file (see the module docstring)."""

    database_type = "embedded"
    serial = "INTEGER"  # SQLite's rowid; rows are never deleted, so ids only grow
    vector_type = "BLOB"

    def __init__(self, connection_details: Any = None, connection: Optional[sqlite3.Connection] = None):
        self.owned = connection is None
        if connection is not None:
            row = connection.execute("PRAGMA database_list").fetchone()
            self.path = Path(row[2]) if row and row[2] else Path(":memory:")
            self.conn = connection
        else:
            self.path = database_path(connection_details)
            if self.path.parent and not self.path.parent.is_dir():
                raise DatabaseConnectionError(f"the folder of the database {self.path} does not exist")
            try:
                self.conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                            check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise DatabaseConnectionError(f"cannot open the face database {self.path}: {exc}") from exc
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self.initialize_database()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def table_exists(self, name: str) -> bool:
        return self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def encode_vectors(self, vectors: np.ndarray) -> List[Any]:
        return [row.tobytes() for row in np.ascontiguousarray(vectors, "<f4")]

    def decode_vectors(self, values: Sequence[Any], dimensions: int) -> np.ndarray:
        return np.frombuffer(b"".join(values), "<f4").reshape(len(values), dimensions).astype(np.float32)

    def index_path(self, config_id: int) -> Path:
        return self.path.with_name(f"{self.path.name}-ann-{config_id}.usearch")

    def index_key(self) -> str:
        return str(self.path.resolve())

    def stored_index(self, config_id: int) -> Optional[AnnIndex]:
        path = self.index_path(config_id)
        return AnnIndex.restore(path, self.dimensions(config_id)) if path.is_file() else None

    def build_index(self, config_id: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS) -> None:
        self.index(config_id, max_neighbors_per_node).save(self.index_path(config_id))

    def after_insert(self, config_id: int) -> None:
        self.build_index(config_id)

    def close(self) -> None:
        if self.owned:
            self.conn.close()

