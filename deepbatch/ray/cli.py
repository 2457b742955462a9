"""The command line's ``--engine ray``: :func:`run_cli` runs a :class:`deepbatch.plan.RunPlan` on Ray and writes
Parquet."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Dict

from ..summary import run_summary
from .columns import import_ray, paths_dataset
from .parquet import summarize, write_parquet
from .pool import extract_faces, represent

logger = logging.getLogger(__name__)


def _keep_signal_handlers() -> Dict[int, Any]:
    """The handlers of SIGTERM, SIGINT and SIGHUP, to restore after ``ray.init`` replaces them (so that a stopped
    run exits as the command line says: 130, outputs closed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    names = ("SIGTERM", "SIGINT", "SIGHUP")
    return {getattr(signal, n): signal.getsignal(getattr(signal, n)) for n in names if hasattr(signal, n)}


def _restore_signal_handlers(handlers: Dict[int, Any]) -> None:
    import signal

    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


RAY_DATA_THREADS = ("StreamingExecutor-", "ray-data-")  # the names Ray Data gives its executor's threads


def _let_ray_data_stop(timeout: float = 30.0) -> None:
    """Wait, at most ``timeout`` seconds, for Ray Data's executor threads after a stopped or failed run: shutting
    Ray down under a thread that still uses it makes Ray's core worker end the process with exit code 1, instead
    of the stop's 130 (Ray Data itself waits only 2 s for them)."""
    import threading

    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.name.startswith(RAY_DATA_THREADS):
            thread.join(max(0.0, deadline - time.monotonic()))


def run_cli(plan: Any) -> int:
    """``deepbatch detect|represent PATH... --engine ray --workers N [--gpus-per-worker G] --output X.parquet``.

    Runs :func:`extract_faces` or :func:`represent` on the image sources of ``plan`` (a
    :class:`deepbatch.plan.RunPlan`: the same models, options, face rules and image limits as the local engine) on
    Ray (the cluster at ``$RAY_ADDRESS``, else a local one started for the run) and writes the rows as Parquet.
    Returns how many images failed (each is logged).
    """
    ray = import_ray()
    verbose = plan.verbose
    if not verbose:  # Ray and Ray Data log every start and finish at INFO: keep stderr for deepbatch's summary
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    started = not ray.is_initialized()
    if started:
        handlers = _keep_signal_handlers()
        ray.init(logging_level=logging.INFO if verbose else logging.WARNING)
        _restore_signal_handlers(handlers)
    ray.data.DataContext.get_current().enable_progress_bars = plan.progress
    began = time.perf_counter()
    models = plan.models
    try:
        ds = paths_dataset([s.location for s in plan.sources])
        common = dict(detector_backend=models.detector, detector_options=models.detector_kwargs,
                      batch_size=None if plan.batch_size == "auto" else plan.batch_size,
                      num_workers=plan.workers, num_gpus_per_worker=plan.gpus_per_worker, align=plan.rules.align,
                      enforce_detection=plan.rules.no_face, max_faces=plan.rules.max_faces,
                      expand_percentage=plan.rules.expand_percentage,
                      image_limits={k: v for k, v in vars(plan.limits).items() if v is not None})
        if plan.command == "represent":
            result = represent(ds, model_name=models.recognizer, normalization=models.normalization,
                               recognizer_options=models.recognizer_kwargs, **common)
        else:
            result = extract_faces(ds, **common)
        target = write_parquet(result, plan.outputs.rows)
    except BaseException:
        _let_ray_data_stop()
        raise
    finally:
        if started:
            ray.shutdown()
    elapsed = time.perf_counter() - began
    images, faces, no_face, failed = summarize(target)
    for path, problem in failed:
        logger.error("failed: %s: %s", path, problem)
    if not plan.quiet:
        sys.stderr.write(run_summary(f"{plan.command}:", images, faces, no_face, len(failed), elapsed,
                                     workers=plan.workers, output=target) + "\n")
    return len(failed)
