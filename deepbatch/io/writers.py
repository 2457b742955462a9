"""Where result rows and annotated images go: JSON lines, Parquet, an embedding matrix, images and videos.

Every writer is atomic as :mod:`deepbatch.io.outputs` describes: it writes under a temporary name and renames into
place on ``close(complete=True)``; ``close(complete=False)`` leaves the previous file as it was. The rows are those
of :mod:`deepbatch.rows`, whatever the format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ArgumentError
from .outputs import LineFile, OutputFolder, OutputRefusedError, open_partial, partial_path

logger = logging.getLogger(__name__)

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
MATRIX_SUFFIXES = (".npy",)


def output_format(path: Optional[str], allowed: Sequence[str]) -> str:
    """``"jsonl"``, ``"parquet"`` or ``"npy"`` for an ``--output`` path (stdout: ``"jsonl"``); an :class:`ArgumentError`
    for a suffix the command cannot write, raised before any work starts."""
    if path in (None, "-"):
        return "jsonl"
    suffix = Path(str(path)).suffix.lower()
    for kind, suffixes in (("jsonl", JSON_SUFFIXES), ("parquet", PARQUET_SUFFIXES), ("npy", MATRIX_SUFFIXES)):
        if suffix in suffixes and kind in allowed:
            if kind == "parquet":
                from ..rows import import_pyarrow

                import_pyarrow()
            return kind
    names = {"jsonl": "FILE.jsonl (JSON lines)", "parquet": "FILE.parquet", "npy": "FILE.npy (a matrix of embeddings)"}
    raise ArgumentError(f"cannot write --output {path}: the suffix {suffix or '(none)'!r} is not a format this "
                        f"command writes; use {', '.join(names[k] for k in allowed)}")


def json_line(row: Dict[str, Any]) -> str:
    """``row`` as one line of strict JSON: a row holding NaN or infinity (which JSON cannot hold) becomes that
    image's error row instead."""
    try:
        return json.dumps(row, allow_nan=False)
    except ValueError:
        bad = {key: row.get(key) for key in ("path", "frame", "timestamp", "width", "height")}
        return json.dumps({**bad, "faces": None, "error": "ValueError: the result holds a number that is not finite "
                           "(NaN or infinity)"}, allow_nan=False)


def _replace_as_name(staging: Path, target: Path) -> None:
    """Rename ``staging`` over ``target`` (a link there is replaced, not followed); a folder there is refused."""
    if os.path.isdir(target) and not os.path.islink(target):
        raise OutputRefusedError(f"{target} is a folder; it is not replaced by a file")
    os.replace(staging, target)


class JsonLines:
    """JSON lines to a file (``path``) or to stdout (``None`` or ``-``). A file is written as ``path.partial`` and
    renamed to ``path`` by ``close(complete=True)``; stdout is flushed after every row."""

    def __init__(self, path: Optional[str]):
        self.path = None if path in (None, "-") else Path(path)
        self._file = None if self.path is None else LineFile(self.path)

    def write(self, row: Dict[str, Any]) -> None:
        line = json_line(row)
        if self._file is None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            self._file.write(line)

    def close(self, complete: bool = True) -> None:
        if self._file is None:
            sys.stdout.flush()
        elif complete:
            self._file.commit()
        else:
            self._file.abort()


class ParquetRows:
    """Rows to one Parquet file of :func:`deepbatch.rows.arrow_schema`, written whole when the run completes."""

    def __init__(self, path: str, embedding_size: int = 0):
        self.path = Path(path)
        self.embedding_size = embedding_size
        self.rows: List[Dict[str, Any]] = []

    def write(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)

    def close(self, complete: bool = True) -> None:
        if not complete:
            return
        import pyarrow.parquet as pq

        from ..rows import rows_table

        staging = partial_path(self.path)
        try:
            with os.fdopen(open_partial(staging), "wb") as out:
                pq.write_table(rows_table(self.rows, self.embedding_size), out)
            _replace_as_name(staging, self.path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise


class EmbeddingMatrix:
    """``represent --output X.npy``: a matrix with one row per face, and ``X.index.jsonl`` with one line per face
    (the image row's fields, ``row`` and ``face``, and the face's fields but its embedding).

    The matrix and its index are renamed into place together when the run completes: the old index is removed
    first, then the matrix and then the index are renamed, so a run killed in between leaves a ``.npy`` without an
    index (which the next run reports), never a matrix beside an index of other images.
    """

    def __init__(self, path: str, embedding_size: int):
        self.path = Path(path)
        self.index = self.path.with_suffix(".index.jsonl")
        self.embedding_size = embedding_size
        if self.path.exists() != self.index.exists():
            logger.warning("%s and %s do not both exist: left by an interrupted run, and replaced by this one",
                           self.path, self.index)
        self.lines = JsonLines(str(self.index))
        self.rows: List[np.ndarray] = []

    def write(self, row: Dict[str, Any]) -> None:
        image = {key: value for key, value in row.items() if key != "faces"}
        for k, face in enumerate(row["faces"]):
            self.lines.write({"row": len(self.rows), **image, "face": k,
                              **{key: value for key, value in face.items() if key != "embedding"}})
            self.rows.append(np.asarray(face["embedding"], np.float32))

    def close(self, complete: bool = True) -> None:
        if not complete:
            self.lines.close(complete=False)
            return
        matrix = partial_path(self.path)
        try:
            with os.fdopen(open_partial(matrix), "wb") as out:
                np.save(out, np.stack(self.rows) if self.rows else np.zeros((0, self.embedding_size), np.float32))
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            matrix.unlink(missing_ok=True)
            self.lines.close(complete=False)
            raise
        self.index.unlink(missing_ok=True)
        _replace_as_name(matrix, self.path)
        self.lines.close(complete=True)


def open_rows(path: Optional[str], kind: str, embedding_size: int = 0) -> Any:
    """The row writer for ``--output path`` of format ``kind`` (:func:`output_format`)."""
    if kind == "parquet":
        return ParquetRows(str(path), embedding_size)
    if kind == "npy":
        return EmbeddingMatrix(str(path), embedding_size)
    return JsonLines(path)


def encode_image(name: Path, image: np.ndarray) -> bytes:
    """``image`` (BGR uint8) encoded by the suffix of ``name``."""
    import cv2

    ok, data = cv2.imencode(name.suffix or ".jpg", image)
    if not ok:
        raise OSError(f"OpenCV could not encode {name.name}")
    return data.tobytes()


def write_image(path: Path, image: np.ndarray, folder: Optional[OutputFolder] = None) -> Path:
    """Encode ``image`` (BGR uint8) by the suffix of ``path`` and write it whole or not at all, as a new file renamed
    into place. With ``folder``, ``path`` is relative to it and stays inside it (:class:`OutputFolder`)."""
    path = Path(path)
    if folder is None:
        folder, path = OutputFolder(path.parent), Path(path.name)
    return folder.write(path, encode_image(path, image))


class VideoFile:
    """An annotated video written frame by frame with OpenCV (MPEG-4, ``.mp4``), under a new temporary file in the
    same folder until ``close(complete=True)`` renames it to ``folder/relative`` (``relative`` alone: a path)."""

    def __init__(self, relative: Path, fps: float, folder: Optional[OutputFolder] = None):
        relative = Path(relative)
        if folder is None:
            folder, relative = OutputFolder(relative.parent), Path(relative.name)
        self.folder = folder
        self.relative = relative
        self.path = folder.path(relative)
        self.fps = fps if fps > 0 else 25.0
        self._staging: Optional[Tuple[int, str, str]] = None
        self._writer: Any = None

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
            self._staging = self.folder.staging(self.relative)
            self._writer = cv2.VideoWriter(self._staging[2], fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV could not open a video writer for {self.path}")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self._writer.write(np.ascontiguousarray(frame[:, :, :3]))

    def close(self, complete: bool = True) -> None:
        if self._writer is None or self._staging is None:
            return
        self._writer.release()
        self._writer = None
        fd, tmp, _ = self._staging
        self._staging = None
        self.folder.finish_staging(fd, tmp, self.relative, complete)
