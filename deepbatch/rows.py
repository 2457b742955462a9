"""The output row: one per image or video frame, the same fields and types in every sink.

The command line's JSON lines and Parquet files (``--engine local`` and ``--engine ray``) and the Ray datasets of
:mod:`deepbatch.ray` all write the rows that :func:`image_row` builds, with the Arrow types of :func:`arrow_schema`:

* ``path`` (string): the file or URL the image came from; null for an image given as an array;
* ``frame`` (int64) and ``timestamp`` (float64, seconds): the frame's index and time in its video; null for images;
* ``width`` and ``height`` (int32): the image's size in pixels; null when it could not be read;
* ``faces``: one struct per face: ``box`` ``[x, y, w, h]`` float32 in original-image pixels, ``confidence``
  float32 (the detector's score, not rounded), ``landmarks`` five ``[x, y]`` float32 points in the person-relative
  order ``left_eye, right_eye, nose, mouth_left, mouth_right`` (a point the detector does not give is null; the
  whole list is null for detectors without landmarks). Embeddings add ``embedding`` (float32, the model's fixed
  length) and ``alignment`` (``five_point``, ``partial_points`` or ``box_crop``);
* ``error`` (string): null when the image was processed, else ``"<ErrorType>: <problem>"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .optional import require
from .structures import Faces

IMAGE_FIELDS = ("path", "frame", "timestamp", "width", "height", "faces", "error")


def error_text(error: Optional[BaseException]) -> Optional[str]:
    """``"<ErrorType>: <problem>"``, without the batch position an image's error names (meaningless in a row)."""
    if error is None:
        return None
    return f"{type(error).__name__}: {getattr(error, 'problem', None) or error}"


def _point(point: np.ndarray) -> Optional[List[float]]:
    return [float(point[0]), float(point[1])] if np.all(np.isfinite(point)) else None


def face_rows(faces: Optional[Faces], embeddings: Optional[np.ndarray] = None,
              alignments: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """One dict per face: ``box``, ``confidence``, ``landmarks`` and, with ``embeddings``, ``embedding`` and
    ``alignment``. Values are Python floats of the float32 results, so JSON and Arrow hold the same numbers."""
    if faces is None or len(faces) == 0:
        return []
    out = []
    for k, (box, score) in enumerate(zip(faces.xywh, faces.scores)):
        row: Dict[str, Any] = {
            "box": [float(v) for v in box],
            "confidence": float(score),
            "landmarks": None if faces.landmarks is None else [_point(p) for p in faces.landmarks[k]],
        }
        if embeddings is not None:
            row["embedding"] = [float(v) for v in np.asarray(embeddings[k], np.float32)]
            row["alignment"] = alignments[k]
        out.append(row)
    return out


def image_row(path: Optional[str], shape: Optional[Tuple[int, ...]], faces: Optional[Faces],
              error: Optional[BaseException] = None, frame: Optional[int] = None,
              timestamp: Optional[float] = None, embeddings: Optional[np.ndarray] = None,
              alignments: Sequence[str] = ()) -> Dict[str, Any]:
    """The output row of one image or frame (see the module doc); ``shape`` is the image's ``(height, width, ...)``.
    A row with an ``error`` has no faces."""
    return {
        "path": path,
        "frame": None if frame is None else int(frame),
        "timestamp": None if timestamp is None else round(float(timestamp), 6),
        "width": None if shape is None else int(shape[1]),
        "height": None if shape is None else int(shape[0]),
        "faces": [] if error is not None else face_rows(faces, embeddings, alignments),
        "error": error_text(error),
    }


def import_pyarrow() -> Any:
    return require("pyarrow", "parquet", "Writing deepbatch results as Parquet or Arrow tables")


def face_type(embedding_size: int = 0, include_face: bool = False) -> Any:
    """The Arrow struct of one face."""
    pa = import_pyarrow()
    fields = [
        pa.field("box", pa.list_(pa.float32(), 4)),
        pa.field("confidence", pa.float32()),
        pa.field("landmarks", pa.list_(pa.list_(pa.float32(), 2), 5)),
    ]
    if embedding_size:
        fields += [pa.field("embedding", pa.list_(pa.float32(), embedding_size)), pa.field("alignment", pa.string())]
    if include_face:
        fields.append(pa.field("face", pa.binary()))
    return pa.struct(fields)


def arrow_schema(embedding_size: int = 0, include_face: bool = False, keep: Sequence[Any] = ()) -> Any:
    """The Arrow schema of the rows: ``keep`` (extra ``pyarrow.Field`` s, first), then :data:`IMAGE_FIELDS`."""
    pa = import_pyarrow()
    return pa.schema([
        *keep,
        pa.field("path", pa.string()),
        pa.field("frame", pa.int64()),
        pa.field("timestamp", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("faces", pa.list_(face_type(embedding_size, include_face))),
        pa.field("error", pa.string()),
    ])


def rows_table(rows: Sequence[Dict[str, Any]], embedding_size: int = 0, include_face: bool = False) -> Any:
    """The rows as one ``pyarrow.Table`` of :func:`arrow_schema`."""
    pa = import_pyarrow()
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(embedding_size, include_face))
