"""Resize a batch of images of any sizes onto one model canvas, and map canvas coordinates back.

A model declares *what* it wants in an :class:`InputSpec`; :func:`letterbox` is the one function that does it, so no
backend resizes or normalises by itself.

An image at least twice the size of its fit on the canvas is first averaged down by the largest power of two that
keeps it at least as large as that fit (:func:`shrink_factor`, :func:`shrink`), then resized bilinearly. That is
the picture a JPEG decoder gives when it decodes at ``1 / 2``, ``1 / 4`` or ``1 / 8`` of the size
(:func:`deepbatch.io.images.decode_for_canvas`), so a detector finds the same faces at the same places in a file
decoded in full or reduced; a bilinear resize straight to the canvas would skip most pixels of a large photo
(aliasing) and place faces differently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

Triple = Union[float, Tuple[float, float, float]]


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its input.

    ``size`` is the canvas ``(width, height)``; ``mean`` and ``std`` are applied as ``(pixel - mean) / std`` in the
    channel order the model reads (``rgb=True``: R, G, B). ``keep_ratio`` scales each image to fit the canvas
    without distortion and pads the rest with ``pad_value``, at the top-left (InsightFace's convention) or centred.
    """

    size: Tuple[int, int] = (640, 640)
    mean: Triple = 0.0
    std: Triple = 1.0
    rgb: bool = True
    keep_ratio: bool = True
    center: bool = False
    pad_value: int = 0

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


@dataclass(frozen=True)
class Letterboxed:
    """A model-ready batch: ``blob`` (N, 3, H, W) float32, and for each image the ``scales`` (N, 2) ``sx, sy``
    (canvas pixels per original pixel), ``offsets`` (N, 2) where the image starts on the canvas, and the original
    ``shapes`` (N, 2) ``height, width``. ``buffer`` is the pooled array ``blob`` is a view of, if any (see
    :class:`BufferPool`)."""

    blob: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray
    shapes: np.ndarray
    buffer: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def to_original(self, index: int, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` canvas ``x, y`` of image ``index`` to original-image pixels."""
        return (points - self.offsets[index]) / self.scales[index]

    def boxes_to_original(self, index: int, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` canvas xyxy of image ``index`` to original pixels, clipped to the image."""
        h, w = self.shapes[index]
        out = self.to_original(index, boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out.astype(np.float32, copy=False)


def fit_size(height: int, width: int, spec: InputSpec) -> Tuple[int, int, float, float]:
    """``(new_h, new_w, sx, sy)``: the size an image is resized to on the canvas, and its scale factors."""
    if not spec.keep_ratio:
        return spec.height, spec.width, spec.width / width, spec.height / height
    if height / width > spec.height / spec.width:
        new_h = spec.height
        new_w = max(1, int(new_h * width / height))
    else:
        new_w = spec.width
        new_h = max(1, int(new_w * height / width))
    return new_h, new_w, new_w / width, new_h / height


def shrink_factor(height: int, width: int, canvas: Tuple[int, int], keep_ratio: bool = True) -> int:
    """The largest power of two by which an image can shrink (sides rounded up, as a JPEG decoder rounds them) and
    still cover its fit on a ``(width, height)`` canvas; 1 when it cannot shrink.

    The fit keeps the aspect ratio (letterboxing) or stretches to the canvas (``keep_ratio=False``), and must be
    covered in both orientations (EXIF may turn a stored image a quarter turn), so the answer is the same for an
    image and its transpose. Shrinking by ``a`` then by ``b`` covers exactly when shrinking by ``a * b`` does.
    """
    canvas_w, canvas_h = canvas
    fit = min if keep_ratio else max

    def covers(factor: int) -> bool:
        h, w = -(-height // factor), -(-width // factor)
        return max(fit(canvas_w / w, canvas_h / h), fit(canvas_w / h, canvas_h / w)) <= 1.0

    factor = 1
    while covers(factor * 2):
        factor *= 2
    return factor


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` reduced by an integer ``factor``: each output pixel is the mean of a ``factor`` x ``factor`` block,
    rounded; sides are rounded up, the last partial blocks padded by repeating the edge pixels."""
    h, w = image.shape[:2]
    rows, cols = h // factor, w // factor
    out = np.empty((-(-h // factor), -(-w // factor), *image.shape[2:]), image.dtype)
    if rows and cols:
        out[:rows, :cols] = cv2.resize(image[: rows * factor, : cols * factor], (cols, rows),
                                       interpolation=cv2.INTER_AREA).reshape(out[:rows, :cols].shape)
    if rows and w % factor:
        edge = cv2.copyMakeBorder(image[: rows * factor, cols * factor :], 0, 0, 0, factor - w % factor,
                                  cv2.BORDER_REPLICATE)
        out[:rows, cols:] = cv2.resize(edge, (1, rows), interpolation=cv2.INTER_AREA).reshape(out[:rows, cols:].shape)
    if h % factor:
        edge = cv2.copyMakeBorder(image[rows * factor :], 0, factor - h % factor, 0, out.shape[1] * factor - w,
                                  cv2.BORDER_REPLICATE)
        out[rows:] = cv2.resize(edge, (out.shape[1], 1), interpolation=cv2.INTER_AREA).reshape(out[rows:].shape)
    return out


def _as_channels(value: Triple) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float32), (3,)).reshape(1, 3, 1, 1)


class BufferPool:
    """Reusable float32 batch buffers, so chunk after chunk is written into memory that is already mapped.

    A fresh (32, 3, 640, 640) float32 blob is 157 MB of pages the kernel must zero on first touch, every chunk.
    ``take`` hands each caller a buffer of its own (several threads may letterbox at once); ``give`` returns it.
    At most ``keep`` idle buffers are kept per frame shape (the largest ones), so memory stays bounded.
    """

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._idle: Dict[Tuple[int, ...], List[np.ndarray]] = {}
        self._lock = threading.Lock()

    def take(self, count: int, frame_shape: Tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of shape ``(>= count, *frame_shape)``: an idle one when one is large enough."""
        with self._lock:
            idle = self._idle.get(tuple(frame_shape), [])
            for position, buffer in enumerate(idle):
                if len(buffer) >= count:
                    return idle.pop(position)
        return np.empty((count, *frame_shape), np.float32)

    def give(self, buffer: Optional[np.ndarray]) -> None:
        """Return a buffer from :meth:`take`; it must no longer be read or written by the caller."""
        if buffer is None:
            return
        with self._lock:
            idle = self._idle.setdefault(tuple(buffer.shape[1:]), [])
            idle.append(buffer)
            idle.sort(key=len, reverse=True)
            del idle[self.keep :]


@dataclass
class Placement:
    """One image fitted for the canvas: ``pixels`` (uint8, its size on the canvas) go at ``(top, left)``; ``scale``
    is ``(sx, sy)``, canvas pixels per original pixel."""

    pixels: np.ndarray
    top: int
    left: int
    scale: Tuple[float, float]


def place(image: np.ndarray, spec: InputSpec) -> Placement:
    """``image`` averaged down by its :func:`shrink_factor` (when it is at least twice its fit), resized bilinearly
    to its fit on the ``spec`` canvas, with where it goes: the one geometry every canvas of deepbatch is built by."""
    factor = shrink_factor(image.shape[0], image.shape[1], spec.size, spec.keep_ratio)
    small = shrink(image, factor) if factor > 1 else image
    h, w = small.shape[:2]
    new_h, new_w, sx, sy = fit_size(h, w, spec)
    top = (spec.height - new_h) // 2 if spec.center else 0
    left = (spec.width - new_w) // 2 if spec.center else 0
    pixels = small if (new_h, new_w) == (h, w) else cv2.resize(small, (new_w, new_h))
    return Placement(pixels, top, left, (sx / factor, sy / factor))


def letterbox(images: Sequence[np.ndarray], spec: InputSpec, pool: Optional[BufferPool] = None) -> Letterboxed:
    """Fit each HxWx3 uint8 BGR image onto the ``spec`` canvas and normalise the batch into one NCHW float32 blob.

    Each image is averaged down by its :func:`shrink_factor` (when it is at least twice its fit), resized once and
    normalised straight into its slot of the blob, channel by channel (reading the model's channel order from the
    BGR pixels), with the padding written as its normalised constant; no full canvas is built. With ``pool`` the
    blob is a view into a pooled buffer (``Letterboxed.buffer``) that the caller gives back once the blob has been
    consumed. Thread-safe.
    """
    n = len(images)
    frame = (3, spec.height, spec.width)
    buffer = pool.take(n, frame) if pool is not None else np.empty((n, *frame), np.float32)
    blob = buffer[:n]
    mean = _as_channels(spec.mean).ravel()
    inv_std = (1.0 / _as_channels(spec.std)).ravel()
    pad = (np.float32(spec.pad_value) - mean) * inv_std
    order = (2, 1, 0) if spec.rgb else (0, 1, 2)
    scales = np.empty((n, 2), np.float32)
    offsets = np.zeros((n, 2), np.float32)
    shapes = np.empty((n, 2), np.int64)
    for i, original in enumerate(images):
        placed = place(original, spec)
        resized, top, left = placed.pixels, placed.top, placed.left
        new_h, new_w = resized.shape[:2]
        for channel, source in enumerate(order):
            plane = blob[i, channel]
            region = plane[top : top + new_h, left : left + new_w]
            np.subtract(resized[:, :, source], mean[channel], out=region, dtype=np.float32)
            np.multiply(region, inv_std[channel], out=region)
            plane[:top] = pad[channel]
            plane[top + new_h :] = pad[channel]
            plane[top : top + new_h, :left] = pad[channel]
            plane[top : top + new_h, left + new_w :] = pad[channel]
        scales[i] = placed.scale
        offsets[i] = (left, top)
        shapes[i] = original.shape[:2]
    return Letterboxed(blob, scales, offsets, shapes, buffer if pool is not None else None)


def normalize(canvas: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR to (N, 3, H, W) float32 ``(x - mean) / std`` in the model's channel order."""
    nchw = (canvas[..., ::-1] if spec.rgb else canvas).transpose(0, 3, 1, 2)
    blob = np.empty(nchw.shape, np.float32)
    np.subtract(nchw, _as_channels(spec.mean), out=blob, dtype=np.float32)
    np.multiply(blob, 1.0 / _as_channels(spec.std), out=blob)
    return blob
