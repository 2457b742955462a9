"""``deepbatch serve``: answers equal the library's, requests share batches, bad requests and faults stay local.

A real uvicorn server on 127.0.0.1 (a free port) serves the concurrency tests; the fault tests that need no socket
use httpx's ASGI transport on an application whose batcher is started by hand. Everything runs the real SCRFD and
ArcFace-MBF models on the test photos.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="deepbatch serve needs the serve extra: pip install 'deepbatch[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the serve extra)")
uvicorn = pytest.importorskip("uvicorn", reason="deepbatch serve needs uvicorn (the serve extra)")

import deepbatch  # noqa: E402
from deepbatch.detectors import DETECTORS  # noqa: E402
from deepbatch.serve.app import ServeConfig, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The library's own batch tolerances (tests/test_detectors.py, tests/test_recognition.py): a face found in a batch
# of other images is within 1e-3 px and 1e-5 in score of the same face found alone; embeddings within 1e-4.
BOX_TOLERANCE_PX = 1e-3
SCORE_TOLERANCE = 1e-5
EMBEDDING_TOLERANCE = 1e-4
PHOTOS = ["couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg",
          "img8.jpg", "img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg", "img13.jpg", "img14.jpg", "img15.jpg"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_server(config: ServeConfig) -> Iterator[str]:
    """A real uvicorn server for ``config`` on 127.0.0.1, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def asgi_client(config: ServeConfig) -> Iterator[Any]:
    """An httpx client on the application itself (no socket), its batcher started as the lifespan would."""
    app = create_app(config)
    service = app.state.service
    service.batcher.start()
    try:
        yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test", timeout=120)
    finally:
        service.batcher.stop()


def data_uri(data: bytes, kind: str = "jpeg") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def post_all(url: str, bodies: List[Dict[str, Any]], route: str = "/represent", **kwargs: Any) -> List[Any]:
    """POST every body at once (one connection each); the responses in order."""

    async def run() -> List[Any]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=len(bodies))) as client:
            return list(await asyncio.gather(*(client.post(url + route, json=body, **kwargs) for body in bodies)))

    return asyncio.run(run())


@pytest.fixture(scope="module")
def photos(dataset_dir: Path, weights_dir: Path) -> Dict[str, bytes]:
    return {name: (dataset_dir / name).read_bytes() for name in PHOTOS}


@pytest.fixture(scope="module")
def server(photos: Dict[str, bytes]) -> Iterator[str]:
    config = ServeConfig(max_batch=16, max_wait_s=0.02, max_images=4, max_pixels=5_000_000,
                         max_body_bytes=6 << 20, allow_path=Path(os.environ["DEEPBATCH_TEST_DATA"]))
    with live_server(config) as url:
        yield url


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


# -- answers equal the library's -------------------------------------------------------------------------------------

def test_concurrent_represent_equals_library(server: str, photos: Dict[str, bytes], dataset_dir: Path) -> None:
    """16 photos sent at once: each answer has the library's faces and embeddings, and batches of several images
    were formed."""
    before = httpx.get(server + "/metrics").text
    responses = post_all(server, [{"img": data_uri(photos[name])} for name in PHOTOS])
    after = httpx.get(server + "/metrics").text
    for name, response in zip(PHOTOS, responses):
        assert response.status_code == 200, response.text
        served = response.json()["results"]
        library = deepbatch.represent(str(dataset_dir / name))
        assert len(served) == len(library) > 0
        for got, want in zip(served, library):
            for key in ("x", "y", "w", "h"):
                assert abs(got["facial_area"][key] - want["facial_area"][key]) <= 1  # integers of boxes within 1e-3 px
            for key in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right"):
                np.testing.assert_allclose(got["facial_area"][key], want["facial_area"][key], atol=1)
            assert abs(got["face_confidence"] - want["face_confidence"]) <= 0.01
            assert got["alignment"] == want["alignment"]
            np.testing.assert_allclose(got["embedding"], want["embedding"], atol=EMBEDDING_TOLERANCE, rtol=0)
    batches = metric(after, 'deepbatch_batch_size_count{stage="detect"}') - metric(
        before, 'deepbatch_batch_size_count{stage="detect"}')
    images = metric(after, 'deepbatch_batch_size_sum{stage="detect"}') - metric(
        before, 'deepbatch_batch_size_sum{stage="detect"}')
    assert images == len(PHOTOS)
    assert batches < len(PHOTOS), "16 concurrent requests must share detector calls"


def test_batched_faces_match_library_detection(server: str, photos: Dict[str, bytes], dataset_dir: Path) -> None:
    """/detect answers, sent concurrently, against the library's faces on the same photos within its batch
    tolerance (the raw scores are compared, not only the rounded confidence)."""
    names = PHOTOS[:8]
    responses = post_all(server, [{"img": data_uri(photos[name])} for name in names], route="/detect")
    detector = deepbatch.build_detector("scrfd")
    for name, response in zip(names, responses):
        assert response.status_code == 200, response.text
        image = cv2.imread(str(dataset_dir / name))
        alone = detector.detect_faces([image], batch_size=1)[0]
        got = response.json()["results"]
        assert len(got) == len(alone)
        np.testing.assert_allclose([f["score"] for f in got], alone.scores, atol=SCORE_TOLERANCE, rtol=0)
        assert response.json()["image"] == {"height": image.shape[0], "width": image.shape[1]}


def test_verify_and_multipart_match_library(server: str, photos: Dict[str, bytes], dataset_dir: Path) -> None:
    files = {"img1": ("a.jpg", photos["img1.jpg"], "image/jpeg"), "img2": ("b.jpg", photos["img2.jpg"], "image/jpeg")}
    response = httpx.post(server + "/verify", files=files, data={"distance_metric": "euclidean_l2"}, timeout=60)
    assert response.status_code == 200, response.text
    served = response.json()
    library = deepbatch.verify(str(dataset_dir / "img1.jpg"), str(dataset_dir / "img2.jpg"),
                               distance_metric="euclidean_l2")
    assert served["verified"] == library["verified"] is True
    assert abs(served["distance"] - library["distance"]) < 1e-4
    assert served["threshold"] == library["threshold"]
    assert served["facial_areas"]["img1"] == {k: list(v) if isinstance(v, tuple) else v
                                              for k, v in library["facial_areas"]["img1"].items()}
    assert set(served) == set(library)
    # an embedding from /represent is accepted in place of an image, as DeepFace's verify accepts it
    embedding = httpx.post(server + "/represent", json={"img": base64.b64encode(photos["img1.jpg"]).decode()},
                           timeout=60).json()["results"][0]["embedding"]
    again = httpx.post(server + "/verify", json={"img1": embedding, "img2": data_uri(photos["img2.jpg"]),
                                                 "distance_metric": "euclidean_l2"}, timeout=60)
    assert again.status_code == 200, again.text
    assert abs(again.json()["distance"] - library["distance"]) < 1e-4


def test_extract_faces_and_lists_and_allowed_paths(server: str, photos: Dict[str, bytes],
                                                   dataset_dir: Path) -> None:
    response = httpx.post(server + "/extract_faces", json={"img": data_uri(photos["couple.jpg"])}, timeout=60)
    assert response.status_code == 200, response.text
    faces = response.json()["results"]
    library = deepbatch.extract_faces(str(dataset_dir / "couple.jpg"), color_face="bgr", normalize_face=False)
    assert len(faces) == len(library) == 2
    for got, want in zip(faces, library):
        header, _, payload = got["face"].partition(",")
        assert header == "data:image/png;base64"
        crop = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
        assert crop.shape == want["face"].shape
        assert np.abs(crop.astype(int) - want["face"].astype(int)).max() <= 1
    # a list of images gives one list per image; a path inside --allow-path is read
    listed = httpx.post(server + "/represent", json={"img": ["img1.jpg", data_uri(photos["img2.jpg"])]}, timeout=60)
    assert listed.status_code == 200, listed.text
    results = listed.json()["results"]
    assert [len(r) for r in results] == [1, 1]
    np.testing.assert_allclose(results[0][0]["embedding"], deepbatch.represent(str(dataset_dir / "img1.jpg"))[0][
        "embedding"], atol=EMBEDDING_TOLERANCE, rtol=0)


def test_health_metrics_openapi(server: str) -> None:
    assert httpx.get(server + "/health").json()["status"] == "ok"
    text = httpx.get(server + "/metrics").text
    for name in ("deepbatch_batch_size_bucket", "deepbatch_queue_wait_seconds_bucket", "deepbatch_stage_seconds_sum",
                 "deepbatch_requests_total", "deepbatch_rejected_total"):
        assert name in text
    spec = httpx.get(server + "/openapi.json").json()
    for route in ("/represent", "/verify", "/detect", "/extract_faces"):
        content = spec["paths"][route]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data"} <= set(content)
        assert "img" in str(content["application/json"]["schema"]["properties"])
    assert "RepresentResponse" in spec["components"]["schemas"]


# -- bad requests: each fails alone, with the library's message -------------------------------------------------------

def _jpeg(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 200, np.uint8))
    assert ok
    return data.tobytes()


BAD_REQUESTS = [
    # (case, route, body or None, raw content, expected status, a piece of the message)
    ("body is not JSON", "/represent", None, b"{not json", 400, "not valid JSON"),
    ("img missing", "/represent", {"model_name": "arcface_mbf"}, None, 400, "'img' not found"),
    ("invalid base64", "/represent", {"img": "data:image/jpeg;base64,@@@@"}, None, 400, "invalid base64"),
    ("bytes that are no image", "/represent", {"img": data_uri(b"hello world" * 10)}, None, 400,
     "Failed to decode image"),
    ("truncated JPEG", "/represent", {"img": "TRUNCATED"}, None, 400, "truncated"),
    ("no face", "/represent", {"img": data_uri(_jpeg(320, 240))}, None, 400, "Face could not be detected"),
    ("unknown model", "/represent", {"img": "PHOTO", "model_name": "no-such-model"}, None, 422, "unknown recognizer"),
    ("unknown detector", "/detect", {"img": "PHOTO", "detector_backend": "nope"}, None, 422, "unknown detector"),
    ("bad boolean", "/represent", {"img": "PHOTO", "align": "maybe"}, None, 422, "align must be true or false"),
    ("anti_spoofing", "/represent", {"img": "PHOTO", "anti_spoofing": True}, None, 422, "anti_spoofing"),
    ("bad metric", "/verify", {"img1": "PHOTO", "img2": "PHOTO", "distance_metric": "manhattan"}, None, 422,
     "manhattan"),
    ("path outside --allow-path", "/represent", {"img": "/etc/hostname"}, None, 403, "outside the folder"),
    ("too many images", "/represent", {"img": [data_uri(_jpeg(64, 64))] * 5}, None, 413,
     "over this service's limit of 4"),
    ("too many pixels", "/detect", {"img": data_uri(_jpeg(3000, 2000))}, None, 413, "over the decoding limit"),
    ("body too large", "/represent", {"img": "data:image/jpeg;base64," + "A" * (7 << 20)}, None, 413,
     "request body is over"),
]


@pytest.mark.parametrize("case,route,body,raw,status,message", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request(server: str, photos: Dict[str, bytes], case: str, route: str, body: Any, raw: Any, status: int,
                     message: str) -> None:
    photo = data_uri(photos["img1.jpg"])
    truncated = data_uri(photos["img1.jpg"][: len(photos["img1.jpg"]) // 2])

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        return {"PHOTO": photo, "TRUNCATED": truncated}.get(value, value) if isinstance(value, str) else value

    if raw is not None:
        response = httpx.post(server + route, content=raw, headers={"content-type": "application/json"})
    else:
        response = httpx.post(server + route, json={k: fill(v) for k, v in body.items()}, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    # the service goes on serving
    assert httpx.post(server + "/detect", json={"img": photo}, timeout=60).status_code == 200


def test_bad_image_fails_only_its_own_request(server: str, photos: Dict[str, bytes]) -> None:
    """A corrupt image and a faceless one sent among good ones, at once: only they fail."""
    bodies = [{"img": data_uri(photos[name])} for name in PHOTOS[:6]]
    bodies.insert(2, {"img": data_uri(photos["img1.jpg"][:5000])})
    bodies.insert(4, {"img": data_uri(_jpeg(400, 300))})
    codes = [r.status_code for r in post_all(server, bodies)]
    assert codes == [200, 200, 400, 200, 400, 200, 200, 200]


def test_server_paths_refused_by_default(photos: Dict[str, bytes], dataset_dir: Path) -> None:
    async def run() -> None:
        with asgi_client(ServeConfig(warm=False)) as client:
            response = await client.post("/represent", json={"img": str(dataset_dir / "img1.jpg")})
            assert response.status_code == 403
            assert "server-side file paths are refused" in response.json()["error"]
            # a URL goes to the library's URL loader, whose rules answer (refused, or nothing listens there)
            refused = await client.post("/represent", json={"img": "http://127.0.0.1:9/x.jpg"})
            assert 400 <= refused.status_code < 500
            assert "127.0.0.1:9" in refused.json()["error"]
        with asgi_client(ServeConfig(warm=False, allow_urls=False)) as client:
            response = await client.post("/represent", json={"img": "https://example.com/x.jpg"})
            assert response.status_code == 403
            assert "URLs are not accepted by this service" in response.json()["error"]

    asyncio.run(run())


def test_bearer_token() -> None:
    async def run() -> None:
        with asgi_client(ServeConfig(token="s3cret", warm=False)) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
                response = await client.post("/represent", json={"img": "x"}, headers=headers)
                assert response.status_code == 401
                assert response.json() == {"message": "Invalid or missing authentication token"}
            allowed = await client.post("/represent", json={"img": "x"}, headers={"Authorization": "Bearer s3cret"})
            assert allowed.status_code == 403  # past the token: the path is refused
            assert (await client.get("/health")).status_code == 200

    asyncio.run(run())


# -- load and faults -------------------------------------------------------------------------------------------------

def test_full_queue_answers_503_with_retry_after(photos: Dict[str, bytes]) -> None:
    """64 requests at once on a queue of 8 images: every request is answered, 200 or 503 with Retry-After."""
    config = ServeConfig(max_batch=4, queue_limit=8)
    body = {"img": data_uri(photos["img1.jpg"])}
    with live_server(config) as url:
        responses = post_all(url, [body] * 64, route="/detect")
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and codes.count(200) >= 8 and codes.count(503) >= 1
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
                assert "queue limit of 8 images" in response.json()["error"]
        rejected = metric(httpx.get(url + "/metrics").text, "deepbatch_rejected_total")
        assert rejected == codes.count(503)
        assert httpx.post(url + "/detect", json=body, timeout=60).status_code == 200


def _crashing_detector() -> Any:
    """The real SCRFD detector, whose model call fails on any batch holding an image 333 pixels wide: a crash of
    the model on one batch."""
    base = type(DETECTORS.build("scrfd"))

    class Crashing(base):  # type: ignore[misc, valid-type]
        def prepare_batch(self, images: Any) -> Any:
            return _Marked(super().prepare_batch(images), images)

        def infer_batch(self, marked: Any) -> Any:
            if any(image.shape[1] == 333 for image in marked.images):
                raise RuntimeError("ONNXRuntimeError: simulated crash")
            return super().infer_batch(marked.prepared)

    return Crashing()


class _Marked:
    """A prepared chunk that remembers its images (for the crash condition) and hands everything else through."""

    def __init__(self, prepared: Any, images: Any):
        self.prepared, self.images = prepared, list(images)

    def __len__(self) -> int:
        return len(self.images)


def test_model_crash_fails_only_its_batch(photos: Dict[str, bytes]) -> None:
    detector = _crashing_detector()
    poison = data_uri(_jpeg(333, 250))
    good = data_uri(photos["img1.jpg"])

    async def run() -> None:
        with asgi_client(ServeConfig(detectors={"scrfd": detector}, max_batch=1, warm=False)) as client:
            crashed = await client.post("/detect", json={"img": poison})
            assert crashed.status_code == 500
            assert "failed on a batch of 1 images" in crashed.json()["error"]
            answers = await asyncio.gather(*(client.post("/detect", json={"img": img})
                                             for img in (good, poison, good, good)))
            assert [a.status_code for a in answers] == [200, 500, 200, 200]
            assert (await client.post("/represent", json={"img": good})).status_code == 200
            text = (await client.get("/metrics")).text
            assert metric(text, 'deepbatch_model_errors_total{stage="detect"}') == 2

    asyncio.run(run())


def test_timeout_answers_504(photos: Dict[str, bytes]) -> None:
    async def run() -> None:
        with asgi_client(ServeConfig(timeout_s=0.001, warm=False)) as client:
            response = await client.post("/represent", json={"img": data_uri(photos["couple.jpg"])})
            assert response.status_code == 504
            assert "not answered within 0.001 s" in response.json()["error"]

    asyncio.run(run())


@pytest.mark.slow  # starts `deepbatch serve` as its own process: imports and model loading, about 30 s here
def test_sigterm_finishes_in_flight_requests(photos: Dict[str, bytes], tmp_path: Path) -> None:
    """``deepbatch serve`` as a process: SIGTERM while requests are in flight; they are answered, new connections
    are refused, the process exits with 0."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "deepbatch", "serve", "--port", str(port), "--max-batch", "2"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        body = json.dumps({"img": [data_uri(photos[name]) for name in ("couple.jpg", "img1.jpg", "img2.jpg",
                                                                        "img3.jpg")]}).encode()
        results: List[Any] = []
        senders = [threading.Thread(target=lambda: results.append(httpx.post(
            url + "/represent", content=body, headers={"content-type": "application/json"}, timeout=120)))
            for _ in range(3)]
        for sender in senders:
            sender.start()
        while httpx.get(url + "/health", timeout=10).json()["requests_in_flight"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        for sender in senders:
            sender.join(120)
        assert [r.status_code for r in results] == [200, 200, 200]
        assert all(len(r.json()["results"]) == 4 for r in results)
        assert process.wait(60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
