"""Resize a batch of images of any sizes onto one model canvas, and map canvas coordinates back.

A model declares *what* it wants in an :class:`InputSpec`; :func:`letterbox` is the one function that does it, so no
backend resizes or normalises by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

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
    ``shapes`` (N, 2) ``height, width``."""

    blob: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray
    shapes: np.ndarray

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


def _as_channels(value: Triple) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float32), (3,)).reshape(1, 3, 1, 1)


def letterbox(images: Sequence[np.ndarray], spec: InputSpec, canvas: Union[np.ndarray, None] = None) -> Letterboxed:
    """Fit each HxWx3 uint8 BGR image onto the ``spec`` canvas and normalise the batch into one NCHW float32 blob.

    ``canvas`` is an optional reusable (>=N, H, W, 3) uint8 buffer.
    """
    n = len(images)
    if canvas is None or canvas.shape[0] < n or canvas.shape[1:] != (spec.height, spec.width, 3):
        canvas = np.empty((n, spec.height, spec.width, 3), np.uint8)
    canvas = canvas[:n]
    canvas.fill(spec.pad_value)
    scales = np.empty((n, 2), np.float32)
    offsets = np.zeros((n, 2), np.float32)
    shapes = np.empty((n, 2), np.int64)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        new_h, new_w, sx, sy = fit_size(h, w, spec)
        top = (spec.height - new_h) // 2 if spec.center else 0
        left = (spec.width - new_w) // 2 if spec.center else 0
        resized = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h))
        canvas[i, top : top + new_h, left : left + new_w] = resized
        scales[i] = (sx, sy)
        offsets[i] = (left, top)
        shapes[i] = (h, w)
    return Letterboxed(normalize(canvas, spec), scales, offsets, shapes)


def normalize(canvas: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR to (N, 3, H, W) float32 ``(x - mean) / std`` in the model's channel order."""
    nchw = (canvas[..., ::-1] if spec.rgb else canvas).transpose(0, 3, 1, 2)
    blob = np.empty(nchw.shape, np.float32)
    np.subtract(nchw, _as_channels(spec.mean), out=blob, dtype=np.float32)
    np.multiply(blob, 1.0 / _as_channels(spec.std), out=blob)
    return blob
