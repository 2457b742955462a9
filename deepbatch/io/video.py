"""Reading video files frame by frame with OpenCV, with each frame's index and timestamp.

Frames are HxWx3 uint8 BGR arrays, like every image deepbatch takes. ``timestamp`` is in seconds from the start of
the video: ``index / fps`` when the container declares a frame rate, else the position OpenCV reports. Only the
frames being processed are held in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import numpy as np

from ..errors import ImageDecodeError, ImageNotFoundError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")

PathLike = Union[str, "os.PathLike[str]"]


class VideoError(ImageDecodeError):
    """A video file exists but OpenCV cannot open or decode it."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: ``index`` (0-based, in the file), ``timestamp`` (seconds), ``image`` (HxWx3 uint8 BGR)."""

    index: int
    timestamp: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the container declares: frames per second (0 when unknown), frame count (0 when unknown), size."""

    fps: float
    frame_count: int
    width: int
    height: int


def is_video(path: PathLike) -> bool:
    """Whether ``path`` has a video file extension (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open(path: PathLike) -> Any:
    import cv2

    source = os.fspath(path)
    if not Path(source).is_file():
        raise ImageNotFoundError("video file does not exist", source=source)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        raise VideoError("OpenCV cannot open this video (unsupported codec or not a video)", source=source)
    return capture


def _declared(capture: Any) -> VideoInfo:
    import cv2

    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    return VideoInfo(fps if np.isfinite(fps) and fps > 0 else 0.0, max(count, 0), width, height)


def video_info(path: PathLike) -> VideoInfo:
    """The frame rate, frame count and size ``path`` declares; raises :class:`VideoError` if it cannot be opened."""
    capture = _open(path)
    try:
        return _declared(capture)
    finally:
        capture.release()


def read_frames(path: PathLike, step: int = 1, limit: Optional[int] = None) -> Iterator[VideoFrame]:
    """Frames of the video at ``path`` in order: every ``step``-th frame (0, step, 2*step, ...), at most ``limit``.

    Frames that are skipped are grabbed but not decoded. Raises :class:`VideoError` when the file cannot be opened
    and when it yields no frame at all (an empty or undecodable stream).
    """
    import cv2

    if step < 1:
        raise ValueError(f"step must be a positive integer, got {step}")
    capture = _open(path)
    try:
        fps = _declared(capture).fps
        index = -1
        yielded = 0
        while limit is None or yielded < limit:
            index += 1
            if index % step:
                if not capture.grab():
                    break
                continue
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            timestamp = index / fps if fps else float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            yielded += 1
            yield VideoFrame(index, timestamp, np.ascontiguousarray(frame))
        if index == 0 and yielded == 0:
            raise VideoError("no frame could be decoded (empty or corrupt stream)", source=os.fspath(path))
    finally:
        capture.release()


def read_batches(
    path: PathLike, batch_size: int, step: int = 1, limit: Optional[int] = None
) -> Iterator[List[VideoFrame]]:
    """:func:`read_frames` in lists of at most ``batch_size`` frames (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    frames = read_frames(path, step, limit)
    while True:
        batch = list(islice(frames, batch_size))
        if not batch:
            return
        yield batch
