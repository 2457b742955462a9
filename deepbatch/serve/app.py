"""The HTTP application: DeepFace's API routes (``/represent``, ``/verify``, and ``/register``, ``/search`` when a
face database is configured, see :mod:`~deepbatch.serve.face_db`) plus ``/detect``, ``/extract_faces``,
``/health``, ``/metrics``, the OpenAPI description (``/docs``, ``/openapi.json``) and a page at ``/``.

Every request is parsed on the event loop, its images are read and decoded on one of the decoding threads (one per
core), then handed to the :class:`~deepbatch.serve.batcher.Batcher`, whose worker threads own the models: the event
loop never runs a model call. Answers are the dicts the library returns for the same image and arguments
(DeepFace's shapes: ``{"results": [...]}`` for ``/represent`` and ``/search``, the verification dict for
``/verify``, ``{"inserted": ...}`` for ``/register``); failures are ``{"error": message}`` with the library's typed
message and a status code that says whose fault it is (see :data:`STATUS`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from .._version import __version__
from ..api.represent import embedding_dicts
from ..api.verify import at_pair, best_pair, face_area, given_embedding, is_embedding
from ..checks import refuse_anti_spoofing
from ..core.stream import FaceRules
from ..detectors.base import DETECTORS, Detector
from ..errors import (
    ArgumentError,
    BadRequestError,
    DatabaseConnectionError,
    DatabaseNotConfiguredError,
    DeepbatchError,
    EmbeddingMismatchError,
    FaceNotDetectedError,
    ImageError,
    ModelRunError,
    NothingRegisteredError,
    OverloadedError,
    PathRefusedError,
    RequestLimitError,
    RequestTimeoutError,
    UnknownModelError,
)
from ..formatting import confidence, facial_area
from ..io.headers import declared_size, sniff
from ..io.images import ImageLimits, decode, describe, read_encoded
from ..recognition.base import RECOGNIZERS, Recognizer
from ..recognition.distance import check_metric
from ..runtime.session import usable_cpus
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, DEFAULT_QUEUE_LIMIT, Batcher, Job
from .face_db import DatabaseChoice
from .face_db import register as register_faces
from .face_db import search as search_faces
from .metrics import Metrics
from .schemas import document

logger = logging.getLogger(__name__)
Pending = TypeVar("Pending")

PAGE_DIR = Path(__file__).parent / "page"
AUTH_MESSAGE = "Invalid or missing authentication token"  # DeepFace's API says this too
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")








# Status codes by error, most specific first: the client's image (400, as DeepFace's API), the client's arguments
# (422), limits (413), refused paths (403), the service's load (503), its models (500), its clock (504), its face
# database (503 when there is none or it cannot be reached; 404 when nothing is registered under the settings asked).
STATUS: Tuple[Tuple[type, int], ...] = (
    (RequestLimitError, 413), (PathRefusedError, 403), (OverloadedError, 503), (RequestTimeoutError, 504),
    (ModelRunError, 500), (DatabaseNotConfiguredError, 503), (DatabaseConnectionError, 503),
    (EmbeddingMismatchError, 404), (NothingRegisteredError, 404),
    (BadRequestError, 400), (ImageError, 400), (FaceNotDetectedError, 400),
    (UnknownModelError, 422), (ArgumentError, 422), (ValueError, 422),
)


@dataclass
class ServeConfig:
    """What ``deepbatch serve`` is told; the defaults are those of the command line."""

    detector: str = "scrfd"
    model: str = "arcface_mbf"
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    max_body_bytes: int = 32 << 20
    max_images: int = 16
    max_pixels: int = 50_000_000
    timeout_s: float = 60.0
    allow_path: Optional[Path] = None
    allow_urls: bool = True
    token: Optional[str] = None
    warm: bool = True
    database: Optional[DatabaseChoice] = None  # the face database of /register and /search (None: none)
    detectors: Dict[str, Detector] = field(default_factory=dict)  # served instances, by name (tests, plugins)
    recognizers: Dict[str, Recognizer] = field(default_factory=dict)

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels, max_bytes=self.max_body_bytes)


# -- reading requests ------------------------------------------------------------------------------------------------

def as_bool(value: Any, name: str) -> bool:
    """A boolean field from JSON (true/false) or a form ("true", "false", "1", "0", "yes", "no")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise ArgumentError(f"{name} must be true or false, got {value!r}")


def as_int(value: Any, name: str) -> int:
    """An integer field from JSON (3, 3.0) or a form ("3")."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be an integer, got {value!r}") from None


class Arguments:
    """The fields of one request, from a JSON object or a form (multipart uploads give bytes)."""

    def __init__(self, fields: Dict[str, Any]):
        self.fields = fields

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None or value == "" else value

    def flag(self, name: str, default: bool) -> bool:
        return as_bool(self.get(name, default), name)

    def integer(self, name: str, default: Optional[int]) -> Optional[int]:
        value = self.get(name)
        return default if value is None else as_int(value, name)

    def text(self, name: str, default: str) -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            raise ArgumentError(f"{name} must be a string, got {type(value).__name__}")
        return value

    def image(self, name: str) -> Any:
        if name not in self.fields or self.fields[name] is None or self.fields[name] == "":
            raise BadRequestError(f"'{name}' not found in the request: send it as a base64 string or data URI in a "
                                  "JSON body, or as a file in a multipart form")
        return self.fields[name]


async def read_arguments(request: Any) -> Arguments:
    """The request's JSON object or form fields; uploaded files become their bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        fields: Dict[str, Any] = {}
        for key, value in form.multi_items():
            value = await value.read() if hasattr(value, "read") else value
            if key in fields:  # repeated fields (several uploads under one name) make a list
                fields[key] = fields[key] if isinstance(fields[key], list) else [fields[key]]
                fields[key].append(value)
            else:
                fields[key] = value
        return Arguments(fields)
    body = await request.body()
    if not body:
        raise BadRequestError("empty request: send a JSON object or a multipart form")
    try:
        import json

        parsed = json.loads(body)
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise BadRequestError(f"the JSON body must be an object, got {type(parsed).__name__}")
    return Arguments(parsed)


def _looks_base64(value: str) -> bool:
    """Whether a string is base64 image data rather than a path: base64 characters only, and its first bytes decode
    to an image format's signature (a path never does)."""
    if len(value) < 64 or not _BASE64.match(value):
        return False
    head = "".join(value[:128].split())[:64]
    try:
        data = base64.b64decode(head, altchars=b"-_" if "-" in head or "_" in head else None)
    except (binascii.Error, ValueError):
        return False
    return sniff(data[:32]) is not None


class Inputs:
    """Turns request values into what the library loads, under the operator's rules for paths and URLs, and decodes
    them with the service's limits."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.folder = None if config.allow_path is None else Path(config.allow_path).resolve()

    def item(self, value: Any, name: str) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if not isinstance(value, str):
            raise ArgumentError(f"{name} must be a base64 string, a data URI, a URL or an uploaded file, got "
                                  f"{type(value).__name__}")
        head = value[:16].lower()
        if head.startswith("data:"):
            return value
        if head.startswith(("http://", "https://")):
            if not self.config.allow_urls:
                raise PathRefusedError(f"{name}: URLs are not accepted by this service (started with --no-urls)")
            return value
        if _looks_base64(value):
            return self._base64(value, name)
        return self._path(value, name)

    def _base64(self, value: str, name: str) -> bytes:
        text = "".join(value.split())
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text
                                    else None, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"format error in base64 encoded string: invalid base64 data ({exc})", None,
                             describe(value)) from exc

    def _path(self, value: str, name: str) -> str:
        if self.folder is None:
            raise PathRefusedError(f"{name}: server-side file paths are refused ({describe(value)}); send the image "
                                   "itself (base64, data URI or upload), or start the service with --allow-path DIR")
        path = (self.folder / value).resolve() if not os.path.isabs(value) else Path(value).resolve()
        if path != self.folder and self.folder not in path.parents:
            raise PathRefusedError(f"{name}: {describe(value)} is outside the folder this service may read "
                                   f"({self.folder})")
        return str(path)

    def decode(self, item: Any, index: Optional[int] = None) -> np.ndarray:
        """One input as a BGR image, by the library's loader under the service's limits; an image over the pixel
        limit raises :class:`RequestLimitError` with the library's message."""
        return self.decode_data(self.read(item, index), index, describe(item))

    def read(self, item: Any, index: Optional[int] = None) -> bytes:
        """One input's encoded bytes (fetched, for a URL), under the service's limits."""
        data = read_encoded(item, index, describe(item), self.config.limits)
        assert data is not None
        return data

    def decode_data(self, data: bytes, index: Optional[int], source: Optional[str]) -> np.ndarray:
        """Encoded ``data`` as a BGR image, as :meth:`decode`."""
        limits = self.config.limits
        kind = sniff(data[:32])
        size = declared_size(data, kind) if kind is not None else None
        try:
            return decode(data, index, source, limits)
        except ImageError as exc:
            if size is not None and size[0] * size[1] > limits.max_pixels:
                raise RequestLimitError(str(exc)) from exc
            raise


# -- the application -------------------------------------------------------------------------------------------------

def error_response(exc: BaseException) -> Any:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    headers = {"Retry-After": "1"} if isinstance(exc, (OverloadedError, DatabaseConnectionError)) else None
    if status == 500 and not isinstance(exc, ModelRunError):
        logger.exception("internal error", exc_info=exc)
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


class Service:
    """The state behind the routes: the configuration, the batcher, the metrics."""

    def __init__(self, config: ServeConfig, batcher: Optional[Batcher] = None):
        self.config = config
        self.in_flight = 0  # requests being answered
        self.inputs = Inputs(config)
        self.batcher = batcher or Batcher(config.max_batch, config.max_wait_s, config.queue_limit, Metrics(),
                                          config.detectors, config.recognizers)
        self.metrics = self.batcher.metrics
        self.database = config.database
        # Reading and decoding take one thread per core: more would hold more decoded images at once (and grow
        # more malloc arenas) without decoding any faster.
        self.decoders = ThreadPoolExecutor(max(2, usable_cpus()), thread_name_prefix="deepbatch-serve-decode")

    async def decoding(self, load: Callable[[], Any]) -> Any:
        """``load()`` on a decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self.decoders, load)

    def detector_name(self, args: Arguments) -> str:
        name = args.text("detector_backend", self.config.detector)
        return name if name in self.config.detectors else DETECTORS.canonical(name)

    def model_name(self, args: Arguments) -> str:
        name = args.text("model_name", self.config.model)
        return name if name in self.config.recognizers else RECOGNIZERS.canonical(name)

    def images(self, value: Any, name: str) -> Tuple[List[Any], bool]:
        """The request's images for field ``name`` and whether one was sent alone (not in a list)."""
        values, single = (value, False) if isinstance(value, list) else ([value], True)
        if not values:
            raise ArgumentError(f"{name} is an empty list")
        if len(values) > self.config.max_images:
            raise RequestLimitError(f"{len(values)} images in one request, over this service's limit of "
                                    f"{self.config.max_images} (--max-images)")
        return [self.inputs.item(v, name if single else f"{name}[{i}]") for i, v in enumerate(values)], single

    async def run(self, items: List[Any], single: bool, make: Callable[[np.ndarray, Optional[str]], Job]) -> List[Any]:
        """Decode ``items`` off the event loop, batch them, and return one record per item (or raise the first
        error, re-addressed to its position when several images were sent)."""
        self.batcher.admit(len(items))
        submitted = False
        try:
            def load() -> List[Job]:
                return [make(self.inputs.decode(item, None if single else i), describe(item))
                        for i, item in enumerate(items)]

            jobs = await self.decoding(load)
            futures = self.batcher.submit(jobs)
            submitted = True
        finally:
            if not submitted:
                self.batcher.release(len(items))
        return await self.wait(futures, single)

    async def settle_jobs(self, images: int, load: Callable[[], List[Pending]],
                          job_of: Callable[[Pending], Optional[Job]]) -> List[Pending]:
        """Admit ``images`` images, run ``load`` off the event loop (it reads and decodes them, giving one item each
        with a :class:`Job` or without one, when the image needs no model call), batch the jobs and wait for all of
        them; their futures are then done, results and errors alike. An error raised by ``load`` fails the request."""
        self.batcher.admit(images)
        try:
            loaded = await self.decoding(load)
        except BaseException:
            self.batcher.release(images)
            raise
        jobs = [job for job in map(job_of, loaded) if job is not None]
        self.batcher.release(images - len(jobs))
        await self.settle(self.batcher.submit(jobs))
        return loaded

    async def settle(self, futures: List[Future]) -> None:
        """Wait until every future is done, or cancel them all and raise :class:`RequestTimeoutError`."""
        waiting = [asyncio.wrap_future(f) for f in futures]
        if not waiting:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), self.config.timeout_s)
        except asyncio.TimeoutError:
            for future in futures:
                future.cancel()
            raise RequestTimeoutError(f"the request was not answered within {self.config.timeout_s:g} s "
                                      "(--timeout)") from None

    async def wait(self, futures: List[Future], single: bool) -> List[Any]:
        await self.settle(futures)
        results = []
        for index, future in enumerate(futures):
            error = future.exception()
            if error is not None:
                if not single and isinstance(error, (ImageError, FaceNotDetectedError)):
                    error = error.at(index)
                raise error
            results.append(future.result())
        return results


def _face_png(pixels: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise ModelRunError("the face crop could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


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

    Handler = Callable[[Arguments], Awaitable[Dict[str, Any]]]

    def endpoint(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            started = time.perf_counter()
            if not authorised(request):
                response: Response = JSONResponse({"message": AUTH_MESSAGE}, status_code=401)
            else:
                service.in_flight += 1
                try:
                    response = JSONResponse(await handler(await read_arguments(request)))
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

    async def represent(args: Arguments) -> Dict[str, Any]:
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector, model = service.detector_name(args), service.model_name(args)
        rules = FaceRules.of(args.flag("enforce_detection", True), args.integer("max_faces", None),
                             args.integer("expand_percentage", 0) or 0, args.flag("align", True))
        normalization = args.text("normalization", "base")
        l2 = args.flag("l2_normalize", False)
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, model, normalization, source=source)

        records = await service.run(items, single, make)
        results = [embedding_dicts(record, l2_normalize=l2) for record in records]
        return {"results": results[0] if single else results}

    async def verify(args: Arguments) -> Dict[str, Any]:
        started = time.perf_counter()
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector, model = service.detector_name(args), service.model_name(args)
        metric = args.text("distance_metric", "cosine")
        check_metric(metric)
        rules = FaceRules.of(args.flag("enforce_detection", True), None, args.integer("expand_percentage", 0) or 0,
                             args.flag("align", True))
        normalization = args.text("normalization", "base")
        threshold = args.get("threshold")
        recognizer = await run_in_threadpool(service.batcher.recognizer_for, model)  # built once, then cached
        sides: List[Any] = []
        pending: List[Tuple[int, Any]] = []
        for side, name in enumerate(("img1", "img2")):
            value = args.image(name)
            if is_embedding(value) and value and not isinstance(value[0], (str, bytes)):
                sides.append(given_embedding(value, recognizer, side + 1))
            else:
                sides.append(None)
                pending.append((side, service.inputs.item(value, name)))

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, model, normalization, source=source)

        if pending:
            try:
                records = await service.run([item for _, item in pending], False, make)
            except (ImageError, FaceNotDetectedError) as exc:
                side = pending[exc.index or 0][0]
                raise at_pair(exc.at(None), 0, ("img1", "img2")[side], True) from None
            for (side, _), record in zip(pending, records):
                sides[side] = record
        limit = recognizer.threshold(metric) if threshold is None else float(threshold)
        calibrated = limit if metric not in recognizer.thresholds else recognizer.threshold(metric)
        distance, i, j = best_pair(sides[0], sides[1], metric)
        return {
            "verified": bool(distance <= limit),
            "distance": distance,
            "threshold": limit,
            "confidence": recognizer.confidence(distance, metric, distance <= calibrated),
            "model": args.text("model_name", config.model),
            "detector_backend": args.text("detector_backend", config.detector),
            "similarity_metric": metric,
            "facial_areas": {"img1": face_area(sides[0], i), "img2": face_area(sides[1], j)},
            "time": round(time.perf_counter() - started, 2),
        }

    async def detect(args: Arguments) -> Dict[str, Any]:
        detector = service.detector_name(args)
        rules = FaceRules("empty", args.integer("max_faces", None))
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, source=source)

        records = await service.run(items, single, make)
        results = [[{"facial_area": facial_area(face.box, face.landmarks, record.shape),
                     "confidence": confidence(face.score), "score": float(face.score)}
                    for face in record.faces] for record in records]
        shapes = [{"height": int(r.shape[0]), "width": int(r.shape[1])} for r in records]
        return {"results": results[0], "image": shapes[0]} if single else {"results": results, "images": shapes}

    async def extract_faces(args: Arguments) -> Dict[str, Any]:
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector = service.detector_name(args)
        rules = FaceRules.of(args.flag("enforce_detection", True), args.integer("max_faces", None),
                             args.integer("expand_percentage", 0) or 0, args.flag("align", True))
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, crops=True, source=source)

        records = await service.run(items, single, make)
        results = [[{"face": _face_png(crop), "facial_area": facial_area(face.box, face.landmarks, record.shape),
                     "confidence": confidence(face.score)}
                    for face, crop in zip(record.faces, record.crops)] for record in records]
        return {"results": results[0] if single else results}

    async def register(args: Arguments) -> Dict[str, Any]:
        return await register_faces(service, args)

    async def search(args: Arguments) -> Dict[str, Any]:
        return await search_faces(service, args)

    routes: Dict[str, Handler] = {"/represent": represent, "/verify": verify, "/detect": detect,
                                  "/extract_faces": extract_faces, "/register": register, "/search": search}
    for path, handler in routes.items():
        app.add_api_route(path, endpoint(path, handler), methods=["POST"], response_class=JSONResponse,
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


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before it is all read (at once when its
    ``Content-Length`` says so; a chunked body fails its reading with :class:`RequestLimitError`)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = int(limit)
        self.state = getattr(app, "state", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Dict[str, Any]]],
                       send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestLimitError(self.message)
            return message

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"the request body is over this service's limit of {self.limit} bytes (--max-body-bytes)"

    async def _refuse(self, send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        import json

        body = json.dumps({"error": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

