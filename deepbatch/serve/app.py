"""The HTTP application: DeepFace's API routes (``/represent``, ``/verify``, and ``/register``, ``/search`` when a
face database is configured, see :mod:`~deepbatch.serve.face_db`) plus ``/detect``, ``/extract_faces``,
``/health``, ``/metrics``, the OpenAPI description (``/docs``, ``/openapi.json``) and a page at ``/``.

Every request is parsed on the event loop, its images are read and decoded on one of the decoding threads (one per
core), then handed to the :class:`~deepbatch.serve.batcher.Batcher`, whose worker threads batch them with other
requests' (a lone request runs on its decoding thread at once): the event loop never runs a model call. Answers are
the dicts the library returns for the same image and arguments (DeepFace's shapes: ``{"results": [...]}`` for
``/represent`` and ``/search``, the verification dict for ``/verify``, ``{"inserted": ...}`` for ``/register``);
failures are ``{"error": message}`` with the library's typed message and a status code that says whose fault it is
(see :data:`STATUS`).
"""

from __future__ import annotations

import hmac
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from .._version import __version__
from ..errors import DeepbatchError
from .arguments import Arguments, as_bool, as_int, read_arguments
from .batcher import Batcher
from .config import ServeConfig
from .inputs import Inputs
from .json_codec import JSONAnswer
from .middleware import BodyLimit
from .routes import Handler, route_handlers
from .schemas import document
from .service import STATUS, Pending, Service, error_response

__all__ = ["AUTH_MESSAGE", "PAGE_DIR", "STATUS", "Arguments", "BodyLimit", "Inputs", "Pending", "ServeConfig",
           "Service", "as_bool", "as_int", "create_app", "error_response", "read_arguments"]

PAGE_DIR = Path(__file__).parent / "page"
AUTH_MESSAGE = "Invalid or missing authentication token"  # DeepFace's API says this too


def create_app(config: Optional[ServeConfig] = None, batcher: Optional[Batcher] = None) -> Any:
    """The ASGI application (FastAPI) serving ``config``; ``batcher`` replaces the default one (another engine
    forming the batches, see :mod:`deepbatch.serve.ray_engine`)."""
    config = config or ServeConfig()
    service = Service(config, batcher)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        warm = ((config.detector, config.model),) if config.warm else ()
        await run_in_threadpool(service.batcher.start, warm)
        try:
            yield
        finally:
            await run_in_threadpool(service.batcher.stop)
            service.decoders.shutdown(wait=False)

    app = FastAPI(title="deepbatch", version=__version__, lifespan=lifespan,
                  description="Face detection, embedding and verification, batched across concurrent requests. "
                              "/represent and /verify take DeepFace's API fields and answer its shapes.")
    app.state.service = service

    def authorised(request: Request) -> bool:
        if not config.token:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), config.token.encode())

    def endpoint(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            started = time.perf_counter()
            if not authorised(request):
                response: Response = JSONResponse({"message": AUTH_MESSAGE}, status_code=401)
            else:
                service.in_flight += 1
                try:
                    response = JSONAnswer(await handler(await read_arguments(request)))
                except (DeepbatchError, ValueError) as exc:
                    response = error_response(exc)
                except MemoryError as exc:
                    response = JSONResponse({"error": f"out of memory ({exc})"}, status_code=507)
                finally:
                    service.in_flight -= 1
            service.metrics.requests.inc(route=route, status=str(response.status_code))
            service.metrics.request_time.observe(time.perf_counter() - started, route=route)
            return response

        return serve

    routes = route_handlers(service, config)
    for path, handler in routes.items():
        app.add_api_route(path, endpoint(path, handler), methods=["POST"], response_class=JSONAnswer,
                          **document(path))

    @app.get("/health", summary="liveness and queue depth")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "version": __version__, "queued_images": service.batcher.queued,
                "requests_in_flight": service.in_flight, "pid": os.getpid(),
                "detector": config.detector, "model": config.model,
                "database": None if service.database is None else service.database.describe()}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> Response:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    @app.get("/page.js", include_in_schema=False)
    async def page_script() -> Response:
        return FileResponse(PAGE_DIR / "page.js", media_type="text/javascript")

    return BodyLimit(app, config.max_body_bytes)
