"""``/register`` and ``/search``: the face database behind the service, with DeepFace's API fields and answers.

The operator names the database when starting the service (``--database`` and ``--database-type``, or the
environment variables of :func:`deepbatch.store.open_store`); without one both routes answer 503 saying so. The
images of a request go through the service's :class:`~deepbatch.serve.batcher.Batcher` like those of
``/represent``, so concurrent registrations and searches share detector and recognizer calls; what is written and
what is found are those of :func:`deepbatch.register` and :func:`deepbatch.search` on the same photos (the same
records, the same :func:`~deepbatch.database.image_entry` rows, the same :func:`~deepbatch.database.match_records`
tables). Database work runs on the thread pool, one connection per request step, never on the event loop.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Union

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..checks import refuse_anti_spoofing
from ..core.stream import FaceRules
from ..database import Matching, embedding_config, entry_name, image_entry, match_records
from ..errors import (
    ArgumentError,
    DatabaseNotConfiguredError,
    FaceNotDetectedError,
    ImageError,
    RequestLimitError,
)
from ..io.images import describe
from ..records import ImageRecord
from ..store import DATABASE_TYPES, open_store
from ..store.base import EmbeddingConfig, FaceStore, ImageEntry
from .jobs import Job

if TYPE_CHECKING:
    from .arguments import Arguments
    from .service import Service

NOT_CONFIGURED = ("no face database is configured: start the service with --database FILE (the embedded database) "
                  "or --database URI / --database-type postgres|pgvector")




@dataclass(frozen=True)
class DatabaseChoice:
    """The face database the operator chose: ``database_type`` and its ``connection_details`` (None: the
    environment variables of :func:`~deepbatch.store.open_store`)."""

    database_type: str = "embedded"
    connection_details: Optional[str] = None

    def __post_init__(self) -> None:
        if self.database_type not in DATABASE_TYPES:
            raise ArgumentError(f"database_type must be one of {DATABASE_TYPES}, got {self.database_type!r}")

    def open(self) -> FaceStore:
        return open_store(self.database_type, self.connection_details)

    def describe(self) -> str:
        return self.database_type


def settings(args: Arguments) -> Tuple[FaceRules, str, bool, float, bool]:
    """``(rules, normalization, l2_normalize, expand_percentage, align)`` of a request, with DeepFace's defaults."""
    refuse_anti_spoofing(args.flag("anti_spoofing", False))
    align = args.flag("align", True)
    expand = args.integer("expand_percentage", 0) or 0
    rules = FaceRules.of(args.flag("enforce_detection", True), None, expand, align)
    return rules, args.text("normalization", "base"), args.flag("l2_normalize", False), float(expand), align


async def configuration(service: Service, args: Arguments, detector: str, model: str) -> Tuple[Any, EmbeddingConfig]:
    """The recognizer and the embedding configuration a request registers or searches under."""
    _, normalization, l2, expand, align = settings(args)

    def resolve() -> Tuple[Any, EmbeddingConfig]:
        recognizer = service.batcher.recognizer_for(model)
        config = embedding_config(recognizer, service.batcher.detector_for(detector), align, l2, normalization,
                                  expand)
        return recognizer, config

    return await run_in_threadpool(resolve)


def _names(value: Any, count: int) -> Union[None, str, List[str]]:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) != count:
            raise ArgumentError(f"img_name has {len(value)} names for {count} images")
        return value
    raise ArgumentError(f"img_name must be a string or a list of strings, got {type(value).__name__}")


@dataclass
class _Pending:
    """One image of a ``/register`` request on its way: its digest ("" when it could not be read) and name, then
    its job, or why it has none (``failed``; ``skipped`` when it is registered already)."""

    digest: str
    name: str
    job: Optional[Job] = None
    failed: Optional[BaseException] = None
    skipped: bool = False


async def register(service: Service, args: Arguments) -> Dict[str, Any]:
    """DeepFace's ``/register``: ``{"inserted": faces written}`` plus ``images``, ``skipped`` and ``errors`` as
    :func:`deepbatch.register` returns them. An image already registered under the same settings (same bytes) is
    skipped before it is decoded; an image that cannot be read, or has no face with ``enforce_detection``, is
    registered as an error row and reported, and the request's other images are registered."""
    database = service.database
    if database is None:
        raise DatabaseNotConfiguredError(NOT_CONFIGURED)
    rules, normalization, l2, _, _ = settings(args)
    detector, model = service.detector_name(args), service.model_name(args)
    items, single = service.images(args.image("img"), "img")
    img_name = _names(args.get("img_name"), len(items))
    recognizer, config = await configuration(service, args, detector, model)
    config_id = 0

    def load() -> List[_Pending]:
        nonlocal config_id
        pending: List[_Pending] = []
        datas: List[Optional[bytes]] = []
        for position, item in enumerate(items):
            index = None if single else position
            try:
                data = service.inputs.read(item, index)
            except RequestLimitError:
                raise
            except ImageError as exc:
                pending.append(_Pending("", entry_name(item, img_name, position, ""), failed=exc))
                datas.append(None)
                continue
            digest = hashlib.sha256(data).hexdigest()
            pending.append(_Pending(digest, entry_name(item, img_name, position, digest)))
            datas.append(data)
        with database.open() as store:
            config_id = store.config_id(config, create=True)
            known = store.known_digests(config_id, [p.digest for p in pending if p.digest])
        seen: Set[str] = set(known)
        for position, (entry, encoded) in enumerate(zip(pending, datas)):
            if encoded is None:
                continue
            if entry.digest in seen:  # registered before, or twice in this request: once, as the library does
                entry.skipped = True
                continue
            seen.add(entry.digest)
            source = describe(items[position])
            try:
                image = service.inputs.decode_data(encoded, None if single else position, source)
            except RequestLimitError:
                raise
            except ImageError as exc:
                entry.failed = exc
                continue
            entry.job = Job(image, detector, rules, model, normalization, source=source)
        return pending

    pending = await service.settle_jobs(len(items), load, lambda p: p.job)
    result: Dict[str, Any] = {"inserted": 0, "images": 0, "skipped": 0, "errors": []}
    entries: List[ImageEntry] = []
    for entry in pending:
        if entry.skipped:
            result["skipped"] += 1
            continue
        if not entry.digest:  # unreadable, so without a digest: reported, not written (as the library does)
            result["errors"].append({"img_name": entry.name, "error": str(entry.failed)})
            continue
        outcome: Any = entry.failed
        if entry.job is not None:
            outcome = entry.job.future.exception() or entry.job.future.result()
        if isinstance(outcome, (ImageError, FaceNotDetectedError)):
            outcome = ImageRecord(0, None, error=outcome)
        if not isinstance(outcome, ImageRecord):
            raise outcome
        row = image_entry(outcome, entry.digest, entry.name, l2, config.dimensions)
        if row.error is not None:
            result["errors"].append({"img_name": entry.name, "error": row.error})
        entries.append(row)

    def write() -> Tuple[int, int]:
        with database.open() as store:
            written = store.insert_embeddings(config_id, entries) if entries else (0, 0)
            store.after_insert(config_id)
        return written

    result["images"], result["inserted"] = await run_in_threadpool(write)
    return result


async def search(service: Service, args: Arguments) -> Dict[str, Any]:
    """DeepFace's ``/search``: ``{"results": tables}``, one table of matches per face of the image (nearest
    first, DeepFace's columns plus the query face's ``source_*`` box), a list of those per image for a list of
    images, as :func:`deepbatch.search` with ``return_type="dict"``."""
    database = service.database
    if database is None:
        raise DatabaseNotConfiguredError(NOT_CONFIGURED)
    rules, normalization, _, _, _ = settings(args)
    detector, model = service.detector_name(args), service.model_name(args)
    items, single = service.images(args.image("img"), "img")
    recognizer, config = await configuration(service, args, detector, model)
    threshold = args.get("threshold")
    ef_search = args.integer("ef_search", None)
    try:
        limit = None if threshold is None else float(threshold)
    except (TypeError, ValueError):
        raise ArgumentError(f"threshold must be a number, got {threshold!r}") from None
    matching = Matching.of(recognizer, args.text("distance_metric", "cosine"), args.flag("similarity_search", False),
                           args.integer("k", None), args.text("search_method", "exact"), limit, ef_search, "dict")

    def configured() -> int:
        with database.open() as store:  # a database without these embeddings fails before any model runs
            return store.config_id(config)

    config_id = await run_in_threadpool(configured)

    def make(image: np.ndarray, source: Optional[str]) -> Job:
        return Job(image, detector, rules, model, normalization, source=source)

    records = await service.run(items, single, make)

    def match() -> List[List[Any]]:
        with database.open() as store:
            return match_records(store, config_id, config, recognizer, matching, records)

    tables = await run_in_threadpool(match)
    if math.isinf(matching.limit):  # every candidate ranked: no threshold to report (JSON has no infinity)
        for faces in tables:
            for table in faces:
                for row in table:
                    row["threshold"] = None
    return {"results": tables[0] if single else tables}
