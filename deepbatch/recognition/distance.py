"""Distances between face embeddings, as DeepFace defines them.

* ``cosine``: ``1 - a.b / (|a| |b|)``, in [0, 2];
* ``euclidean``: ``|a - b|`` on the raw embeddings (scale depends on the model);
* ``euclidean_l2``: ``|a/|a| - b/|b||``, in [0, 2]; equal to ``sqrt(2 * cosine)``;
* ``angular``: ``arccos(a.b / (|a| |b|)) / pi``, the angle between the embeddings as a fraction of a half turn, in
  [0, 1].
"""

from __future__ import annotations

import numpy as np

from .normalization import l2_normalize as l2_normalize

METRICS = ("cosine", "euclidean", "euclidean_l2", "angular")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"Invalid distance_metric passed - {metric!r}; use one of {METRICS}")
    return metric


def _angular(similarity: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(similarity, -1.0, 1.0)) / np.pi


def _unit(embeddings: np.ndarray) -> np.ndarray:
    return l2_normalize(embeddings, np.float64)


def distance_matrix(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(N, M)`` float64 distances between every row of ``a`` (N, D) and every row of ``b`` (M, D)."""
    check_metric(metric)
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings of different sizes cannot be compared: {a.shape[1]} and {b.shape[1]}")
    if metric == "cosine":
        return np.clip(1.0 - _unit(a) @ _unit(b).T, 0.0, 2.0)
    if metric == "angular":
        return _angular(_unit(a) @ _unit(b).T)
    if metric == "euclidean_l2":
        a, b = _unit(a), _unit(b)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def pair_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(N,)`` float64 distances between row i of ``a`` and row i of ``b`` (both (N, D))."""
    check_metric(metric)
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired embeddings must have the same shape, got {a.shape} and {b.shape}")
    if metric == "cosine":
        return np.clip(1.0 - (_unit(a) * _unit(b)).sum(1), 0.0, 2.0)
    if metric == "angular":
        return _angular((_unit(a) * _unit(b)).sum(1))
    if metric == "euclidean_l2":
        a, b = _unit(a), _unit(b)
    return np.linalg.norm(a - b, axis=1)
