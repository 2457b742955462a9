"""Reading a Ray Dataset's rows: the input column, its values as images deepbatch loads, and the rows written back as
an Arrow table (see :mod:`deepbatch.ray` for the columns)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import INPUT_COLUMNS, DatasetColumnError, MissingDependencyError
from ..rows import arrow_schema, import_pyarrow

if TYPE_CHECKING:
    import pyarrow


def import_ray() -> Any:
    """The ``ray`` package with Ray Data, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "Running deepbatch on Ray Data") from exc
    return ray


def rgb_to_bgr(image: np.ndarray) -> np.ndarray:
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


def batch_items(batch: Mapping[str, Any], column: str, channels: str) -> List[Any]:
    """One loadable item per row: BGR arrays for an image column, else the bytes or path strings as they are."""
    values = batch[column]
    if column == "image" or (len(values) and isinstance(values[0], np.ndarray)):
        return [rgb_to_bgr(v) if channels == "rgb" else np.asarray(v) for v in values]
    return [v if v is None or isinstance(v, (bytes, bytearray)) else str(v) for v in values]


def encode_crops(crops: List[np.ndarray]) -> List[bytes]:
    import cv2

    out = []
    for pixels in crops:  # crops differ in size: encoding is one OpenCV call per face
        ok, data = cv2.imencode(".png", pixels)
        out.append(data.tobytes() if ok else b"")
    return out


def arrow_table(batch: Mapping[str, Any], keep: Sequence[str], rows: List[Dict[str, Any]], embedding_size: int,
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


def utf8_path(path: Union[str, Path]) -> str:
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
    return ray.data.from_items([{"path": utf8_path(p)} for p in paths])
