"""Face databases behind one client interface (:class:`~deepbatch.store.base.FaceStore`).

``database_type`` names the backend: ``"embedded"`` (one SQLite file and a usearch index beside it, no server),
``"postgres"`` (PostgreSQL; vectors in a table, the approximate index built on the client and stored in the
database) and ``"pgvector"`` (PostgreSQL with the pgvector extension; vectors and an HNSW index in the server).
"""

from __future__ import annotations

from typing import Any, Tuple

from ..errors import ArgumentError
from .base import FaceStore

DATABASE_TYPES: Tuple[str, ...] = ("embedded", "postgres", "pgvector")


def open_store(database_type: str = "embedded", connection_details: Any = None, connection: Any = None) -> FaceStore:
    """A client for ``database_type``, connected with ``connection`` (an open connection, left open on
    :meth:`~FaceStore.close`), ``connection_details`` (a path or a dict for the embedded store; a URI or a dict
    of psycopg's ``connect`` arguments for PostgreSQL) or, when both are None, the environment
    (``$DEEPBATCH_DATABASE_PATH``; ``$DEEPBATCH_POSTGRES_URI``, then DeepFace's ``$DEEPFACE_POSTGRES_URI``)."""
    if database_type == "embedded":
        from .embedded import EmbeddedStore

        return EmbeddedStore(connection_details, connection)
    if database_type == "postgres":
        from .postgres import PostgresStore

        return PostgresStore(connection_details, connection)
    if database_type == "pgvector":
        from .pgvector import PgvectorStore

        return PgvectorStore(connection_details, connection)
    raise ArgumentError(f"database_type must be one of {DATABASE_TYPES}, got {database_type!r}")
