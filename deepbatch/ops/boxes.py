"""Box and point decoding shared by anchor-based detectors."""

from __future__ import annotations

from functools import lru_cache
from typing import List

import numpy as np


@lru_cache(maxsize=64)
def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """(H*W*A, 2) float32 ``x, y`` anchor centres of a stride's feature map, row-major, each repeated A times.

    Cached per shape: the same canvas size gives the same grid. The returned array is read-only.
    """
    ys, xs = np.mgrid[:height, :width]
    centers = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    centers.setflags(write=False)
    return centers


def distance_to_boxes(points: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy from centres (N, 2) and ``left, top, right, bottom`` distances (N, 4)."""
    return np.concatenate([points - distances[:, :2], points + distances[:, 2:]], axis=1)


def distance_to_points(points: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, K, 2) points from centres (N, 2) and ``dx, dy`` offsets (N, 2K)."""
    return points[:, None, :] + distances.reshape(len(distances), distances.shape[1] // 2, 2)


def split_by_image(image_index: np.ndarray, count: int) -> List[slice]:
    """Slices into rows sorted by ``image_index`` (as ``np.nonzero`` returns them), one per image ``0..count-1``."""
    bounds = np.searchsorted(image_index, np.arange(count + 1))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

