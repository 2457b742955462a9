"""``detect`` and ``iter_detect``: boxes, landmarks and scores without crops, over one image or a stream.

Both run the same pipelined core as :func:`deepbatch.extract_faces` (:func:`deepbatch.core.stream.iter_records`):
prefetch threads read, decode and letterbox the next chunks while the model runs the current one. Since no
full-resolution pixels are returned, a JPEG much larger than the detector's canvas is decoded at 1/2, 1/4 or 1/8 of
its size by the JPEG decoder itself (:func:`deepbatch.io.images.decode_for_canvas`), which is most of the cost of
reading a photo; faces are reported in the original image's pixels all the same.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Optional, Union

from ..api.extract import as_stream, resolve_detector
from ..core.on_error import BatchResult, check_on_error, collect_batch
from ..core.stream import FaceRules, iter_records
from ..core.workers import DEFAULT_PREFETCH, BatchSize, resolve_batch_size
from ..detectors.base import Detector
from ..io.images import as_batch
from ..performance import Performance, settle
from ..records import ImageRecord
from ..structures import Faces

logger = logging.getLogger(__name__)


def detect(
    img_path: Any,
    detector_backend: Union[str, Detector] = "scrfd",
    max_faces: Optional[int] = None,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    workers: Optional[int] = None,
    prefetch: int = DEFAULT_PREFETCH,
    performance: Optional[Performance] = None,
) -> Union[Faces, BatchResult]:
    """The faces in one image or a batch: a :class:`Faces` for one image, a :class:`BatchResult` of one
    :class:`Faces` per image (in input order) for a list or an (N, H, W, C) array.

    ``img_path`` is anything :func:`deepbatch.extract_faces` takes. Boxes ``(N, 4)`` xyxy and landmarks
    ``(N, 5, 2)`` (person-relative, or None for detectors without them) are float32 in original-image pixels; an
    image without a face gives an empty :class:`Faces`. ``max_faces`` keeps the largest faces. ``batch_size``
    images go through the model per call (``"auto"``: chosen for the detector's device, see
    :func:`deepbatch.core.workers.resolve_batch_size`). ``on_error="raise"`` raises the first unusable image's
    :class:`ImageError` in input order; ``"skip"`` logs it, gives that image an empty :class:`Faces` and records the
    exception in ``errors`` under its index. A single image always raises.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size``,
    ``workers`` and ``prefetch`` are its advanced spellings, not to be combined with it.

    Args:
        img_path: One image or a batch, as ``extract_faces`` takes them.
        detector_backend: A registered detector name or a ``Detector``.
        max_faces: Keep the largest ``max_faces`` faces of each image.
        batch_size: Images per model call, or ``"auto"``.
        on_error: ``"raise"`` or ``"skip"`` an unusable image of a batch.
        workers: Threads that prepare chunks beside the model (None: automatic).
        prefetch: Chunks prepared ahead of the model.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Returns:
        A ``Faces`` for one image; for a batch, a ``BatchResult`` of one ``Faces`` per image, in input order.

    Raises:
        ImageError: An image cannot be used (its index and path are named).
        UnknownModelError: ``detector_backend`` is not registered.
    """
    check_on_error(on_error)
    settings = settle(performance, batch_size, workers, prefetch)
    items, single = as_batch(img_path)
    rules = FaceRules("empty", max_faces)
    detector = resolve_detector(detector_backend, settings)
    stream = iter_records(items, detector, resolve_batch_size(settings.batch_size, detector), rules, reduced=True,
                          on_error=on_error, single=single, workers=settings.workers, prefetch=settings.prefetch)
    return collect_batch(((record.index, record.error, record.faces if record.faces is not None else Faces.empty())
                          for record in stream), single, len(items))


def iter_detect(
    paths_or_frames: Iterable[Any],
    detector_backend: Union[str, Detector] = "scrfd",
    max_faces: Optional[int] = None,
    *,
    batch_size: BatchSize = "auto",
    on_error: str = "raise",
    full_resolution: bool = False,
    workers: Optional[int] = None,
    prefetch: int = DEFAULT_PREFETCH,
    performance: Optional[Performance] = None,
) -> Iterator[ImageRecord]:
    """Stream :func:`detect` over any number of images: one :class:`~deepbatch.records.ImageRecord` per
    input, in order, with ``index``, ``source``, ``faces`` (original-image pixels), the original ``shape``
    ``(height, width)`` and ``error``.

    ``paths_or_frames`` is any iterable of inputs (paths, URLs, arrays, a generator of video frames); a single path
    or image is a stream of one. It is read lazily and at most ``prefetch + 2`` chunks are held at a time
    (``max(prefetch, workers + 1) + 2`` for a model run on the CPU threads; see
    :func:`deepbatch.core.stream.chunks_held`). Each record's ``image`` is the decoded image, at ``1 / factor`` of the
    original size unless ``full_resolution=True`` asks for full-size decoding (for drawing on it or cutting crops).
    ``on_error`` works as in :func:`detect`: ``"skip"`` yields an unusable image with ``error`` set and ``faces``
    None.

    ``performance`` (a :class:`deepbatch.Performance`) sets the batch size, the prefetch threads, the chunks read
    ahead and the intra-op threads of the models it builds from a name, all automatic by default; ``batch_size``,
    ``workers`` and ``prefetch`` are its advanced spellings, not to be combined with it.

    Args:
        paths_or_frames: Any iterable of images, read lazily.
        detector_backend: A registered detector name or a ``Detector``.
        max_faces: Keep the largest ``max_faces`` faces of each image.
        batch_size: Images per model call, or ``"auto"``.
        on_error: ``"raise"`` at the first unusable image, or ``"skip"`` it (yielded with ``error`` set).
        full_resolution: Decode large JPEGs in full instead of at a reduced scale.
        workers: Threads that prepare chunks beside the model (None: automatic).
        prefetch: Chunks prepared ahead of the model.
        performance: A ``Performance``: batch size, prefetch threads, chunks read ahead and model threads.

    Yields:
        One ``ImageRecord`` per input, in order.

    Raises:
        ImageError: With ``on_error="raise"``, when the stream reaches an unusable image.
    """
    settings = settle(performance, batch_size, workers, prefetch)
    rules = FaceRules("empty", max_faces)
    detector = resolve_detector(detector_backend, settings)
    records = iter_records(as_stream(paths_or_frames), detector, resolve_batch_size(settings.batch_size, detector),
                           rules, reduced=not full_resolution, on_error=on_error, workers=settings.workers,
                           prefetch=settings.prefetch)
    try:
        for record in records:
            if record.error is not None:
                logger.warning("skipped: %s", record.error)
            yield record
    finally:
        records.close()
