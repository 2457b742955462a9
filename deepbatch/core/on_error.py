"""What an unusable image does to a batch: the ``on_error`` policy, written once for every edge.

``on_error="raise"`` (the default) stops a batch at the first unusable image (an :class:`~deepbatch.errors.ImageError`,
or, with ``enforce_detection``, a :class:`~deepbatch.errors.FaceNotDetectedError`) in input order, naming its index
and path; ``"skip"`` records the error and goes on with the other images. :func:`check_on_error` checks the choice,
:func:`collect_batch` turns the per-image outcomes of a stream into what the batch verbs return: one entry per
image, and for ``"skip"`` a :class:`BatchResult` whose ``errors`` maps each skipped image's index to its exception.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..errors import ArgumentError, FaceNotDetectedError, ImageError

logger = logging.getLogger("deepbatch")

ON_ERROR = ("raise", "skip")


def check_on_error(on_error: str) -> None:
    """Raise :class:`ArgumentError` unless ``on_error`` is one of :data:`ON_ERROR`."""
    if on_error not in ON_ERROR:
        raise ArgumentError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


class BatchResult(List[Any]):
    """A list with one entry per input image, plus ``errors``: ``{index: exception}`` for the images that failed
    when the caller asked to keep going (``on_error="skip"``); their entries are empty lists."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.errors: Dict[int, Exception] = {}


def collect_batch(entries: Iterable[Tuple[int, Optional[Exception], Any]], single: bool, count: int) -> Any:
    """The batch API's return value from ``(index, error, entry)`` per image, in input order: the entry itself for a
    single image, else a :class:`BatchResult` whose ``errors`` maps each failed image's index to its exception
    (logged once). A single image's error is raised without the batch index it was given."""
    results = BatchResult()
    try:
        for index, error, entry in entries:
            if error is not None:
                results.errors[index] = error
            results.append(entry)
    except (ImageError, FaceNotDetectedError) as exc:
        if single:
            raise exc.at(None) from exc.__cause__
        raise
    if results.errors:
        logger.warning("%d of %d images were skipped: %s", len(results.errors), count,
                       "; ".join(str(e) for e in results.errors.values()))
    return results[0] if single else results
