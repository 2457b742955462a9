"""Prior (default) boxes of SSD / RetinaFace-style detectors, described by a spec, and their decoding.

A model of this family regresses, for every prior box, offsets ``(dx, dy, dw, dh)`` (and optionally five landmark
offsets) that are decoded against the prior with two variances. Everything that differs between such models is data
in a :class:`PriorSpec` (strides, prior sizes per level, variances, clipping), so a new model of the family costs a
spec, not code. Priors are generated once per canvas size (cached) with array operations.

Conventions: priors are ``(N, 4)`` float32 ``cx, cy, w, h`` normalised to the canvas (``x / width``,
``y / height``), ordered level by level, row-major over each level's cells, and over the level's ``min_sizes``
innermost (the order SSD, RetinaFace and Ultra-Light exports concatenate their heads in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class PriorSpec:
    """Prior boxes of an SSD-style detector.

    ``steps``: stride of each feature level in canvas pixels (a level has ``ceil(H / step) x ceil(W / step)`` cells);
    ``min_sizes``: per level, the side lengths in canvas pixels of the square priors centred on each cell;
    ``variances``: the ``(centre, size)`` variances of the box encoding; ``clip``: clip normalised priors to
    ``[0, 1]`` (Ultra-Light does, RetinaFace does not); ``fit_cells``: centre cell ``i`` of a level at
    ``(i + 0.5) / cells`` of the canvas, spreading the cells evenly over it (Ultra-Light, classic SSD), instead of at
    ``(i + 0.5) * step`` pixels (RetinaFace). The two differ when the canvas is not a multiple of the step.
    """

    steps: Tuple[int, ...]
    min_sizes: Tuple[Tuple[float, ...], ...]
    variances: Tuple[float, float] = (0.1, 0.2)
    clip: bool = False
    fit_cells: bool = False

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.min_sizes):
            raise ValueError(f"PriorSpec: {len(self.steps)} steps but {len(self.min_sizes)} min_sizes levels; "
                             "give one tuple of prior sizes per step")
        if any(step <= 0 for step in self.steps) or not all(self.min_sizes):
            raise ValueError(f"PriorSpec: steps must be positive and every level needs a prior size, got {self}")

    def count(self, height: int, width: int) -> int:
        """Number of priors on a ``height`` x ``width`` canvas."""
        return sum(math.ceil(height / s) * math.ceil(width / s) * len(m) for s, m in zip(self.steps, self.min_sizes))


@lru_cache(maxsize=32)
def prior_boxes(spec: PriorSpec, height: int, width: int) -> np.ndarray:
    """(N, 4) float32 ``cx, cy, w, h`` priors of ``spec`` on a ``height`` x ``width`` canvas, normalised.

    Cached per ``(spec, height, width)``; the returned array is read-only.
    """
    levels = []
    for step, sizes in zip(spec.steps, spec.min_sizes):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.mgrid[:rows, :cols]
        count = len(sizes)
        level = np.empty((rows, cols, count, 4), np.float64)
        cell_w, cell_h = (width / cols, height / rows) if spec.fit_cells else (step, step)
        level[..., 0] = ((xs + 0.5) * cell_w / width)[..., None]
        level[..., 1] = ((ys + 0.5) * cell_h / height)[..., None]
        level[..., 2] = np.asarray(sizes, np.float64) / width
        level[..., 3] = np.asarray(sizes, np.float64) / height
        levels.append(level.reshape(-1, 4))
    priors = np.concatenate(levels).astype(np.float32)
    if spec.clip:
        np.clip(priors, 0.0, 1.0, out=priors)
    priors.setflags(write=False)
    return priors


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: Tuple[float, float]) -> np.ndarray:
    """(N, 4) normalised xyxy from (N, 4) ``dx, dy, dw, dh`` regressions and their (N, 4) ``cx, cy, w, h`` priors."""
    centers = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def decode_points(offsets: np.ndarray, priors: np.ndarray, variances: Tuple[float, float]) -> np.ndarray:
    """(N, K, 2) normalised ``x, y`` from (N, 2K) point offsets and their (N, 4) priors (RetinaFace's encoding)."""
    points = offsets.reshape(len(offsets), offsets.shape[1] // 2, 2)
    return priors[:, None, :2] + points * variances[0] * priors[:, None, 2:]


def decode_priors(
    spec: PriorSpec,
    loc: np.ndarray,
    canvas: Tuple[int, int],
    image_index: np.ndarray,
    anchor: np.ndarray,
    point_offsets: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Boxes (M, 4) xyxy and landmarks (M, K, 2) (or None) in canvas pixels of the M candidates ``anchor[i]`` of
    image ``image_index[i]``, decoded for the whole batch at once.

    ``loc`` (B, N, 4), ``point_offsets`` (B, N, 2K) or ``None``; ``canvas`` is ``(width, height)`` in pixels. Raises
    ``ValueError`` when N is not the prior count of ``spec`` on that canvas.
    """
    width, height = canvas
    priors = prior_boxes(spec, height, width)
    if loc.shape[1] != len(priors):
        raise ValueError(f"the model gives {loc.shape[1]} boxes per image but {spec} has {len(priors)} priors on a "
                         f"{width}x{height} canvas: the spec does not describe this model or canvas")
    picked = priors[anchor]
    scale = np.array([width, height], np.float32)
    boxes = decode_boxes(loc[image_index, anchor], picked, spec.variances) * np.tile(scale, 2)
    landmarks = None
    if point_offsets is not None:
        landmarks = decode_points(point_offsets[image_index, anchor], picked, spec.variances) * scale
    return boxes.astype(np.float32), landmarks
