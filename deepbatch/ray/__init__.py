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

from ..batching import RAY_GPU_BATCH_SIZE as GPU_BATCH_SIZE
from ..batching import RAY_LOOP_BATCH_SIZE as LOOP_BATCH_SIZE
from ..errors import INPUT_COLUMNS, DatasetColumnError, RayArgumentError, RayResourceError, WorkerSpecError
from .cli import RAY_DATA_THREADS, run_cli
from .columns import import_ray, input_column, paths_dataset
from .parquet import DATASET_MARKER, check_plan_outputs, ours, parquet_target, summarize, write_parquet
from .pool import WorkerCount, check_gpus, cpus_per_worker, default_batch_size, extract_faces, represent
from .workers import DetectorSpec, FaceDetectionWorker, FaceEmbeddingWorker, RecognizerSpec

__all__ = [
    "DATASET_MARKER", "GPU_BATCH_SIZE", "INPUT_COLUMNS", "LOOP_BATCH_SIZE", "RAY_DATA_THREADS", "DatasetColumnError",
    "DetectorSpec", "FaceDetectionWorker", "FaceEmbeddingWorker", "RayArgumentError", "RayResourceError",
    "RecognizerSpec", "WorkerCount", "WorkerSpecError", "check_gpus", "check_plan_outputs", "cpus_per_worker",
    "default_batch_size", "extract_faces", "import_ray", "input_column", "ours", "parquet_target", "paths_dataset",
    "represent", "run_cli", "summarize", "write_parquet",
]
