"""The state behind the routes (:class:`Service`: configuration, batcher, metrics, decoding threads) and the
answer to a failed request (:func:`error_response`, status codes by error in :data:`STATUS`)."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Tuple, TypeVar

import numpy as np
from starlette.responses import JSONResponse

from ..detectors.base import DETECTORS
from ..errors import (
    ArgumentError,
    BadRequestError,
    DatabaseConnectionError,
    DatabaseNotConfiguredError,
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
from ..io.images import describe
from ..recognition.base import RECOGNIZERS
from ..runtime.session import usable_cpus
from .arguments import Arguments
from .batcher import Batcher
from .config import ServeConfig
from .inputs import Inputs
from .jobs import Job, Ticket
from .metrics import Metrics

logger = logging.getLogger(__name__)
Pending = TypeVar("Pending")


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
        error, re-addressed to its position when several images were sent). A lone request runs its models on the
        thread that decoded it (:meth:`Batcher.claim`). The request's timeout covers it all, decoding included."""
        started = time.monotonic()
        self.batcher.admit(len(items))
        ticket = Ticket(len(items))

        def load() -> List[Job]:
            jobs = [make(self.inputs.decode(item, None if single else i), describe(item))
                    for i, item in enumerate(items)]
            if self.batcher.claim(ticket):
                self.batcher.run_claimed(jobs)
            return jobs

        try:
            jobs = await asyncio.wait_for(self.decoding(load), self.config.timeout_s)
            futures = [job.future for job in jobs] if ticket.state == "claimed" else self.batcher.submit(jobs, ticket)
        except asyncio.TimeoutError:
            raise self._timed_out() from None
        finally:
            self.batcher.give_back(ticket)  # a request that failed or timed out before its images were handed over
        return await self.wait(futures, single, self.config.timeout_s - (time.monotonic() - started))

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

    async def settle(self, futures: List[Future], timeout_s: Optional[float] = None) -> None:
        """Wait until every future is done, for ``timeout_s`` (the request's timeout by default), or cancel them all
        and raise :class:`RequestTimeoutError`."""
        if all(future.done() for future in futures):
            return
        waiting = [asyncio.wrap_future(f) for f in futures]
        limit = self.config.timeout_s if timeout_s is None else max(0.0, timeout_s)
        try:
            await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), limit)
        except asyncio.TimeoutError:
            for future in futures:
                future.cancel()
            raise self._timed_out() from None

    def _timed_out(self) -> RequestTimeoutError:
        return RequestTimeoutError(f"the request was not answered within {self.config.timeout_s:g} s (--timeout)")

    async def wait(self, futures: List[Future], single: bool, timeout_s: Optional[float] = None) -> List[Any]:
        await self.settle(futures, timeout_s)
        results = []
        for index, future in enumerate(futures):
            error = future.exception()
            if error is not None:
                if not single and isinstance(error, (ImageError, FaceNotDetectedError)):
                    error = error.at(index)
                raise error
            results.append(future.result())
        return results
