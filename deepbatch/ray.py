"""Face detection and embedding over a Ray Data dataset: the same batched pipeline, scaled out on a cluster.

:func:`extract_faces` and :func:`represent` take a :class:`ray.data.Dataset` of images and return a lazy Dataset
with one output row per input row. They use ``Dataset.map_batches`` with a callable class run by a pool of
``num_workers`` actors: each actor builds its detector (and recognizer) once, then processes ``batch_size`` rows
per call with one model call per chunk, exactly as :func:`deepbatch.extract_faces` does in one process.

Input rows are read from the first of these columns that the dataset has (or from ``column=``):

* ``image``: an HxWxC uint8 array, **RGB** as ``ray.data.read_images`` gives it (``channels="bgr"`` if yours are
  BGR); 2-D grayscale and RGBA are accepted too;
* ``bytes``: an encoded image file, as ``ray.data.read_binary_files`` gives it; decoded on the worker, so a corrupt
  file becomes a row with its ``error`` set instead of failing the job;
* ``path``: a path or URL that every worker can read (a shared file system), loaded on the worker.

Output columns: the columns named in ``keep_columns``, then the row of :mod:`deepbatch.rows` (the same fields and
Arrow types as the command line's JSON lines and Parquet): ``path``, ``frame``, ``timestamp``, ``width``,
``height``, ``faces`` (``box`` ``[x, y, w, h]``, ``confidence``, ``landmarks``; :func:`represent` adds
``embedding`` and ``alignment``; ``include_face=True`` adds ``face``, the aligned crop as PNG bytes) and ``error``
(null when the image was processed). ``enforce_detection`` means what it means in :func:`deepbatch.extract_faces`:
``True`` makes an image without a face an error row (``FaceNotDetectedError``), ``False`` gives the whole image as
one face with confidence 0.

Ray Data does not keep row order unless ``DataContext.get_current().execution_options.preserve_order`` is set;
rows carry their ``path`` so that order does not matter. An actor that dies is restarted and its batch re-run
(Ray Data's defaults for actor pools: ``max_restarts=-1``, ``max_task_retries=-1``), so rows are neither lost nor
duplicated.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .batching import RAY_GPU_BATCH_SIZE as GPU_BATCH_SIZE
from .batching import RAY_LOOP_BATCH_SIZE as LOOP_BATCH_SIZE
from .checks import check_batch_size
from .errors import INPUT_COLUMNS as INPUT_COLUMNS
from .errors import ArgumentError, MissingDependencyError
from .errors import DatasetColumnError as DatasetColumnError
from .errors import RayArgumentError as RayArgumentError
from .errors import RayResourceError as RayResourceError
from .errors import WorkerSpecError as WorkerSpecError
from .registry import accepts
from .rows import arrow_schema, image_row, import_pyarrow
from .summary import run_summary

if TYPE_CHECKING:
    import pyarrow

    from .detectors.base import Detector
    from .recognition.base import Recognizer

logger = logging.getLogger(__name__)


DetectorSpec = Union[str, Callable[[], "Detector"]]
RecognizerSpec = Union[str, Callable[[], "Recognizer"]]
WorkerCount = Union[int, Tuple[int, int]]


def import_ray() -> Any:
    """The ``ray`` package with Ray Data, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "Running deepbatch on Ray Data") from exc
    return ray


# ----------------------------------------------------------------------------------------------------------------
# Building models on the worker


def _check_spec(spec: Any, kind: str, base: type) -> None:
    if isinstance(spec, base):
        raise WorkerSpecError(
            f"a built {kind} cannot be shipped to Ray workers (its ONNX Runtime session does not pickle); pass its "
            f"registered name, or a function without arguments that builds it on the worker, e.g. "
            f"functools.partial(MyClass, ...)"
        )
    if not isinstance(spec, str) and not callable(spec):
        raise WorkerSpecError(
            f"{kind} must be a registered name or a function that builds one, got {type(spec).__name__}"
        )


def _options_with_threads(registry: Any, name: str, options: Mapping[str, Any], threads: Optional[int]) -> Dict:
    """``options`` plus ONNX Runtime's ``threads`` sized to the worker's CPUs, when the backend takes it."""
    out = dict(options)
    if threads is not None and "threads" not in out and accepts(registry.entry(name).factory, "threads"):
        out["threads"] = threads
    return out


def _build_detector(spec: DetectorSpec, options: Mapping[str, Any], threads: Optional[int]) -> Detector:
    if not isinstance(spec, str):
        return spec()
    from .detectors.base import DETECTORS, build_detector

    return build_detector(spec, **_options_with_threads(DETECTORS, spec, options, threads))


def _build_recognizer(spec: RecognizerSpec, options: Mapping[str, Any], threads: Optional[int]) -> Recognizer:
    if not isinstance(spec, str):
        return spec()
    from .recognition.base import RECOGNIZERS, build_recognizer

    return build_recognizer(spec, **_options_with_threads(RECOGNIZERS, spec, options, threads))


# ----------------------------------------------------------------------------------------------------------------
# Reading input rows


def _rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    """An ``image`` column value (RGB or RGBA as Ray reads it, or grayscale) in the BGR order deepbatch uses."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return image[:, :, ::-1]
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, [2, 1, 0, 3]]
    return image


def input_column(columns: Sequence[str], column: Optional[str]) -> str:
    """The column images are read from: ``column`` if given, else the first of :data:`INPUT_COLUMNS` present."""
    if column is not None:
        if column not in columns:
            raise DatasetColumnError(columns, column)
        return column
    for name in INPUT_COLUMNS:
        if name in columns:
            return name
    raise DatasetColumnError(columns, None)


def _items(batch: Mapping[str, Any], column: str, channels: str) -> List[Any]:
    """One loadable item per row: BGR arrays for an image column, else the bytes or path strings as they are."""
    values = batch[column]
    if column == "image" or (len(values) and isinstance(values[0], np.ndarray)):
        return [_rgb_to_bgr(v) if channels == "rgb" else np.asarray(v) for v in values]
    return [v if v is None or isinstance(v, (bytes, bytearray)) else str(v) for v in values]


def _encode_crops(crops: List[np.ndarray]) -> List[bytes]:
    import cv2

    out = []
    for pixels in crops:  # crops differ in size: encoding is one OpenCV call per face
        ok, data = cv2.imencode(".png", pixels)
        out.append(data.tobytes() if ok else b"")
    return out


def _table(batch: Mapping[str, Any], keep: Sequence[str], rows: List[Dict[str, Any]], embedding_size: int,
           include_face: bool) -> pyarrow.Table:
    """The rows (:func:`deepbatch.rows.image_row`) as an Arrow table of :func:`deepbatch.rows.arrow_schema`, after
    the ``keep`` columns of the input batch."""
    pa = import_pyarrow()
    paths = batch.get("path")
    for k, row in enumerate(rows):
        row["path"] = None if paths is None else str(paths[k])
    table = pa.Table.from_pylist(rows, schema=arrow_schema(embedding_size, include_face))
    for position, name in enumerate(c for c in keep if c != "path"):
        table = table.add_column(position, name, pa.array(list(batch[name])))
    return table


# ----------------------------------------------------------------------------------------------------------------
# The callable classes Ray runs on each actor


class _Worker(ABC):
    """State shared by the detection and embedding workers: the input column, what to keep, how to batch."""

    embedding_size = 0

    def __init__(self, column: Optional[str], channels: str, keep_columns: Sequence[str], batch_size: int,
                 include_face: bool, align: bool, enforce_detection: Union[bool, str], max_faces: Optional[int],
                 expand_percentage: float, image_limits: Optional[Mapping[str, Any]] = None):
        from .core.stream import FaceRules

        if image_limits:
            from .io.images import set_image_limits

            set_image_limits(**image_limits)  # this actor's process: the run's limits, as the local engine's
        self.column = column
        self.channels = channels
        self.keep_columns = list(keep_columns)
        self.batch_size = batch_size
        self.include_face = include_face
        self.rules = FaceRules.of(enforce_detection, max_faces, expand_percentage, align)

    def __call__(self, batch: Dict[str, Any]) -> pyarrow.Table:
        column = input_column(list(batch), self.column)
        keep = (["path"] if "path" in batch else []) + [c for c in self.keep_columns if c != "path"]
        items = _items(batch, column, self.channels)
        try:
            results = self.process(items)
        except Exception as exc:  # one image that breaks a model must not fail its batch: find it, image by image
            logger.warning("a batch of %d images failed (%s: %s); retrying them one by one", len(items),
                           type(exc).__name__, exc)
            results = [self._process_alone(item) for item in items]
        return _table(batch, keep, results, self.embedding_size, self.include_face)

    def _process_alone(self, item: Any) -> Dict[str, Any]:
        try:
            return self.process([item])[0]
        except Exception as exc:  # recorded in the row's error column
            return image_row(None, None, None, exc)

    @abstractmethod
    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        """One row (:func:`deepbatch.rows.image_row`, its ``path`` filled in later) per item."""


class FaceDetectionWorker(_Worker):
    """Ray Data callable class: builds the detector once per actor, then turns batches of rows into face rows."""

    def __init__(self, detector_backend: DetectorSpec, detector_options: Mapping[str, Any],
                 threads: Optional[int], **settings: Any):
        super().__init__(**settings)
        self.detector = _build_detector(detector_backend, detector_options, threads)

    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        from .core.stream import iter_records

        out = []
        for record in iter_records(items, self.detector, self.batch_size, self.rules, crops=self.include_face,
                                   on_error="skip"):
            row = record.row()
            if record.crops is not None:
                for face, crop in zip(row["faces"], _encode_crops(record.crops)):
                    face["face"] = crop
            out.append(row)
        return out


class FaceEmbeddingWorker(_Worker):
    """Ray Data callable class: builds the detector and recognizer once per actor, then embeds batches of rows."""

    def __init__(self, model_name: RecognizerSpec, recognizer_options: Mapping[str, Any], normalization: str,
                 l2_normalize: bool, detector_backend: DetectorSpec, detector_options: Mapping[str, Any],
                 threads: Optional[int], **settings: Any):
        super().__init__(**settings)
        self.detector = _build_detector(detector_backend, detector_options, threads)
        self.recognizer = _build_recognizer(model_name, recognizer_options, threads)
        self.spec = self.recognizer.spec_for(normalization)
        self.l2_normalize = l2_normalize
        self.embedding_size = int(self.recognizer.embedding_size)

    def process(self, items: List[Any]) -> List[Dict[str, Any]]:
        from .core.stream import iter_records
        from .recognition.normalization import l2_normalize

        out = []
        for record in iter_records(items, self.detector, self.batch_size, self.rules, recognizer=self.recognizer,
                                   spec=self.spec, on_error="skip"):
            if self.l2_normalize and record.embeddings is not None:
                record.embeddings = l2_normalize(record.embeddings)
            out.append(record.row())
        return out


# ----------------------------------------------------------------------------------------------------------------
# Sizing the actor pool and building the Dataset


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
    from .batching import DEFAULT_BATCH_SIZE
    from .detectors.base import DETECTORS

    native = True
    if isinstance(detector_backend, str):
        native = bool(getattr(DETECTORS.entry(detector_backend).factory, "native_batching", True))
    if not native:
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
    from .core.stream import FaceRules
    from .detectors.base import Detector

    ray = import_ray()
    _check_spec(detector_backend, "detector", Detector)
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
    from .recognition.base import Recognizer

    _check_spec(model_name, "recognizer", Recognizer)
    constructor = {"model_name": model_name, "recognizer_options": dict(recognizer_options or {}),
                   "normalization": normalization, "l2_normalize": l2_normalize,
                   "detector_options": dict(detector_options or {})}
    return _map(ds, FaceEmbeddingWorker, constructor, detector_backend=detector_backend, column=column,
                channels=channels, keep_columns=keep_columns, batch_size=batch_size, num_workers=num_workers,
                num_gpus_per_worker=num_gpus_per_worker, num_cpus_per_worker=num_cpus_per_worker,
                include_face=False, align=align, enforce_detection=enforce_detection, max_faces=max_faces,
                expand_percentage=expand_percentage, image_limits=image_limits)


# ----------------------------------------------------------------------------------------------------------------
# The command line's ``--engine ray``


def _utf8_path(path: Union[str, Path]) -> str:
    """``path`` as text Arrow can store: a file name that is not valid UTF-8 keeps its bytes as ``\\xNN`` escapes
    (such a path names no file, so its row becomes an ``error`` row instead of failing the whole job)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def paths_dataset(paths: Sequence[Union[str, Path]]) -> Any:
    """A Dataset with one ``path`` row per image file (loaded later on the workers, so an unreadable file becomes
    an ``error`` row)."""
    ray = import_ray()
    return ray.data.from_items([{"path": _utf8_path(p)} for p in paths])


DATASET_MARKER = "_deepbatch_dataset"  # written first into every dataset folder deepbatch writes


def parquet_target(output: Union[str, Path]) -> Path:
    """``output`` checked as a Parquet dataset folder to write: named ``*.parquet`` (so that a mistyped folder is
    never replaced), not an existing file, not a symbolic link (deepbatch never writes through one, and a folder
    cannot replace a link), and, when it exists, a folder deepbatch wrote (:func:`ours`)."""
    target = Path(output).expanduser()
    if target.suffix.lower() != ".parquet":
        raise ArgumentError(
            f"Parquet output must be named *.parquet, got {str(output)!r}; e.g. --output results.parquet"
        )
    if target.is_symlink():
        raise ArgumentError(
            f"{target} is a symbolic link; deepbatch does not write a dataset through a link (it would replace what "
            "the link points to): remove the link or pick another name"
        )
    if target.is_file():
        raise ArgumentError(
            f"{target} is a file; Ray writes a folder of Parquet part files: remove it or pick another name"
        )
    if target.is_dir() and not ours(target):
        raise ArgumentError(
            f"{target} is a folder that deepbatch did not write (no {DATASET_MARKER} marker, or other files in it); "
            "it is not replaced: remove it or pick another name"
        )
    return target


def ours(folder: Path) -> bool:
    """Whether ``folder`` is empty, or a dataset folder deepbatch wrote: its marker file, and nothing but plain
    ``.parquet`` part files beside it."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    if not entries:
        return True
    names = {e.name for e in entries}
    return DATASET_MARKER in names and all(
        e.is_file(follow_symlinks=False) and (e.name == DATASET_MARKER or e.name.endswith(".parquet"))
        for e in entries)


def _remove_ours(folder: Path) -> None:
    """Remove ``folder`` (not a link) if deepbatch wrote it; a link is removed as a name; else refuse."""
    if not os.path.lexists(folder):
        return
    if folder.is_symlink():
        folder.unlink()
        return
    if not folder.is_dir() or not ours(folder):
        raise ArgumentError(f"{folder} is in the way and deepbatch did not write it; remove it to run")
    shutil.rmtree(folder)


def check_plan_outputs(output: Optional[str], draw: Optional[str], crops: Optional[str]) -> Path:
    """Refuse, before anything runs, what ``--engine ray`` cannot do: no Parquet ``--output``, images written on
    this machine (``--draw``, ``--save-crops``); the dataset folder to write."""
    if output in (None, "-"):
        raise ArgumentError("--engine ray writes a Parquet dataset: pass --output results.parquet")
    for option, value in (("draw", draw), ("save_crops", crops)):
        if value:
            raise ArgumentError(f"--{option.replace('_', '-')} needs the images on this machine; use --engine local")
    return parquet_target(str(output))


def write_parquet(ds: Any, output: Union[str, Path]) -> Path:
    """Run ``ds`` and write it as a Parquet dataset: a folder ``output`` of part files and a marker file.

    The dataset is written to a new sibling folder ``.NAME.partial`` (its marker first) and swapped in only when the
    whole run succeeded, so a failed or interrupted run leaves the previous ``output`` as it was (and a failed one
    no partial folder; a killed one leaves ``.NAME.partial``, which the next run reports and replaces). An old
    folder is removed only when deepbatch wrote it (:func:`ours`). pyarrow, pandas, Spark and DuckDB read the folder
    as one table (``pyarrow.parquet.read_table(output)``)."""
    given = parquet_target(output)
    target = Path(os.path.realpath(given.parent)) / given.name
    staging = target.with_name(f".{target.name}.partial")
    previous = target.with_name(f".{target.name}.previous")
    if os.path.lexists(staging):
        logger.warning("%s was left by an interrupted run (incomplete results); this run replaces it", staging)
        _remove_ours(staging)
    _remove_ours(previous)
    os.mkdir(staging)
    from .io.outputs import create_new

    os.close(create_new(str(staging / DATASET_MARKER)))
    from ray.data import SaveMode

    try:
        ds.write_parquet(str(staging), mode=SaveMode.APPEND)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if os.path.lexists(target):
        parquet_target(target)  # still ours: checked again just before it is moved aside
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def summarize(output: Union[str, Path]) -> Tuple[int, int, int, List[Tuple[str, str]]]:
    """``(images, faces, images without a face, [(path, error), ...])`` read back from a written Parquet dataset."""
    import_pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(str(output), columns=["path", "faces", "error"])
    counts = pc.fill_null(pc.list_value_length(table["faces"]), 0).to_numpy()
    errors = table["error"].to_pylist()
    failed = [(str(path), error) for path, error in zip(table["path"].to_pylist(), errors) if error]
    ok = np.array([not e for e in errors], bool)
    return table.num_rows, int(counts[ok].sum()), int(((counts == 0) & ok).sum()), failed


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
