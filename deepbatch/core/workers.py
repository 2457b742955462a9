"""Pipelined chunk processing: the next chunks are decoded and letterboxed while the model runs the current one.

A detector's work on a chunk splits in two (see :func:`detector_stages`): a CPU half (reading and decoding the
images, letterboxing them into a batch blob) and a model half (one ``session.run``, decode, NMS). :func:`prefetch_map`
runs the CPU half of up to ``prefetch`` chunks ahead on ``workers`` threads while the calling thread runs the model
half of the current chunk; OpenCV's decode and resize and numpy's arithmetic release the GIL, and so does ONNX
Runtime, so the stages really overlap. Results come back in input order.

:func:`prefetch_map` holds at most ``prefetch + 1`` items whatever the length of the input (those in flight, and the
one the consumer holds): the input iterator is read in the calling thread, one item at a time, only when a slot
frees up, so a generator of frames is never read further ahead than that. The streaming core chains two of them
(detection, then cutting faces), so it holds one chunk more: see :func:`deepbatch.stream.chunks_held`. Memory is
bounded by pixels too: given a ``weigh`` and a ``budget`` (the pixels of the images a chunk will decode, against
:attr:`~deepbatch.io.images.ImageLimits.max_pixels_in_flight`), chunks are cut so that one fits the budget (an
image larger than it makes a chunk of its own) and a chunk is started only while everything in flight fits the
budget with it, or when nothing else is in flight: a huge image runs alone.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, Callable, Deque, Generator, Iterable, Iterator, List, Optional, Tuple, TypeVar

from ..batching import CPU_AUTO_BATCH as CPU_AUTO_BATCH
from ..batching import GPU_AUTO_BATCH as GPU_AUTO_BATCH
from ..batching import BatchSize as BatchSize
from ..batching import numbered_chunks as numbered_chunks
from ..batching import resolve_batch_size as resolve_batch_size
from ..checks import check_batch_size
from ..errors import ArgumentError

Weigh = Callable[[Any], int]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_PREFETCH = 2  # chunks prepared ahead: one being prepared, one ready, while the model runs a third


def default_workers() -> int:
    """Prefetch threads: one per two usable cores, from one to four.

    With two cores (ONNX Runtime's intra-op threads on both) one thread decodes and letterboxes as fast as a second
    would: the machine is saturated either way. On bigger machines a single thread decoding large JPEGs becomes the
    bottleneck, so more chunks are prepared at once.
    """
    from ..runtime.session import usable_cpus

    return min(4, max(1, usable_cpus() // 2))


def budget_chunks(items: Iterable[T], size: int, weigh: Weigh,
                  budget: int) -> Iterator[Tuple[int, List[T], int]]:
    """``(start, chunk, weight)`` for consecutive chunks of at most ``size`` items whose weights (``weigh(item)``,
    e.g. the pixels an image will decode to) add up to at most ``budget``; an item heavier than the budget makes a
    chunk of its own. The iterable is read lazily, one item ahead."""
    size = check_batch_size(size)
    start = 0
    chunk: List[T] = []
    weight = 0
    for item in items:
        w = max(0, int(weigh(item)))
        if chunk and weight + w > budget:
            yield start, chunk, weight
            start += len(chunk)
            chunk, weight = [], 0
        chunk.append(item)
        weight += w
        if len(chunk) == size:  # yielded before the next item is read
            yield start, chunk, weight
            start += len(chunk)
            chunk, weight = [], 0
    if chunk:
        yield start, chunk, weight


def prefetch_map(function: Callable[[T], R], items: Iterable[T], workers: Optional[int] = None,
                 prefetch: int = DEFAULT_PREFETCH, weigh: Optional[Weigh] = None,
                 budget: Optional[int] = None) -> Generator[R, None, None]:
    """``function(item)`` for each item, in order, computed up to ``prefetch`` items ahead on ``workers`` threads.

    ``items`` is read in the calling thread, never more than ``prefetch + 1`` items ahead of the result being
    consumed. With ``weigh`` and ``budget``, an item is also started only while the weights of the items in flight
    (started, or handed to the consumer who has not come back yet) and its own add up to at most ``budget``, or
    when nothing is in flight. ``workers=0`` (or ``prefetch=0``) computes everything inline, in the calling
    thread. An exception raised by ``function`` is re-raised here, in order, when its item's turn comes. Closing the
    iterator early cancels the pending items and waits for the running ones, so no thread outlives it.
    """
    workers = default_workers() if workers is None else workers
    if workers < 0 or prefetch < 0:
        raise ArgumentError(f"workers and prefetch must be >= 0, got workers={workers}, prefetch={prefetch}")
    if workers == 0 or prefetch == 0:
        yield from map(function, items)
        return
    iterator = iter(items)
    pending: Deque[Tuple[Future, int]] = deque()
    held = 0  # the weight in flight
    waiting: List[Tuple[Any, int]] = []  # an item read but not started: the budget was full
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepbatch-prefetch")

    def fill(limit: int) -> None:
        """Start items until ``limit`` are pending, the input ends, or the next one does not fit the budget."""
        nonlocal held
        while len(pending) < limit:
            if not waiting:
                for item in islice(iterator, 1):
                    waiting.append((item, weigh(item) if weigh is not None else 0))
                if not waiting:
                    return
            item, weight = waiting[0]
            if budget is not None and held > 0 and held + weight > budget:
                return
            waiting.pop()
            pending.append((pool.submit(function, item), weight))
            held += weight

    try:
        fill(prefetch)
        handed = 0
        while True:
            held -= handed  # the consumer came back for the next result: the last one is its own now
            if not pending:
                fill(prefetch)
                if not pending:
                    return
            future, handed = pending.popleft()
            fill(prefetch)
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


Stages = Tuple[Callable[[List[Any]], Any], Callable[[Any], List[Any]]]


def detector_stages(detector: Any, batch_size: Optional[int] = None) -> Stages:
    """``(prepare, infer)`` for one chunk of validated images, of any size: ``infer(prepare(images))``
    is one ``Faces`` per image. ``prepare`` is thread-safe and runs ahead on prefetch threads (letterboxing, for
    ONNX detectors); a detector without a CPU half does all its work in ``infer``. See
    :meth:`deepbatch.detectors.base.Detector.prepare_batch`. ``batch_size`` is deprecated: it never had an effect."""
    if batch_size is not None:
        warnings.warn("detector_stages() ignores batch_size; call detector_stages(detector)", DeprecationWarning,
                      stacklevel=2)
    return detector.prepare_batch, detector.infer_batch


def parallel_workers() -> int:
    """Threads that each run whole chunks for a detector whose ``parallel_chunks`` is True: one per usable core,
    from two to eight (two keep a core busy while the other thread waits on a read)."""
    from ..runtime.session import usable_cpus

    return min(8, max(2, usable_cpus()))


def detector_canvas(detector: Any) -> Any:
    """The :class:`~deepbatch.ops.letterbox.InputSpec` of the canvas a detector fits every image onto, or None when
    it looks at images at their own size (then nothing may be decoded smaller than it is)."""
    return detector.canvas
