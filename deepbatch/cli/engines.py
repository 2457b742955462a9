"""Engines: how the work items of ``detect`` and ``represent`` are run, and the models they build."""

from __future__ import annotations

import argparse
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator

from ..core.workers import resolve_batch_size
from ..plan import RunPlan, model_options
from ..sources import WorkItem
from .sinks import Sink


def _paired(items: Iterator[WorkItem], pending: Deque[WorkItem]) -> Iterator[Any]:
    """The payloads of the readable ``items``, each item queued in ``pending`` as it is read."""
    for item in items:
        pending.append(item)
        if item.error is None:
            yield item.payload


def run_local(plan: RunPlan, items: Iterator[WorkItem], sink: Sink) -> None:
    """``detect`` or ``represent`` in this process: :func:`~deepbatch.core.stream.iter_records` over the stream,
    ``batch_size`` images per model call (and, for ``represent``, their faces embedded together), a few chunks of
    images in memory at a time. ``detect`` decodes images in full only for ``--draw`` and ``--save-crops`` (else
    a large JPEG is decoded at the scale the detector's canvas needs)."""
    from ..core.stream import iter_records

    detector = plan.models.build_detector()
    recognizer = plan.models.build_recognizer() if plan.command == "represent" else None
    pending: Deque[WorkItem] = deque()

    def flush_failed() -> None:
        while pending and pending[0].error is not None:
            sink.add(pending.popleft(), None)

    for record in iter_records(_paired(items, pending), detector, resolve_batch_size(plan.batch_size, detector),
                               plan.rules, recognizer=recognizer,
                               spec=None if recognizer is None else recognizer.spec_for(plan.models.normalization),
                               crops=plan.crops, reduced=not plan.full_resolution, on_error="skip"):
        flush_failed()
        sink.add(pending.popleft(), record)
    flush_failed()


LOCAL_ENGINES: Dict[str, Callable[[RunPlan, Iterator[WorkItem], Sink], None]] = {
    "detect": run_local,
    "represent": run_local,
}
# Engines that run the whole job on a cluster and write Parquet there: ``deepbatch.ray.run_cli(plan)``.
CLUSTER_ENGINES = ("ray",)


def _model_options(args: argparse.Namespace, factory: Any, which: str) -> Dict[str, Any]:
    """The command line's model options that ``factory`` takes (:func:`deepbatch.plan.model_options`)."""
    return model_options(args, factory, which)


def detector_options(args: argparse.Namespace) -> Dict[str, Any]:
    from ..detectors.base import DETECTORS

    return _model_options(args, DETECTORS.entry(args.backend).factory, "detector")


def build_cli_detector(args: argparse.Namespace) -> Any:
    from ..detectors.base import build_detector

    return build_detector(args.backend, **args.detector_options)


def build_cli_recognizer(args: argparse.Namespace) -> Any:
    from ..recognition.base import RECOGNIZERS, build_recognizer

    return build_recognizer(args.model, **_model_options(args, RECOGNIZERS.entry(args.model).factory, "recognizer"))
