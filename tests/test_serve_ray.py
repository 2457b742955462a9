"""``deepbatch serve --engine ray``: the application on a local Ray Serve with two replicas, batched by Ray Serve's
``@serve.batch``; answers equal the library's and both replicas answer."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="deepbatch serve needs the serve extra: pip install 'deepbatch[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the serve extra)")
pytest.importorskip("ray.serve", reason="--engine ray needs Ray Serve: pip install 'deepbatch[serve-ray]'")

import deepbatch  # noqa: E402
from deepbatch.serve.app import ServeConfig  # noqa: E402

pytestmark = [pytest.mark.heavy, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
EMBEDDING_TOLERANCE = 1e-4  # the library's own batch tolerance (tests/test_recognition.py)
PHOTOS = ["couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg"]


@pytest.fixture(scope="module")
def ray_url(weights_dir: Path, dataset_dir: Path) -> Iterator[str]:
    import ray
    from ray import serve

    from deepbatch.serve.ray_engine import deployment

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {name: os.environ[name] for name in ("DEEPBATCH_WEIGHTS", "DEEPBATCH_HOME") if name in os.environ}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    # log_to_driver=False: the replicas' log lines streamed into pytest's captured output can stall the driver
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(deployment(ServeConfig(max_batch=8, max_wait_s=0.02), 2), name="deepbatch", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_replicas_answer_as_the_library(ray_url: str, dataset_dir: Path) -> None:
    bodies = [{"img": "data:image/jpeg;base64," + base64.b64encode((dataset_dir / n).read_bytes()).decode()}
              for n in PHOTOS]

    async def run() -> Any:
        async with httpx.AsyncClient(timeout=180) as client:
            answers = await asyncio.gather(*(client.post(ray_url + "/represent", json=b) for b in bodies))
            health = await asyncio.gather(*(client.get(ray_url + "/health") for _ in range(12)))
            refused = await client.post(ray_url + "/represent", json={"img": "/etc/hostname"})
            return answers, health, refused

    answers, health, refused = asyncio.run(run())
    for name, answer in zip(PHOTOS, answers):
        assert answer.status_code == 200, answer.text
        served = answer.json()["results"]
        library = deepbatch.represent(str(dataset_dir / name))
        assert len(served) == len(library) > 0
        for got, want in zip(served, library):
            assert abs(got["facial_area"]["x"] - want["facial_area"]["x"]) <= 1
            np.testing.assert_allclose(got["embedding"], want["embedding"], atol=EMBEDDING_TOLERANCE, rtol=0)
    assert len({h.json()["pid"] for h in health}) == 2, "both replicas answer"
    assert refused.status_code == 403 and "server-side file paths are refused" in refused.json()["error"]
