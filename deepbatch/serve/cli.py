"""The ``deepbatch serve`` subcommand: options, then uvicorn running :func:`~deepbatch.serve.app.create_app`.

uvicorn stops on SIGTERM or Ctrl-C as a service should: it stops accepting connections, lets the requests in flight
finish (up to ``--graceful-timeout`` seconds), then the application's shutdown drains the batcher and the process
exits with 0.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ArgumentError, MissingDependencyError
from ..store import DATABASE_TYPES
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, DEFAULT_QUEUE_LIMIT

logger = logging.getLogger(__name__)


def add_serve_command(command: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``serve`` through the command line's ``command(name, **kwargs)`` factory."""
    serve = command(
        "serve", help="serve the models over HTTP, batching concurrent requests together",
        description="An HTTP service: /represent and /verify (and /register, /search with --database) with "
                    "DeepFace's API fields and answers, /detect, "
                    "/extract_faces, /health, /metrics (Prometheus), /docs (OpenAPI) and a page at /. Images of "
                    "concurrent requests share one model call per stage (detection, then embedding).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=5005, help="port (default 5005, as DeepFace's API)")
    serve.add_argument("--backend", "--detector", dest="detector", default="scrfd",
                       help="default detector of requests that name none (default scrfd)")
    serve.add_argument("--model", default="arcface_mbf", help="default recognizer (default arcface_mbf)")
    serve.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                       help=f"most images per detector call across requests (default {DEFAULT_MAX_BATCH})")
    serve.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_S * 1000,
                       help="longest wait for more images while requests are arriving (default "
                            f"{DEFAULT_MAX_WAIT_S * 1000:g} ms)")
    serve.add_argument("--queue-limit", type=int, default=DEFAULT_QUEUE_LIMIT,
                       help=f"images waiting at most; more are refused with 503 (default {DEFAULT_QUEUE_LIMIT})")
    serve.add_argument("--max-body-bytes", type=int, default=32 << 20, help="largest request body (default 32 MiB)")
    serve.add_argument("--max-images", type=int, default=16, help="most images in one request (default 16)")
    serve.add_argument("--max-pixels", type=int, default=50_000_000,
                       help="largest image, width x height (default 50 million)")
    serve.add_argument("--timeout", type=float, default=60.0, help="seconds before a request gets 504 (default 60)")
    serve.add_argument("--allow-path", type=Path, default=None, metavar="DIR",
                       help="let requests name image files inside DIR (refused by default)")
    serve.add_argument("--no-urls", dest="allow_urls", action="store_false",
                       help="refuse image URLs (by default fetched under the library's URL rules)")
    serve.add_argument("--token", default=os.environ.get("DEEPBATCH_AUTH_TOKEN"),
                       help="require 'Authorization: Bearer TOKEN' (default $DEEPBATCH_AUTH_TOKEN; none: open)")
    serve.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds SIGTERM waits for requests in flight (default 30)")
    serve.add_argument("--database", "--db", dest="db", metavar="FILE|URI", default=None,
                       help="the face database of /register and /search: a file (the embedded database) or a "
                            "PostgreSQL URI (default: none, and those routes answer 503)")
    serve.add_argument("--database-type", choices=DATABASE_TYPES, default=None,
                       help="embedded, postgres or pgvector (default: embedded for a file, pgvector for a URI); "
                            "without --database, the connection comes from $DEEPBATCH_DATABASE_PATH or "
                            "$DEEPBATCH_POSTGRES_URI")
    serve.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: one process, batched by its own threads (default); ray: Ray Serve replicas, "
                            "batched by Ray Serve's @serve.batch (needs the serve-ray extra)")
    serve.add_argument("--replicas", type=int, default=1, help="replicas with --engine ray (default 1)")
    serve.set_defaults(handler=cmd_serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "serve", "deepbatch serve") from exc
    from ..detectors.base import DETECTORS
    from ..recognition.base import RECOGNIZERS
    from ..store.cli import database_type
    from .app import ServeConfig, create_app
    from .face_db import DatabaseChoice

    DETECTORS.canonical(args.detector)  # a misspelt name fails here, before the server starts
    RECOGNIZERS.canonical(args.model)
    if args.allow_path is not None and not args.allow_path.is_dir():
        raise ArgumentError(f"--allow-path must be an existing folder, got {str(args.allow_path)!r}")
    config = ServeConfig(detector=args.detector, model=args.model, max_batch=args.max_batch,
                         max_wait_s=args.max_wait_ms / 1000, queue_limit=args.queue_limit,
                         max_body_bytes=args.max_body_bytes, max_images=args.max_images, max_pixels=args.max_pixels,
                         timeout_s=args.timeout, allow_path=args.allow_path, allow_urls=args.allow_urls,
                         token=args.token or None)
    if args.db is not None or args.database_type is not None:
        config.database = DatabaseChoice(database_type(args), args.db)
        config.database.open().close()  # a database that cannot be opened fails here, before the server starts
    if args.engine == "ray":
        from .ray_engine import run

        if args.replicas < 1:
            raise ArgumentError(f"--replicas must be a positive integer, got {args.replicas}")
        return run(config, args.replicas, args.host, args.port)
    app: Any = create_app(config)
    logger.warning("deepbatch serve on http://%s:%d (detector %s, model %s)", args.host, args.port, args.detector,
                   args.model)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on",
                timeout_graceful_shutdown=args.graceful_timeout)
    return 0
