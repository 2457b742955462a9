"""Sizing the actor pool (CPUs, GPUs, rows per call) and mapping a Dataset through it: :func:`extract_faces` and
:func:`represent` (see :mod:`deepbatch.ray` for the rows they give)."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from ..batching import RAY_GPU_BATCH_SIZE as GPU_BATCH_SIZE
from ..batching import RAY_LOOP_BATCH_SIZE as LOOP_BATCH_SIZE
from ..checks import check_batch_size
from ..errors import ArgumentError, DatasetColumnError, RayResourceError
from .columns import import_ray, input_column
from .workers import DetectorSpec, FaceDetectionWorker, FaceEmbeddingWorker, RecognizerSpec, check_spec

WorkerCount = Union[int, Tuple[int, int]]


def _cluster_cpus(ray: Any) -> float:
    if not ray.is_initialized():
        ray.init()
    return float(ray.cluster_resources().get("CPU", 1.0))


def check_gpus(num_workers: WorkerCount, num_gpus_per_worker: float, cluster: Mapping[str, float]) -> None:
    """Fail at once when the cluster cannot place the smallest pool's GPU requests (Ray would wait forever).

    ``cluster`` is ``ray.cluster_resources()``: the GPUs the cluster has now (an autoscaling cluster that adds GPU
    nodes on demand must start them before the job).
    """
    if num_gpus_per_worker <= 0:
        return
    least = num_workers if isinstance(num_workers, int) else min(num_workers)
    needed = num_gpus_per_worker * least
    have = float(cluster.get("GPU", 0.0))
    if have < needed:
        raise RayResourceError(
            f"num_gpus_per_worker={num_gpus_per_worker} for {least} worker(s) needs {needed:g} GPU(s), but the Ray "
            f"cluster has {have:g} (its resources: {dict(cluster)}); use fewer workers, a smaller "
            "num_gpus_per_worker (0.5 shares a GPU between two workers), or num_gpus_per_worker=0 to run on CPUs"
        )


def cpus_per_worker(num_workers: WorkerCount, total_cpus: float, num_gpus_per_worker: float) -> float:
    """CPUs each actor reserves by default: one, or less when the pool would leave no CPU for reading the input
    (Ray Data reads with CPU tasks; on a 2-CPU machine two 1-CPU actors would starve them and stall the job)."""
    if num_gpus_per_worker > 0:
        return 1.0
    most = num_workers if isinstance(num_workers, int) else max(num_workers)
    spare = max(total_cpus - 1.0, 0.25)
    return round(min(1.0, spare / max(most, 1)), 3)


def default_batch_size(detector_backend: DetectorSpec, num_gpus_per_worker: float) -> int:
    """Rows per actor call (the constants of :mod:`deepbatch.batching`): ``DEFAULT_BATCH_SIZE`` for batching
    detectors (``RAY_GPU_BATCH_SIZE`` on a GPU), ``RAY_LOOP_BATCH_SIZE`` for detectors that run image by image."""
    from ..batching import DEFAULT_BATCH_SIZE
    from ..detectors.base import DETECTORS

    whole_chunks = True
    if isinstance(detector_backend, str):
        whole_chunks = bool(getattr(DETECTORS.entry(detector_backend).factory, "batches_whole_chunks", True))
    if not whole_chunks:
        return LOOP_BATCH_SIZE
    return GPU_BATCH_SIZE if num_gpus_per_worker > 0 else DEFAULT_BATCH_SIZE


def _compute(ray: Any, num_workers: WorkerCount) -> Any:
    if isinstance(num_workers, int):
        if num_workers < 1:
            raise ArgumentError(f"num_workers must be a positive integer or a (min, max) pair, got {num_workers}")
        return ray.data.ActorPoolStrategy(size=num_workers)
    low, high = num_workers
    if not 1 <= low <= high:
        raise ArgumentError(f"num_workers=(min, max) needs 1 <= min <= max, got {num_workers}")
    return ray.data.ActorPoolStrategy(min_size=low, max_size=high)


def _check_columns(ds: Any, column: Optional[str], keep_columns: Sequence[str]) -> None:
    """Fail on the driver, before any worker starts, when the schema is known without running the dataset."""
    schema = ds.schema(fetch_if_missing=False)
    if schema is None:
        return
    names = list(schema.names)
    input_column(names, column)
    missing = [c for c in keep_columns if c not in names]
    if missing:
        raise DatasetColumnError(names, missing[0])


def _map(ds: Any, worker: type, constructor: Dict[str, Any], *, detector_backend: DetectorSpec,
         column: Optional[str], channels: str, keep_columns: Sequence[str], batch_size: Optional[int],
         num_workers: WorkerCount, num_gpus_per_worker: float, num_cpus_per_worker: Optional[float],
         include_face: bool, align: bool, enforce_detection: Union[bool, str], max_faces: Optional[int],
         expand_percentage: float, image_limits: Optional[Mapping[str, Optional[int]]] = None) -> Any:
    from ..core.stream import FaceRules
    from ..detectors.base import Detector

    ray = import_ray()
    check_spec(detector_backend, "detector", Detector)
    if channels not in ("rgb", "bgr"):
        raise ArgumentError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    FaceRules.of(enforce_detection, max_faces, expand_percentage, align)  # checked here, before a worker starts
    if num_gpus_per_worker < 0:
        raise ArgumentError(f"num_gpus_per_worker must be >= 0, got {num_gpus_per_worker}")
    _check_columns(ds, column, keep_columns)
    if num_gpus_per_worker > 0:
        if not ray.is_initialized():
            ray.init()
        check_gpus(num_workers, num_gpus_per_worker, ray.cluster_resources())
    size = check_batch_size(default_batch_size(detector_backend, num_gpus_per_worker) if batch_size is None
                            else batch_size)
    cpus = num_cpus_per_worker
    if cpus is None:
        cpus = cpus_per_worker(num_workers, _cluster_cpus(ray), num_gpus_per_worker)
    settings = dict(column=column, channels=channels, keep_columns=list(keep_columns), batch_size=size,
                    include_face=include_face, align=align, enforce_detection=enforce_detection,
                    max_faces=max_faces, expand_percentage=expand_percentage,
                    image_limits=dict(image_limits) if image_limits else None)
    threads = max(1, math.floor(cpus)) if num_gpus_per_worker == 0 else None
    return ds.map_batches(
        worker,
        fn_constructor_kwargs={**constructor, "detector_backend": detector_backend, "threads": threads, **settings},
        batch_size=size,
        batch_format="numpy",
        compute=_compute(ray, num_workers),
        num_cpus=cpus,
        num_gpus=num_gpus_per_worker or None,
    )  # Ray Data gives pool actors max_restarts=-1 and max_task_retries=-1: a dead actor's batch is re-run


def extract_faces(
    ds: Any,
    detector_backend: DetectorSpec = "scrfd",
    batch_size: Optional[int] = None,
    num_workers: WorkerCount = 1,
    num_gpus_per_worker: float = 0,
    num_cpus_per_worker: Optional[float] = None,
    column: Optional[str] = None,
    channels: str = "rgb",
    keep_columns: Sequence[str] = (),
    enforce_detection: Union[bool, str] = True,
    align: bool = True,
    expand_percentage: float = 0,
    max_faces: Optional[int] = None,
    include_face: bool = False,
    detector_options: Optional[Mapping[str, Any]] = None,
    image_limits: Optional[Mapping[str, Optional[int]]] = None,
) -> Any:
    """Faces of every image of a Ray Dataset: a lazy Dataset with one row per input row (see the module doc).

    ``detector_backend`` is a registered name (``deepbatch.list_detectors()``) built with ``detector_options``, or
    a function without arguments that builds a :class:`Detector` on the worker. ``num_workers`` actors (or a
    ``(min, max)`` autoscaling range) each hold one model and take ``batch_size`` rows per call (default: 32 for
    batching detectors, 64 on a GPU, 8 for image-by-image ones). ``num_gpus_per_worker`` reserves GPUs per actor
    (fractions share a GPU); ``num_cpus_per_worker`` CPUs per actor, which also sets ONNX Runtime's thread count
    (default one, less on a machine too small to keep a CPU for reading). ``include_face`` adds each face's
    aligned crop (``align=False``: box crop) as PNG bytes; ``expand_percentage`` and ``max_faces`` act as in
    :func:`deepbatch.extract_faces`. ``image_limits`` (``max_pixels``, ``max_bytes``) are set on every worker.
    """
    return _map(ds, FaceDetectionWorker, {"detector_options": dict(detector_options or {})},
                detector_backend=detector_backend, column=column, channels=channels, keep_columns=keep_columns,
                batch_size=batch_size, num_workers=num_workers, num_gpus_per_worker=num_gpus_per_worker,
                num_cpus_per_worker=num_cpus_per_worker, include_face=include_face, align=align,
                enforce_detection=enforce_detection, max_faces=max_faces, expand_percentage=expand_percentage,
                image_limits=image_limits)


def represent(
    ds: Any,
    model_name: RecognizerSpec = "arcface_mbf",
    detector_backend: DetectorSpec = "scrfd",
    batch_size: Optional[int] = None,
    num_workers: WorkerCount = 1,
    num_gpus_per_worker: float = 0,
    num_cpus_per_worker: Optional[float] = None,
    column: Optional[str] = None,
    channels: str = "rgb",
    keep_columns: Sequence[str] = (),
    enforce_detection: Union[bool, str] = True,
    align: bool = True,
    expand_percentage: float = 0,
    normalization: str = "base",
    max_faces: Optional[int] = None,
    l2_normalize: bool = False,
    detector_options: Optional[Mapping[str, Any]] = None,
    recognizer_options: Optional[Mapping[str, Any]] = None,
    image_limits: Optional[Mapping[str, Optional[int]]] = None,
) -> Any:
    """Face embeddings of every image of a Ray Dataset: a lazy Dataset with one row per input row.

    Each face of ``faces`` carries ``embedding`` (a float32 list of the model's fixed length; unit length with
    ``l2_normalize``) and ``alignment``. ``model_name`` is a registered recognizer
    (``deepbatch.list_recognizers()``) built with ``recognizer_options``, or a function without arguments that
    builds one on the worker; ``normalization``, ``align``, ``expand_percentage`` and ``max_faces`` act as in
    :func:`deepbatch.represent`. Workers, GPUs and batches are sized as in :func:`extract_faces`.
    """
    from ..recognition.base import Recognizer

    check_spec(model_name, "recognizer", Recognizer)
    constructor = {"model_name": model_name, "recognizer_options": dict(recognizer_options or {}),
                   "normalization": normalization, "l2_normalize": l2_normalize,
                   "detector_options": dict(detector_options or {})}
    return _map(ds, FaceEmbeddingWorker, constructor, detector_backend=detector_backend, column=column,
                channels=channels, keep_columns=keep_columns, batch_size=batch_size, num_workers=num_workers,
                num_gpus_per_worker=num_gpus_per_worker, num_cpus_per_worker=num_cpus_per_worker,
                include_face=False, align=align, enforce_detection=enforce_detection, max_faces=max_faces,
                expand_percentage=expand_percentage, image_limits=image_limits)
