"""Reading video files frame by frame with OpenCV, with each frame's index and timestamp.

Frames are HxWx3 uint8 BGR arrays, like every image deepbatch takes. ``timestamp`` is in seconds from the start of
the video: ``index / fps`` when the container declares a frame rate, else the position OpenCV reports. Only the
frames being processed are held in memory.

Frames are bounded like images (:class:`~deepbatch.io.images.ImageLimits`): a Motion-JPEG stream is read as its
encoded frames, and each frame's own header is checked before it is decoded; a frame that declares more than
``max_pixels`` is handed on still encoded, so that loading it gives that frame an error naming its size while the
other frames go on. Other codecs are checked by the size the container declares: over the limit, the video is
refused before any frame is decoded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np

from ..errors import ImageNotFoundError
from ..errors import VideoError as VideoError
from .headers import declared_size

JPEG_FOURCCS = (b"MJPG", b"mjpg", b"JPEG", b"jpeg", b"AVRn", b"LJPG", b"dmb1")  # frames that are whole JPEG files
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class VideoFrame:
    """One frame: ``index`` (0-based, in the file), ``timestamp`` (seconds), ``image`` (HxWx3 uint8 BGR, or the
    frame's encoded bytes when it could not be decoded within the limits: loading those bytes raises the reason)."""

    index: int
    timestamp: float
    image: Union[np.ndarray, bytes]


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


def _fourcc(capture: Any) -> bytes:
    import cv2

    return int(capture.get(cv2.CAP_PROP_FOURCC) or 0).to_bytes(4, "little")


def _frame(encoded: Any, max_pixels: int) -> Union[np.ndarray, bytes]:
    """A Motion-JPEG frame (one encoded JPEG) decoded, or left encoded when its header declares more than
    ``max_pixels`` or it does not decode (the loader then names the reason)."""
    import cv2

    data = np.asarray(encoded, np.uint8).ravel().tobytes()
    size: Optional[Tuple[int, int]] = declared_size(data, "jpeg")
    if size is None or size[0] * size[1] > max_pixels:
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return data if image is None else np.ascontiguousarray(image)


def read_frames(path: PathLike, step: int = 1, limit: Optional[int] = None) -> Iterator[VideoFrame]:
    """Frames of the video at ``path`` in order: every ``step``-th frame (0, step, 2*step, ...), at most ``limit``.

    Frames that are skipped are grabbed but not decoded. Raises :class:`VideoError` when the file cannot be opened,
    when it yields no frame at all (an empty or undecodable stream), and when the frame size its container declares
    is over the image limit (``max_pixels``) and its frames cannot be checked one by one (see the module docstring).
    """
    import cv2

    from .images import get_image_limits

    if step < 1:
        raise ValueError(f"step must be a positive integer, got {step}")
    max_pixels = get_image_limits().max_pixels
    capture = _open(path)
    try:
        declared = _declared(capture)
        fps = declared.fps
        encoded = _fourcc(capture) in JPEG_FOURCCS and bool(capture.set(cv2.CAP_PROP_FORMAT, -1))
        if not encoded and declared.width * declared.height > max_pixels:
            raise VideoError(
                f"its frames are {declared.width}x{declared.height} = {declared.width * declared.height} pixels, "
                f"over the limit of {max_pixels} pixels per image; if the file is trusted, raise the limit with "
                "deepbatch.io.images.set_image_limits(max_pixels=...) or the command line's --max-pixels",
                source=os.fspath(path))
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
            yield VideoFrame(index, timestamp, _frame(frame, max_pixels) if encoded else np.ascontiguousarray(frame))
        if index == 0 and yielded == 0:
            raise VideoError("no frame could be decoded (empty or corrupt stream)", source=os.fspath(path))
    finally:
        capture.release()
