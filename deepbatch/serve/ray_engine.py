"""``deepbatch serve --engine ray --replicas N``: the same application on Ray Serve, batched by ``@serve.batch``.

Each replica is a Ray actor holding its own models and its own copy of the application of
:func:`~deepbatch.serve.app.create_app` (same routes, same answers, same limits). Ray Serve's proxy spreads the HTTP
requests over the replicas; inside a replica, Ray Serve's own ``@serve.batch`` (``max_batch_size`` =
``--max-batch``, ``batch_wait_timeout_s`` = ``--max-wait-ms``) gathers the images of concurrent requests, and one
model thread runs each batch through :meth:`~deepbatch.serve.batcher.Batcher.run_batch` (detection, then embedding
of every face gathered), so the replica's event loop never runs a model call either.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, List, Optional

from ..errors import MissingDependencyError
from .app import ServeConfig, create_app
from .batcher import Batcher
from .jobs import Job, Ticket

logger = logging.getLogger(__name__)


class ServeBatchBatcher(Batcher):
    """A :class:`Batcher` whose batches are formed by Ray Serve's ``@serve.batch`` (``batched``: the replica's
    batched method, called once per image) instead of its detection thread."""

    def __init__(self, batched: Callable[[Job], Awaitable[Any]], **options: Any):
        super().__init__(**options)
        self._batched = batched
        self._pending = 0
        self._tasks: set = set()

    @property
    def queued(self) -> int:
        return self._pending

    def submit(self, jobs: List[Job], ticket: Optional[Ticket] = None) -> List[Future]:
        with self._lock:
            if ticket is not None:
                ticket.state = "submitted"
            self._arriving = max(0, self._arriving - len(jobs))
            self._pending += len(jobs)
        for job in jobs:
            job.future.add_done_callback(self._done)
            task = asyncio.ensure_future(self._batched(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return [job.future for job in jobs]

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending -= 1


def deployment(config: ServeConfig, replicas: int) -> Any:
    """The Ray Serve application: ``replicas`` replicas of the service for ``config``."""
    try:
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError("ray[serve]", "serve-ray", "deepbatch serve --engine ray") from exc
    from starlette.responses import Response

    # a replica takes at least as many requests at once as a batch holds, else @serve.batch never fills one
    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0},
                      max_ongoing_requests=max(2 * config.max_batch, 16))
    class DeepbatchReplica:
        def __init__(self, config: ServeConfig):
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="deepbatch-serve-model")
            self.batcher = ServeBatchBatcher(self.one, max_batch=config.max_batch, max_wait_s=config.max_wait_s,
                                             queue_limit=config.queue_limit, detectors=config.detectors,
                                             recognizers=config.recognizers)
            self.app = create_app(config, batcher=self.batcher)
            self.batcher.start(((config.detector, config.model),) if config.warm else (), workers=False)
            self.batched.set_max_batch_size(config.max_batch)  # type: ignore[attr-defined]
            self.batched.set_batch_wait_timeout_s(config.max_wait_s)  # type: ignore[attr-defined]

        async def one(self, job: Job) -> None:
            await self.batched(job)

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
        async def batched(self, jobs: List[Job]) -> List[None]:
            await asyncio.get_running_loop().run_in_executor(self.pool, self.batcher.run_batch, jobs)
            return [None] * len(jobs)

        async def __call__(self, request: Any) -> Any:
            """Runs the replica's ASGI application on the request Ray Serve's proxy hands over."""
            body = await request.body()
            sent: List[Dict[str, Any]] = []
            delivered = False

            async def receive() -> Dict[str, Any]:
                nonlocal delivered
                if delivered:
                    return {"type": "http.disconnect"}
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Dict[str, Any]) -> None:
                sent.append(message)

            scope = {key: value for key, value in request.scope.items() if key != "root_path"}
            await self.app(scope, receive, send)
            start = next(m for m in sent if m["type"] == "http.response.start")
            content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
                       if k.lower() != b"content-length"}
            return Response(content, status_code=start["status"], headers=headers)

    return DeepbatchReplica.bind(config)  # type: ignore[attr-defined]


def run(config: ServeConfig, replicas: int, host: str, port: int) -> int:
    """Serve on a local Ray (or the cluster ``$RAY_ADDRESS`` names) until SIGTERM or Ctrl-C."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError("ray[serve]", "serve-ray", "deepbatch serve --engine ray") from exc
    ray.init(ignore_reinit_error=True, include_dashboard=False)
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(deployment(config, replicas), name="deepbatch", route_prefix="/")
        logger.warning("deepbatch serve on Ray Serve, %d replicas, http://%s:%d", replicas, host, port)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
