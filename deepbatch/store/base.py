"""The face database's client interface, and the SQL every backend shares.

A database holds, per *embedding configuration* (recogniser, detector, alignment, L2 normalisation, input
normalisation, expansion and vector size, :class:`EmbeddingConfig`), one row per registered image (its content
digest, name, face count, or the error that stopped it) and one row per face (its box, its confidence and its
embedding, float32). A face row is written in the same transaction as its image row, and an image row is written only
if no other writer registered the same digest first (``ON CONFLICT DO NOTHING``): a registration killed at any point
leaves whole images, and two writers never duplicate one.

The backends (:mod:`~deepbatch.store.embedded`, :mod:`~deepbatch.store.postgres`, :mod:`~deepbatch.store.pgvector`)
differ in how they connect, how a vector is stored and how the approximate index is kept; the schema, its version
and its migrations, the registration writes and the exact search's reads are written once here.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..errors import DatabaseConnectionError, EmbeddingMismatchError, NothingRegisteredError, SchemaVersionError

SCHEMA_VERSION = 1
DEFAULT_MAX_NEIGHBORS = 32  # DeepFace's build_index default: links per node of the HNSW graph


@dataclass(frozen=True)
class EmbeddingConfig:
    """What makes two embeddings comparable. Vectors of different configurations are never compared."""

    model_name: str
    detector_backend: str
    aligned: bool
    l2_normalized: bool
    normalization: str
    expand_percentage: float
    dimensions: int

    def describe(self) -> str:
        return (f"model_name={self.model_name!r}, detector_backend={self.detector_backend!r}, align={self.aligned}, "
                f"l2_normalize={self.l2_normalized}, normalization={self.normalization!r}, "
                f"expand_percentage={self.expand_percentage:g} ({self.dimensions}-d)")


@dataclass
class ImageEntry:
    """One image to register: its content ``digest`` (SHA-256 hex), ``img_name``, and either its faces
    (``boxes`` ``(N, 4)`` int ``x, y, w, h`` in image pixels, ``scores`` ``(N,)``, ``embeddings`` ``(N, D)``
    float32) or the ``error`` that stopped it (a registered error row: not retried until the bytes change)."""

    digest: str
    img_name: str
    boxes: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray
    error: Optional[str] = None


@dataclass
class FaceRows:
    """Registered faces of one configuration: ``ids`` ``(N,)`` int64, ``img_names``, ``boxes`` ``(N, 4)`` int
    ``x, y, w, h``, and ``embeddings`` ``(N, D)`` float32, in ``ids`` order."""

    ids: np.ndarray
    img_names: List[str]
    boxes: np.ndarray
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, positions: np.ndarray) -> FaceRows:
        """The rows at ``positions`` (an int array), in that order."""
        return FaceRows(self.ids[positions], [self.img_names[i] for i in positions.tolist()], self.boxes[positions],
                        self.embeddings[positions])


# Migrations: MIGRATIONS[v] takes a database at schema version v to v + 1 (version 0 is an empty database). A new
# schema appends one entry and bumps SCHEMA_VERSION; a database is migrated when it is opened.
def _create_v1(store: SqlStore) -> None:
    for statement in (
        "CREATE TABLE IF NOT EXISTS deepbatch_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS deepbatch_configs (
            id {store.serial} PRIMARY KEY, model_name TEXT NOT NULL, detector_backend TEXT NOT NULL,
            aligned INTEGER NOT NULL, l2_normalized INTEGER NOT NULL, normalization TEXT NOT NULL,
            expand_percentage REAL NOT NULL, dimensions INTEGER NOT NULL,
            UNIQUE (model_name, detector_backend, aligned, l2_normalized, normalization, expand_percentage))""",
        """CREATE TABLE IF NOT EXISTS deepbatch_images (
            config_id INTEGER NOT NULL REFERENCES deepbatch_configs (id), digest TEXT NOT NULL,
            img_name TEXT NOT NULL, faces INTEGER NOT NULL, error TEXT, PRIMARY KEY (config_id, digest))""",
        f"""CREATE TABLE IF NOT EXISTS deepbatch_faces (
            id {store.serial} PRIMARY KEY, config_id INTEGER NOT NULL, digest TEXT NOT NULL,
            face_index INTEGER NOT NULL, img_name TEXT NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
            w INTEGER NOT NULL, h INTEGER NOT NULL, face_confidence REAL NOT NULL,
            embedding {store.vector_type} NOT NULL, UNIQUE (config_id, digest, face_index),
            FOREIGN KEY (config_id, digest) REFERENCES deepbatch_images (config_id, digest))""",
        "CREATE INDEX IF NOT EXISTS deepbatch_faces_config ON deepbatch_faces (config_id, id)",
        f"""CREATE TABLE IF NOT EXISTS deepbatch_indexes (
            config_id INTEGER NOT NULL REFERENCES deepbatch_configs (id), part INTEGER NOT NULL,
            data {store.bytes_type} NOT NULL, PRIMARY KEY (config_id, part))""",
    ):
        store.execute(statement)


MIGRATIONS: List[Callable[[SqlStore], None]] = [_create_v1]


class FaceStore(abc.ABC):
    """The client interface of a face database (DeepFace's: initialise, insert, fetch all, search by vector,
    close), batched: every call takes or returns many rows."""

    database_type: str = ""

    @abc.abstractmethod
    def initialize_database(self) -> None:
        """Create or migrate the schema to :data:`SCHEMA_VERSION`."""

    @abc.abstractmethod
    def config_id(self, config: EmbeddingConfig, create: bool = False) -> int:
        """The id of ``config``; with ``create`` a new one is added, otherwise a configuration that is not
        registered raises :class:`EmbeddingMismatchError` naming those that are."""

    @abc.abstractmethod
    def registered_digests(self, config_id: int) -> Set[str]:
        """Digests of the images registered (faces or error rows) under ``config_id``."""

    def known_digests(self, config_id: int, digests: Sequence[str]) -> Set[str]:
        """Those of ``digests`` registered under ``config_id`` (a few images, without reading every digest)."""
        return self.registered_digests(config_id) & set(digests)

    @abc.abstractmethod
    def insert_embeddings(self, config_id: int, images: Sequence[ImageEntry]) -> Tuple[int, int]:
        """Write ``images`` in one transaction, skipping any whose digest is registered (by anyone, concurrently
        too); ``(images written, faces written)``."""

    @abc.abstractmethod
    def fetch_all_embeddings(self, config_id: int) -> FaceRows:
        """Every face of ``config_id``, by id."""

    @abc.abstractmethod
    def search_by_vector(self, config_id: int, queries: np.ndarray, k: int,
                         expansion: Optional[int] = None) -> FaceRows:
        """Approximate search: the union of the ``k`` nearest faces (cosine) of each row of ``queries``;
        ``expansion`` candidates are kept while searching the graph (HNSW's ``ef_search``; None: the default)."""

    @abc.abstractmethod
    def build_index(self, config_id: int, max_neighbors_per_node: int = DEFAULT_MAX_NEIGHBORS) -> None:
        """Bring the approximate index of ``config_id`` up to date with every registered face."""

    def after_insert(self, config_id: int) -> None:  # noqa: B027 (a hook: most backends need nothing here)
        """Called once a registration has written all it had (the embedded store saves its index)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (unless the caller gave it)."""

    def __enter__(self) -> FaceStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SqlStore(FaceStore):
    """The schema, writes and reads shared by SQLite and PostgreSQL. Statements use ``?`` placeholders, which a
    PostgreSQL backend turns into ``%s``."""

    serial = "INTEGER"
    vector_type = "BLOB"
    bytes_type = "BLOB"
    placeholder = "?"

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in the current transaction and return its cursor."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Any]:
        """Every row of a read (PostgreSQL reads vectors in binary)."""
        return list(self.execute(sql, params).fetchall())

    @abc.abstractmethod
    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager:
        """A transaction that commits on success and rolls back on an exception; ``write`` takes the writer's
        lock up front where the database has one (SQLite), so concurrent writers queue instead of failing."""

    @abc.abstractmethod
    def encode_vectors(self, vectors: np.ndarray) -> List[Any]:
        """Column values for ``(N, D)`` float32 vectors."""

    @abc.abstractmethod
    def decode_vectors(self, values: Sequence[Any], dimensions: int) -> np.ndarray:
        """``(N, D)`` float32 from column values."""

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def lock_schema(self) -> None:
        """Serialise schema changes between processes (SQLite's write transaction already does)."""

    def schema_version(self) -> int:
        if not self.table_exists("deepbatch_meta"):
            return 0
        row = self.execute(self.sql("SELECT value FROM deepbatch_meta WHERE key = ?"), ("schema_version",)).fetchone()
        return int(row[0]) if row else 0

    @abc.abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether table ``name`` exists."""

    def initialize_database(self) -> None:
        with self.transaction():
            self.lock_schema()
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database has schema version {version}, newer than this deepbatch reads "
                    f"({SCHEMA_VERSION}); upgrade deepbatch")
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](self)
                self.execute(self.sql("DELETE FROM deepbatch_meta WHERE key = ?"), ("schema_version",))
                self.execute(self.sql("INSERT INTO deepbatch_meta (key, value) VALUES (?, ?)"),
                             ("schema_version", str(step + 1)))
            self.execute(self.sql("INSERT INTO deepbatch_meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING"),
                         ("database_type", self.database_type))
            stored = self.execute(self.sql("SELECT value FROM deepbatch_meta WHERE key = ?"),
                                  ("database_type",)).fetchone()[0]
            if stored != self.database_type:
                raise DatabaseConnectionError(
                    f"this database was created with database_type={stored!r}, which stores vectors differently; "
                    f"open it with database_type={stored!r}")

    def configs(self) -> Dict[int, EmbeddingConfig]:
        rows = self.execute("SELECT id, model_name, detector_backend, aligned, l2_normalized, normalization, "
                            "expand_percentage, dimensions FROM deepbatch_configs ORDER BY id").fetchall()
        return {int(r[0]): EmbeddingConfig(r[1], r[2], bool(r[3]), bool(r[4]), r[5], float(r[6]), int(r[7]))
                for r in rows}

    def config_id(self, config: EmbeddingConfig, create: bool = False) -> int:
        key = (config.model_name, config.detector_backend, int(config.aligned), int(config.l2_normalized),
               config.normalization, float(config.expand_percentage))
        select = self.sql("SELECT id, dimensions FROM deepbatch_configs WHERE model_name = ? AND detector_backend = ? "
                          "AND aligned = ? AND l2_normalized = ? AND normalization = ? AND expand_percentage = ?")
        with self.transaction(write=create):
            row = self.execute(select, key).fetchone()
            if row is None and create:
                self.execute(self.sql("INSERT INTO deepbatch_configs (model_name, detector_backend, aligned, "
                                      "l2_normalized, normalization, expand_percentage, dimensions) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                             (*key, int(config.dimensions)))
                row = self.execute(select, key).fetchone()
            if row is not None and int(row[1]) != config.dimensions:
                raise EmbeddingMismatchError(
                    f"the database holds {int(row[1])}-d embeddings for {config.describe()}, not "
                    f"{config.dimensions}-d: was the model changed? Use another database for it")
            if row is None:
                held = [c.describe() for c in self.configs().values()]
                if not held:
                    raise NothingRegisteredError("nothing is registered in the database yet; call register first")
                raise EmbeddingMismatchError(
                    f"the database holds no embeddings for {config.describe()}; it holds: " + "; ".join(held)
                    + ". Search with the settings the photos were registered with, or register them with these")
            config_id = int(row[0])
        self.on_config(config_id, config)
        return config_id

    def on_config(self, config_id: int, config: EmbeddingConfig) -> None:
        """Called when a configuration is looked up (pgvector creates its vector index here)."""

    def registered_digests(self, config_id: int) -> Set[str]:
        with self.transaction(write=False):
            rows = self.execute(self.sql("SELECT digest FROM deepbatch_images WHERE config_id = ?"),
                                (config_id,)).fetchall()
        return {r[0] for r in rows}

    def known_digests(self, config_id: int, digests: Sequence[str]) -> Set[str]:
        found: Set[str] = set()
        with self.transaction(write=False):
            for part in chunks(sorted(set(digests)), 500):
                marks = ", ".join("?" * len(part))
                rows = self.execute(self.sql(f"SELECT digest FROM deepbatch_images WHERE config_id = ? AND digest "
                                             f"IN ({marks})"), (config_id, *part)).fetchall()
                found.update(r[0] for r in rows)
        return found

    def insert_embeddings(self, config_id: int, images: Sequence[ImageEntry]) -> Tuple[int, int]:
        claim = self.sql("INSERT INTO deepbatch_images (config_id, digest, img_name, faces, error) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
        written, faces = 0, []
        with self.transaction():
            for image in images:
                cursor = self.execute(claim, (config_id, image.digest, image.img_name, len(image.embeddings),
                                              image.error))
                if cursor.rowcount != 1:  # registered by another writer (or twice in this batch)
                    continue
                written += 1
                for face in range(len(image.embeddings)):
                    x, y, w, h = (int(v) for v in image.boxes[face])
                    faces.append((config_id, image.digest, face, image.img_name, x, y, w, h,
                                  float(image.scores[face]), image.embeddings[face]))
            if faces:
                self.write_faces(faces)
        return written, len(faces)

    def write_faces(self, faces: List[Tuple[Any, ...]]) -> None:
        """Insert face rows ``(config_id, digest, face_index, img_name, x, y, w, h, face_confidence, embedding)``
        in the current transaction."""
        vectors = self.encode_vectors(np.stack([f[-1] for f in faces]))
        self.executemany(self.sql("INSERT INTO deepbatch_faces (config_id, digest, face_index, img_name, x, y, w, h, "
                                  "face_confidence, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                         [(*f[:-1], v) for f, v in zip(faces, vectors)])

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row in the current transaction."""

    def dimensions(self, config_id: int) -> int:
        """The vector size of ``config_id`` (a configuration never changes: read once per connection)."""
        known: Dict[int, int] = self.__dict__.setdefault("_dimensions", {})
        if config_id not in known:
            row = self.execute(self.sql("SELECT dimensions FROM deepbatch_configs WHERE id = ?"),
                               (config_id,)).fetchone()
            known[config_id] = int(row[0])
        return known[config_id]

    def _rows(self, where: str, params: Sequence[Any], config_id: int) -> FaceRows:
        with self.transaction(write=False):
            dimensions = self.dimensions(config_id)
            rows = self.query(self.sql(f"SELECT id, img_name, x, y, w, h, embedding FROM deepbatch_faces "
                                       f"WHERE {where} ORDER BY id"), params)
        return self.face_rows(rows, dimensions)

    def face_rows(self, rows: Sequence[Sequence[Any]], dimensions: int) -> FaceRows:
        if not rows:
            return FaceRows(np.zeros(0, np.int64), [], np.zeros((0, 4), np.int64),
                            np.zeros((0, dimensions), np.float32))
        return FaceRows(np.array([r[0] for r in rows], np.int64), [r[1] for r in rows],
                        np.array([r[2:6] for r in rows], np.int64),
                        self.decode_vectors([r[6] for r in rows], dimensions))

    def fetch_all_embeddings(self, config_id: int) -> FaceRows:
        return self._rows("config_id = ?", (config_id,), config_id)

    def fetch_by_ids(self, config_id: int, ids: Sequence[int]) -> FaceRows:
        ids = sorted({int(i) for i in ids})
        if not ids:
            return self.face_rows([], self.dimensions(config_id))
        marks = ", ".join("?" * len(ids))
        return self._rows(f"config_id = ? AND id IN ({marks})", (config_id, *ids), config_id)

    def ids_after(self, config_id: int, after: int, limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(ids, embeddings)`` of the faces of ``config_id`` with an id above ``after``, by id; the first
        ``limit`` of them when given."""
        last = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.transaction(write=False):
            dimensions = self.dimensions(config_id)
            rows = self.query(self.sql(f"SELECT id, embedding FROM deepbatch_faces WHERE config_id = ? AND id > ? "
                                       f"ORDER BY id{last}"), (config_id, int(after)))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, dimensions), np.float32)
        return np.array([r[0] for r in rows], np.int64), self.decode_vectors([r[1] for r in rows], dimensions)

    def count(self, config_id: int) -> int:
        """How many faces ``config_id`` holds."""
        with self.transaction(write=False):
            return int(self.execute(self.sql("SELECT COUNT(*) FROM deepbatch_faces WHERE config_id = ?"),
                                    (config_id,)).fetchone()[0])

    def all_ids(self, config_id: int) -> np.ndarray:
        with self.transaction(write=False):
            rows = self.execute(self.sql("SELECT id FROM deepbatch_faces WHERE config_id = ? ORDER BY id"),
                                (config_id,)).fetchall()
        return np.array([r[0] for r in rows], np.int64)

    def errors(self, config_id: int) -> List[Tuple[str, str]]:
        """``(img_name, error)`` of the error rows of ``config_id``."""
        with self.transaction(write=False):
            return [(r[0], r[1]) for r in self.execute(
                self.sql("SELECT img_name, error FROM deepbatch_images WHERE config_id = ? AND error IS NOT NULL "
                         "ORDER BY img_name"), (config_id,)).fetchall()]


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
