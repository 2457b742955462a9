"""Batch sizes and batches: every default batch size, ``"auto"`` resolved, and the one way a sequence is cut into
batches (:func:`chunks` for a list or array, :func:`numbered_chunks` for any iterable, read lazily). Cheap to
import.

* :data:`DEFAULT_BATCH_SIZE`: images per detector call when a caller gives none;
* :data:`DEFAULT_FACE_BATCH`: faces per recognizer call;
* :data:`CPU_AUTO_BATCH`, :data:`GPU_AUTO_BATCH`: what ``batch_size="auto"`` gives on each device
  (:func:`resolve_batch_size`);
* :data:`RAY_LOOP_BATCH_SIZE`, :data:`RAY_GPU_BATCH_SIZE`: rows per Ray actor call (see
  :func:`deepbatch.ray.default_batch_size`).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Iterator, List, Protocol, Tuple, TypeVar, Union

from .checks import check_batch_size


class Sliceable(Protocol):
    """What :func:`chunks` cuts: a list, tuple or array."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Any: ...


S = TypeVar("S", bound=Sliceable)
T = TypeVar("T")

BatchSize = Union[int, str]  # a positive int, or "auto"

DEFAULT_BATCH_SIZE = 32
DEFAULT_FACE_BATCH = 64
# On a CPU the model is about as fast per image at batch 1 as at 32, and single-image chunks keep every core busy
# from the first image to the last (a large chunk leaves cores idle while the last ones run); on a GPU each call
# has a fixed cost that large batches spread (benchmarks/peers.py measures both).
CPU_AUTO_BATCH = 1
GPU_AUTO_BATCH = 32
RAY_LOOP_BATCH_SIZE = 8  # detectors that run image by image: small batches balance the actors
RAY_GPU_BATCH_SIZE = 64  # batching detectors on a GPU worker


def resolve_batch_size(batch_size: BatchSize, detector: Any = None) -> int:
    """``batch_size`` as a positive int: ``"auto"`` gives :data:`GPU_AUTO_BATCH` when ``detector``'s model runs on
    CUDA or TensorRT, else :data:`CPU_AUTO_BATCH` (detectors without an ONNX model run on the CPU)."""
    if batch_size == "auto":
        from .runtime.session import GPU_PROVIDERS

        providers = getattr(getattr(detector, "model", None), "providers", None) or ["CPUExecutionProvider"]
        return GPU_AUTO_BATCH if providers[0] in GPU_PROVIDERS else CPU_AUTO_BATCH
    return check_batch_size(batch_size, auto=True)


def chunks(items: S, size: int) -> Iterator[S]:
    """Consecutive slices of ``items`` (a list, tuple or array) of at most ``size`` elements, the last one shorter;
    an :class:`~deepbatch.errors.ArgumentError` when ``size`` is not a positive integer."""
    size = check_batch_size(size)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def numbered_chunks(items: Iterable[T], size: int) -> Iterator[Tuple[int, List[T]]]:
    """``(start, chunk)`` for consecutive lists of at most ``size`` items of any iterable, read lazily (a generator
    is never read further than the chunk being yielded)."""
    size = check_batch_size(size)
    iterator = iter(items)
    start = 0
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield start, chunk
        start += len(chunk)
