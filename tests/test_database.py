"""The face database: register, search and build_index on the embedded store and on real PostgreSQL servers.

Every backend registers the same photos; exact search must give the same identities and distances on all of them.
Crash and concurrency tests run real subprocesses: one killed with SIGKILL mid-registration, two registering the
same photos at once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from database_servers import pgvector_server, postgres_server

from deepbatch.database import RESULT_COLUMNS, build_index, image_digest, register, search
from deepbatch.errors import DatabaseConnectionError, EmbeddingMismatchError, NothingRegisteredError, SchemaVersionError
from deepbatch.store import open_store

pytest.importorskip("usearch", reason="usearch is not installed (pip install -e '.[database]')")

BACKENDS = ("embedded", "postgres", "pgvector")
PHOTOS = ("couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg")
SUBPROCESS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def servers() -> Iterator[Dict[str, Callable[[], str]]]:
    made: Dict[str, Any] = {}
    contexts = {"postgres": postgres_server, "pgvector": pgvector_server}
    opened = []
    try:
        for name, context in contexts.items():
            manager = context()
            try:
                made[name] = manager.__enter__()
                opened.append(manager)
            except pytest.skip.Exception as exc:
                made[name] = exc
        yield made
    finally:
        for manager in reversed(opened):
            manager.__exit__(None, None, None)


def details(backend: str, servers: Dict[str, Any], tmp: Path) -> str:
    """A fresh, empty database of ``backend``: its connection details."""
    if backend == "embedded":
        tmp.mkdir(parents=True, exist_ok=True)
        return str(tmp / "faces.db")
    made = servers[backend]
    if isinstance(made, BaseException):
        pytest.skip(f"no {backend} server: {made}")
    return made()


@pytest.fixture(scope="module")
def photos(dataset_dir: Path, weights_dir: Path) -> List[str]:
    return [str(dataset_dir / name) for name in PHOTOS]


@pytest.fixture(scope="module")
def every_photo(dataset_dir: Path, weights_dir: Path) -> List[str]:
    return sorted(str(path) for path in dataset_dir.glob("*.jpg"))


@pytest.fixture(scope="module", params=BACKENDS)
def registered(request: pytest.FixtureRequest, servers: Dict[str, Any], photos: List[str],
               tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, str, Dict[str, Any]]:
    backend = request.param
    where = details(backend, servers, tmp_path_factory.mktemp(backend))
    result = register(photos, database_type=backend, connection_details=where, batch_size=4, commit_every=3)
    return backend, where, result


def test_register_writes_every_face_once(registered: Tuple[str, str, Dict[str, Any]]) -> None:
    _, _, result = registered
    assert result["images"] == len(PHOTOS)
    assert result["inserted"] == len(PHOTOS) + 1  # couple.jpg holds two faces
    assert result["errors"] == [] and result["skipped"] == 0


def test_a_second_registration_skips_what_is_registered(registered: Tuple[str, str, Dict[str, Any]],
                                                         photos: List[str]) -> None:
    backend, where, _ = registered
    again = register(photos, database_type=backend, connection_details=where)
    assert (again["inserted"], again["images"], again["skipped"]) == (0, 0, len(PHOTOS))


def test_search_finds_each_photo_itself_first(registered: Tuple[str, str, Dict[str, Any]], photos: List[str]) -> None:
    backend, where, _ = registered
    tables = search(photos[1:4], database_type=backend, connection_details=where, return_type="dict")
    assert [len(faces) for faces in tables] == [1, 1, 1]
    for photo, faces in zip(photos[1:4], tables):
        best = faces[0][0]
        assert best["img_name"] == photo
        assert best["distance"] == pytest.approx(0.0, abs=1e-6)
        assert list(best) == list(RESULT_COLUMNS)


def test_ann_search_ranks_like_exact_search(registered: Tuple[str, str, Dict[str, Any]], photos: List[str]) -> None:
    backend, where, _ = registered
    build_index(database_type=backend, connection_details=where)
    exact = search(photos, database_type=backend, connection_details=where, k=3, similarity_search=True,
                   return_type="dict")
    ann = search(photos, database_type=backend, connection_details=where, k=3, similarity_search=True,
                 search_method="ann", return_type="dict")
    for exact_faces, ann_faces in zip(exact, ann):
        for e, a in zip(exact_faces, ann_faces):
            assert [r["img_name"] for r in a] == [r["img_name"] for r in e]
            assert [r["distance"] for r in a] == [r["distance"] for r in e]


def test_exact_search_is_the_same_on_every_backend(servers: Dict[str, Any], photos: List[str],
                                                   tmp_path: Path) -> None:
    answers = {}
    for backend in BACKENDS:
        made = servers.get(backend)
        if isinstance(made, BaseException):
            pytest.skip(f"no {backend} server: {made}")
        where = details(backend, servers, tmp_path / backend)
        register(photos, database_type=backend, connection_details=where, batch_size=8)
        tables = search(photos[:3], database_type=backend, connection_details=where, similarity_search=True,
                        return_type="dict")
        answers[backend] = [[(r["img_name"], r["distance"], r["target_x"], r["target_w"]) for r in table]
                            for faces in tables for table in faces]
    assert answers["postgres"] == answers["embedded"]
    assert answers["pgvector"] == answers["embedded"]


def test_search_with_another_model_is_an_error(registered: Tuple[str, str, Dict[str, Any]], photos: List[str]) -> None:
    backend, where, _ = registered
    with pytest.raises(EmbeddingMismatchError, match="holds no embeddings for model_name='arcface_mbf'.*"
                                                     "l2_normalize=True.*it holds: model_name='arcface_mbf'"):
        search(photos[1], database_type=backend, connection_details=where, l2_normalize=True)


def test_search_of_an_empty_database_is_an_error(tmp_path: Path, photos: List[str]) -> None:
    with pytest.raises(NothingRegisteredError, match="call register first"):
        search(photos[1], connection_details=str(tmp_path / "empty.db"))


def test_a_corrupt_photo_is_an_error_row_and_the_rest_is_registered(tmp_path: Path, photos: List[str]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(photos[1]).read_bytes()[:2000])
    db = str(tmp_path / "faces.db")
    result = register([photos[2], str(broken), photos[3]], connection_details=db)
    assert (result["images"], result["inserted"]) == (3, 2)
    assert [e["img_name"] for e in result["errors"]] == [str(broken)]
    assert "ImageDecodeError" in result["errors"][0]["error"]
    with open_store("embedded", db) as store:
        config_id = next(iter(store.configs()))
        assert [name for name, _ in store.errors(config_id)] == [str(broken)]
    assert register([str(broken)], connection_details=db)["skipped"] == 1  # the same bytes are not retried


def test_register_takes_a_folder_and_a_stream(tmp_path: Path, photos: List[str]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[1:3]:
        (folder / Path(photo).name).write_bytes(Path(photo).read_bytes())
    db = str(tmp_path / "faces.db")
    assert register(str(folder), connection_details=db)["images"] == 2
    stream = (Path(p).read_bytes() for p in photos[1:4])
    result = register(stream, connection_details=db)
    assert (result["skipped"], result["images"]) == (2, 1)  # the same bytes under another name are the same photo
    with open_store("embedded", db) as store:
        rows = store.fetch_all_embeddings(next(iter(store.configs())))
    assert rows.img_names[-1] == f"sha256:{image_digest(photos[3])[0]}"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "faces.db"
    open_store("embedded", str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE deepbatch_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="schema version 99, newer than this deepbatch reads"):
        open_store("embedded", str(db))


def test_missing_connection_details_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPBATCH_DATABASE_PATH", raising=False)
    with pytest.raises(DatabaseConnectionError, match="DEEPBATCH_DATABASE_PATH"):
        open_store("embedded")


def test_the_environment_names_the_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEEPBATCH_DATABASE_PATH", str(tmp_path / "env.db"))
    open_store("embedded").close()
    assert (tmp_path / "env.db").is_file()


def test_a_stale_index_file_catches_up(tmp_path: Path, photos: List[str]) -> None:
    from deepbatch.store.ann import forget_indexes

    db = str(tmp_path / "faces.db")
    register(photos[1:3], connection_details=db)
    with open_store("embedded", db) as store:
        config_id = next(iter(store.configs()))
        stale = store.index_path(config_id).read_bytes()
    register(photos[3:5], connection_details=db)
    with open_store("embedded", db) as store:
        store.index_path(config_id).write_bytes(stale)
    forget_indexes()
    tables = search(photos[4], connection_details=db, search_method="ann", return_type="dict")
    assert tables[0][0]["img_name"] == photos[4]


def test_a_corrupt_index_file_is_rebuilt_from_the_table(tmp_path: Path, photos: List[str]) -> None:
    from deepbatch.store.ann import forget_indexes

    db = str(tmp_path / "faces.db")
    register(photos[1:5], connection_details=db)
    with open_store("embedded", db) as store:
        config_id = next(iter(store.configs()))
        store.index_path(config_id).write_bytes(b"not an index" * 100)
    forget_indexes()
    tables = search(photos[3], connection_details=db, search_method="ann", return_type="dict")
    assert tables[0][0]["img_name"] == photos[3]
    with open_store("embedded", db) as store:
        assert len(store.index(config_id)) == store.count(config_id)


SEARCH_TWICE = """
import json, sys
import deepbatch
photo, where = json.loads(sys.argv[1])
deepbatch.register([photo], connection_details=where)
first = deepbatch.search(photo, connection_details=where, return_type="dict")
second = deepbatch.search(photo, connection_details=where, return_type="dict")
print(json.dumps([first[0][0]["img_name"], second[0][0]["img_name"]]))
"""


def test_the_package_search_is_still_the_function_after_a_search(tmp_path: Path, photos: List[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", SEARCH_TWICE, json.dumps([photos[1], str(tmp_path / "faces.db")])],
                          capture_output=True, text=True, env=env, timeout=SUBPROCESS_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [photos[1], photos[1]]


SYNTHETIC_SIZE = 3000
SYNTHETIC_QUERIES = 50
MIN_RECALL = 0.95  # the scale target's recall@10 against exact search


@pytest.mark.parametrize("backend", BACKENDS)
def test_approximate_search_recalls_the_exact_top_ten(backend: str, servers: Dict[str, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from deepbatch.store import ann
    from deepbatch.store.base import EmbeddingConfig, ImageEntry

    monkeypatch.setattr(ann, "SYNC_PAGE", 700)  # the index catches up in several pages
    rng = np.random.default_rng(0)
    # norms about 80, as unnormalised embeddings (the graph holds them normalised)
    vectors = 10 * rng.standard_normal((SYNTHETIC_SIZE, 64)).astype(np.float32)
    queries = vectors[:SYNTHETIC_QUERIES] + 5 * rng.standard_normal((SYNTHETIC_QUERIES, 64)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ unit.T), axis=1)[:, :10]
    box, score = np.zeros((1, 4), np.int64), np.ones(1, np.float32)
    with open_store(backend, details(backend, servers, tmp_path)) as store:
        config_id = store.config_id(EmbeddingConfig("synthetic", "none", True, False, "base", 0.0, 64), create=True)
        store.insert_embeddings(config_id, [ImageEntry(f"{i:064x}", str(i), box, score, vectors[i : i + 1])
                                            for i in range(SYNTHETIC_SIZE)])
        store.build_index(config_id)
        position = {int(face): i for i, face in enumerate(store.all_ids(config_id))}
        found = [{position[int(face)] for face in store.search_by_vector(config_id, query[None], 10).ids}
                 for query in queries]
    assert all(len(f) == 10 for f in found)
    recall = np.mean([len(f & set(want.tolist())) / 10 for f, want in zip(found, exact)])
    assert recall >= MIN_RECALL


# Crash and concurrency: real processes on the same database.
REGISTER = """
import json, os, sys, time
from deepbatch.database import register
paths, backend, where, hold_after, hold_s = json.loads(sys.argv[1])

def held_paths():
    for position, path in enumerate(paths):
        if position == hold_after:
            time.sleep(hold_s)
        yield path

print(json.dumps(register(held_paths(), database_type=backend, connection_details=where, batch_size=2,
                          commit_every=2)))
"""


def _spawn(paths: List[str], backend: str, where: str, hold_after: int = -1) -> subprocess.Popen:
    """A registration of ``paths`` in a child process; with ``hold_after``, its input stream stalls before that
    image, so the process can be killed while some images are written and others are not."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    arguments = json.dumps([paths, backend, where, hold_after, SUBPROCESS_TIMEOUT_S])
    return subprocess.Popen([sys.executable, "-c", REGISTER, arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _images(backend: str, where: str) -> List[Tuple[str, int]]:
    with open_store(backend, where) as store:
        if not store.configs():
            return []
        config_id = next(iter(store.configs()))
        rows = store.query(store.sql("SELECT i.digest, i.faces, COUNT(f.id) FROM deepbatch_images i LEFT JOIN "
                                     "deepbatch_faces f ON f.config_id = i.config_id AND f.digest = i.digest "
                                     "WHERE i.config_id = ? GROUP BY i.digest, i.faces"), (config_id,))
    for digest, faces, stored in rows:
        assert faces == stored, f"image {digest} claims {faces} faces, {stored} stored"
    return sorted((r[0], int(r[1])) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_registration_leaves_whole_images_and_resumes(backend: str, servers: Dict[str, Any],
                                                              every_photo: List[str], tmp_path: Path) -> None:
    where = details(backend, servers, tmp_path)
    writer = _spawn(every_photo, backend, where, hold_after=len(every_photo) - 1)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    while time.monotonic() < deadline and writer.poll() is None:
        if len(_images(backend, where)) >= 2:
            break
        time.sleep(0.1)
    writer.send_signal(signal.SIGKILL)
    writer.wait(SUBPROCESS_TIMEOUT_S)
    before = _images(backend, where)
    assert 2 <= len(before) < len(every_photo), "the kill should land mid-registration"
    resumed = register(every_photo, database_type=backend, connection_details=where)
    assert resumed["skipped"] == len(before)
    after = _images(backend, where)
    assert len(after) == len(every_photo) and set(before) <= set(after)
    assert sum(faces for _, faces in after) == sum(faces for _, faces in before) + resumed["inserted"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_writers_lose_and_duplicate_nothing(backend: str, servers: Dict[str, Any], photos: List[str],
                                                tmp_path: Path) -> None:
    where = details(backend, servers, tmp_path)
    open_store(backend, where).close()
    writers = [_spawn(photos, backend, where), _spawn(photos[::-1], backend, where)]
    outputs = [w.communicate(timeout=SUBPROCESS_TIMEOUT_S) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["images"] for r in results) == len(PHOTOS)
    assert sum(r["inserted"] for r in results) == len(PHOTOS) + 1
    after = _images(backend, where)
    assert len(after) == len(PHOTOS) and sum(faces for _, faces in after) == len(PHOTOS) + 1


def test_command_line_registers_and_searches(tmp_path: Path, photos: List[str],
                                             capsys: pytest.CaptureFixture) -> None:
    from deepbatch.cli import main

    db = str(tmp_path / "faces.db")
    assert main(["register", *photos[1:4], "--db", db, "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"inserted": 3, "images": 3, "skipped": 0, "errors": []}
    assert main(["search", photos[2], "--db", db, "-k", "2", "--similarity", "-q"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert (line["image"], line["face"]) == (photos[2], 0)
    assert [m["img_name"] for m in line["matches"]][0] == photos[2] and len(line["matches"]) == 2


# DeepFace 0.0.103's positional parameters, in order (deepface/DeepFace.py): callers passing them by position or
# name get the same meaning.
DEEPFACE_PARAMETERS = {
    register: ["img", "img_name", "model_name", "detector_backend", "enforce_detection", "align", "l2_normalize",
               "expand_percentage", "normalization", "anti_spoofing", "database_type", "connection_details",
               "connection"],
    search: ["img", "model_name", "detector_backend", "distance_metric", "enforce_detection", "align", "l2_normalize",
             "expand_percentage", "normalization", "anti_spoofing", "similarity_search", "k", "database_type",
             "connection_details", "connection", "search_method", "return_type"],
    build_index: ["model_name", "detector_backend", "align", "l2_normalize", "database_type", "connection",
                  "connection_details", "max_neighbors_per_node"],
}


@pytest.mark.parametrize("function", list(DEEPFACE_PARAMETERS), ids=lambda f: f.__name__)
def test_positional_parameters_are_deepfaces(function: Callable[..., Any]) -> None:
    import inspect

    parameters = inspect.signature(function).parameters.values()
    assert [p.name for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD] == DEEPFACE_PARAMETERS[function]
