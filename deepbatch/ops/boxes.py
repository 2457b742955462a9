"""Box and point decoding shared by anchor-based detectors."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

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



def clip_boxes(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``boxes`` (N, 4) xyxy clipped in place to an image of ``shape`` ``(height, width, ...)``, and returned."""
    np.clip(boxes[:, 0::2], 0, shape[1], out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, shape[0], out=boxes[:, 1::2])
    return boxes


def group_by_shape(images: Sequence[np.ndarray], min_side: int = 0) -> Dict[Tuple[int, ...], List[int]]:
    """Indices of ``images`` grouped by shape (for models that take a stack of one size), in first-seen order;
    images whose shorter side is below ``min_side`` are left out."""
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for index, image in enumerate(images):
        if min(image.shape[:2]) >= min_side:
            groups.setdefault(tuple(image.shape), []).append(index)
    return groups


def check_cascade_thresholds(thresholds: Sequence[float]) -> Tuple[float, float, float]:
    """The three stage thresholds of an MTCNN cascade (PNet, RNet, ONet) as floats; ValueError otherwise."""
    if len(thresholds) != 3:
        raise ValueError(f"thresholds must be three scores (PNet, RNet, ONet), got {thresholds!r}")
    return float(thresholds[0]), float(thresholds[1]), float(thresholds[2])
