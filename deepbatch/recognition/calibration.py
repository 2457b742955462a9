"""Verification thresholds derived from labelled pairs, not guessed.

Given the distances of labelled pairs (same person or not), :func:`calibrate_threshold` picks the distance below
which a pair is called the same person: the threshold with the highest accuracy on the pairs, and among equally
accurate thresholds the one in the middle of the widest gap between neighbouring distances (the largest margin on
both sides). :func:`cross_validated_accuracy` tells how well such a threshold carries to pairs it was not fitted on
(k-fold, as the LFW protocol does), which is the honest accuracy to report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .distance import check_metric


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold: ``verified = distance <= threshold``.

    ``accuracy`` is on the calibration pairs themselves; ``margin`` is the width of the distance gap the threshold
    sits in (negative-free: 0 when the classes overlap there); ``same_max`` / ``different_min`` are the largest
    same-person and smallest different-person distances (the classes separate fully when ``same_max <
    different_min``).
    """

    metric: str
    threshold: float
    accuracy: float
    margin: float
    same_max: float
    different_min: float
    pairs: int

    @property
    def separable(self) -> bool:
        return self.same_max < self.different_min


def _as_inputs(distances: np.ndarray, same: np.ndarray) -> tuple:
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(same, dtype=bool).ravel()
    if d.shape != y.shape or d.size == 0:
        raise ValueError(f"distances and labels must be non-empty and of equal length, got {d.size} and {y.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances contain NaN or infinite values")
    if y.all() or not y.any():
        raise ValueError("calibration needs both same-person and different-person pairs")
    return d, y


def calibrate_threshold(distances: np.ndarray, same: np.ndarray, metric: str = "cosine") -> Calibration:
    """The most accurate, widest-margin threshold for ``distances`` (N,) with labels ``same`` (N,) bool."""
    check_metric(metric)
    d, y = _as_inputs(distances, same)
    order = np.argsort(d, kind="stable")
    d_sorted, y_sorted = d[order], y[order]
    # Candidate k puts the first k sorted pairs at or below the threshold (k = 0..N).
    same_below = np.concatenate([[0], np.cumsum(y_sorted)])
    different_below = np.concatenate([[0], np.cumsum(~y_sorted)])
    correct = same_below + (different_below[-1] - different_below)
    low = np.concatenate([[d_sorted[0] - 1.0], d_sorted])  # last distance accepted
    high = np.concatenate([d_sorted, [d_sorted[-1] + 1.0]])  # first distance rejected
    gap = high - low
    usable = np.concatenate([[True], d_sorted[1:] > d_sorted[:-1], [True]])  # cannot split equal distances
    score = np.where(usable, correct, -1)
    best = np.flatnonzero(score == score.max())
    k = int(best[np.argmax(gap[best])])
    if k == 0:
        threshold = max(0.0, float(high[0]) - 1e-6)
    elif k == len(d):
        threshold = float(low[-1])
    else:
        threshold = float((low[k] + high[k]) / 2.0)
    same_max = float(d[y].max())
    different_min = float(d[~y].min())
    margin = float(gap[k]) if 0 < k < len(d) else 0.0
    return Calibration(metric, threshold, float(correct[k]) / len(d), margin, same_max, different_min, len(d))


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs classified correctly by ``distance <= threshold``."""
    d, y = _as_inputs(distances, same)
    return float(np.mean((d <= threshold) == y))


def cross_validated_accuracy(distances: np.ndarray, same: np.ndarray, metric: str = "cosine", folds: int = 10,
                             seed: int = 0) -> float:
    """Mean accuracy on each of ``folds`` held-out folds of a threshold calibrated on the other folds."""
    d, y = _as_inputs(distances, same)
    if folds < 2 or folds > len(d):
        raise ValueError(f"folds must be between 2 and the number of pairs ({len(d)}), got {folds}")
    assignment = np.random.default_rng(seed).permutation(len(d)) % folds
    scores = []
    for fold in range(folds):
        train, test = assignment != fold, assignment == fold
        threshold = calibrate_threshold(d[train], y[train], metric).threshold
        scores.append(np.mean((d[test] <= threshold) == y[test]))
    return float(np.mean(scores))
