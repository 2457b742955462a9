"""``/register`` and ``/search`` of ``deepbatch serve``: DeepFace's routes on deepbatch's face database.

What the service registers and finds must be what :func:`deepbatch.register` and :func:`deepbatch.search` register
and find for the same photos: the real SCRFD and ArcFace-MBF models, an embedded database in a temporary folder, and
a throwaway PostgreSQL server when this machine has one (tests/database_servers.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import numpy as np
import pytest
from database_servers import postgres_server

pytest.importorskip("fastapi", reason="deepbatch serve needs the serve extra: pip install 'deepbatch[serve]'")
pytest.importorskip("usearch", reason="usearch is not installed (pip install -e '.[database]')")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the serve extra)")
from test_serve import asgi_client, data_uri, live_server, metric, post_all  # noqa: E402

from deepbatch import database  # noqa: E402
from deepbatch.serve.app import ServeConfig  # noqa: E402
from deepbatch.serve.face_db import DatabaseChoice  # noqa: E402
from deepbatch.store import open_store  # noqa: E402
from deepbatch.store.base import FaceRows  # noqa: E402

PHOTOS = ("couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg")
# A face embedded in a batch of other images is within 1e-4 of the same face embedded alone (the library's batch
# tolerance, tests/test_recognition.py); distances between such embeddings agree to the same order.
EMBEDDING_TOLERANCE = 1e-4
DISTANCE_TOLERANCE = 1e-4


def stored(database_type: str, details: str) -> FaceRows:
    """Every face of the database's one configuration."""
    with open_store(database_type, details) as store:
        (config_id,) = store.configs()
        return store.fetch_all_embeddings(config_id)


def by_name(rows: FaceRows) -> Dict[Tuple[str, Tuple[int, ...]], np.ndarray]:
    return {(name, tuple(int(v) for v in box)): vector for name, box, vector in zip(rows.img_names, rows.boxes,
                                                                                    rows.embeddings)}


def request(client: Any, route: str, body: Dict[str, Any]) -> Any:
    async def post() -> Any:
        async with client:
            return await client.post(route, json=body)

    return asyncio.run(post())


@pytest.fixture(scope="module")
def photos(dataset_dir: Path, weights_dir: Path) -> Dict[str, bytes]:
    return {name: (dataset_dir / name).read_bytes() for name in PHOTOS}


@pytest.fixture(scope="module")
def served_db(photos: Dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """A live server on an embedded database, the photos registered by concurrent requests (one photo each)."""
    details = str(tmp_path_factory.mktemp("served") / "faces.db")
    config = ServeConfig(max_batch=16, max_wait_s=0.02, database=DatabaseChoice("embedded", details))
    with live_server(config) as url:
        before = httpx.get(url + "/metrics").text
        responses = post_all(url, [{"img": data_uri(photos[name]), "img_name": name} for name in PHOTOS],
                             route="/register")
        after = httpx.get(url + "/metrics").text
        yield {"url": url, "details": details, "responses": responses, "before": before, "after": after}


@pytest.fixture(scope="module")
def library_db(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same photos registered by the library, under the same names."""
    details = str(tmp_path_factory.mktemp("library") / "faces.db")
    database.register([str(dataset_dir / name) for name in PHOTOS], img_name=list(PHOTOS),
                       connection_details=details)
    return details


def test_register_answers_deepface_counts(served_db: Dict[str, Any]) -> None:
    answers = [r.json() for r in served_db["responses"]]
    assert [r.status_code for r in served_db["responses"]] == [200] * len(PHOTOS)
    assert [a["inserted"] for a in answers] == [2 if name == "couple.jpg" else 1 for name in PHOTOS]
    assert all(a["images"] == 1 and a["skipped"] == 0 and a["errors"] == [] for a in answers)


def test_registered_faces_equal_the_library_registration(served_db: Dict[str, Any], library_db: str) -> None:
    served, library = by_name(stored("embedded", served_db["details"])), by_name(stored("embedded", library_db))
    assert sorted(served) == sorted(library)
    for key, vector in library.items():
        np.testing.assert_allclose(served[key], vector, atol=EMBEDDING_TOLERANCE, rtol=0)


def test_concurrent_registrations_share_model_calls(served_db: Dict[str, Any]) -> None:
    name = 'deepbatch_batch_size_count{stage="detect"}'
    calls = metric(served_db["after"], name) - metric(served_db["before"], name)
    assert 1 <= calls < len(PHOTOS)


def test_search_equals_the_library_search(served_db: Dict[str, Any], library_db: str,
                                          photos: Dict[str, bytes], dataset_dir: Path) -> None:
    response = httpx.post(served_db["url"] + "/search", json={"img": data_uri(photos["couple.jpg"]),
                                                              "similarity_search": True}, timeout=120)
    assert response.status_code == 200, response.text
    served = response.json()["results"]
    library = database.search(str(dataset_dir / "couple.jpg"), similarity_search=True, return_type="dict",
                               connection_details=library_db)
    assert len(served) == len(library) == 2  # one table per face of couple.jpg
    for got, want in zip(served, library):
        assert [(r["img_name"], r["target_x"], r["target_w"]) for r in got] == \
            [(r["img_name"], r["target_x"], r["target_w"]) for r in want]
        np.testing.assert_allclose([r["distance"] for r in got], [r["distance"] for r in want],
                                   atol=DISTANCE_TOLERANCE, rtol=0)
        assert list(got[0]) == list(want[0])


def test_search_finds_the_registered_photo_first(served_db: Dict[str, Any], photos: Dict[str, bytes]) -> None:
    response = httpx.post(served_db["url"] + "/search", json={"img": data_uri(photos["img3.jpg"]), "k": 2},
                          timeout=120)
    (table,) = response.json()["results"]
    assert table[0]["img_name"] == "img3.jpg" and table[0]["distance"] == pytest.approx(0.0, abs=1e-5)
    assert len(table) <= 2


def test_a_second_registration_skips_the_photo(served_db: Dict[str, Any], photos: Dict[str, bytes]) -> None:
    response = httpx.post(served_db["url"] + "/register", json={"img": data_uri(photos["img1.jpg"])}, timeout=120)
    assert response.json() == {"inserted": 0, "images": 0, "skipped": 1, "errors": []}


def test_search_under_other_settings_is_404(served_db: Dict[str, Any], photos: Dict[str, bytes]) -> None:
    response = httpx.post(served_db["url"] + "/search", json={"img": data_uri(photos["img1.jpg"]),
                                                              "l2_normalize": True}, timeout=120)
    assert response.status_code == 404
    assert "l2_normalize=True" in response.json()["error"]


def test_an_unreadable_photo_is_an_error_row_beside_the_others(photos: Dict[str, bytes], tmp_path: Path) -> None:
    details = str(tmp_path / "faces.db")
    broken = photos["img1.jpg"][:2000]
    body = {"img": [data_uri(photos["img2.jpg"]), data_uri(broken)], "img_name": ["good", "broken"]}
    with asgi_client(ServeConfig(database=DatabaseChoice("embedded", details))) as client:
        response = request(client, "/register", body)
    answer = response.json()
    assert response.status_code == 200
    assert (answer["images"], answer["inserted"]) == (2, 1)
    assert [e["img_name"] for e in answer["errors"]] == ["broken"]
    assert "ImageDecodeError" in answer["errors"][0]["error"]


def test_a_multipart_upload_is_registered_under_its_name(photos: Dict[str, bytes], tmp_path: Path) -> None:
    details = str(tmp_path / "faces.db")

    async def post(client: Any) -> Any:
        async with client:
            return await client.post("/register", files={"img": ("img4.jpg", photos["img4.jpg"], "image/jpeg")},
                                     data={"img_name": "upload"})

    with asgi_client(ServeConfig(database=DatabaseChoice("embedded", details))) as client:
        response = asyncio.run(post(client))
    assert response.json()["inserted"] == 1
    assert stored("embedded", details).img_names == ["upload"]


def test_register_refuses_a_server_path(tmp_path: Path, dataset_dir: Path) -> None:
    config = ServeConfig(database=DatabaseChoice("embedded", str(tmp_path / "faces.db")))
    with asgi_client(config) as client:
        response = request(client, "/register", {"img": str(dataset_dir / "img1.jpg")})
    assert response.status_code == 403
    assert "server-side file paths are refused" in response.json()["error"]


@pytest.mark.parametrize("route", ["/register", "/search"])
def test_without_a_database_the_routes_answer_503(route: str, photos: Dict[str, bytes]) -> None:
    with asgi_client(ServeConfig()) as client:
        response = request(client, route, {"img": data_uri(photos["img1.jpg"])})
    assert response.status_code == 503
    assert "no face database is configured" in response.json()["error"]
    assert "retry-after" not in response.headers


def test_postgres_registration_and_search_equal_the_embedded_ones(served_db: Dict[str, Any],
                                                                  photos: Dict[str, bytes]) -> None:
    with postgres_server() as fresh:
        details = fresh()
        with asgi_client(ServeConfig(database=DatabaseChoice("postgres", details))) as client:
            body = {"img": [data_uri(photos[name]) for name in PHOTOS[:4]], "img_name": list(PHOTOS[:4])}
            registered = request(client, "/register", body)
        with asgi_client(ServeConfig(database=DatabaseChoice("postgres", details))) as client:
            found = request(client, "/search", {"img": data_uri(photos["img2.jpg"]), "similarity_search": True})
        assert registered.json()["inserted"] == 5
        rows = by_name(stored("postgres", details))
    embedded = by_name(stored("embedded", served_db["details"]))
    for key, vector in rows.items():
        np.testing.assert_allclose(vector, embedded[key], atol=EMBEDDING_TOLERANCE, rtol=0)
    (table,) = found.json()["results"]
    assert table[0]["img_name"] == "img2.jpg" and [r["img_name"] for r in table] != []



def test_a_database_that_cannot_be_opened_stops_the_command_before_it_listens(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "faces.db"
    done = subprocess.run([sys.executable, "-m", "deepbatch", "serve", "--database", str(missing), "--port", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"the folder of the database {missing} does not exist" in done.stderr
