"""Verification thresholds derived from labelled pairs, not guessed.

Given the distances of labelled pairs (same person or not), :func:`calibrate_threshold` picks the distance below
which a pair is called the same person: the threshold with the highest accuracy on the pairs, and among equally
accurate thresholds the one in the middle of the widest gap between neighbouring distances (the largest margin on
both sides). :func:`cross_validated_accuracy` tells how well such a threshold carries to pairs it was not fitted on
(k-fold, as the LFW protocol does), which is the honest accuracy to report. :func:`fit_confidence` fits DeepFace's
distance-to-confidence mapping (the ``confidence`` key of ``verify``) to the same pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

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


@dataclass(frozen=True)
class ConfidenceModel:
    """DeepFace's distance-to-confidence mapping for one model and metric.

    A logistic regression ``p = sigmoid(w * d / normalizer + b)`` of "same person" on the distance ``d``
    (``normalizer`` is the largest calibration distance when it exceeds 1, as for ``euclidean``, else 1), then
    the percentage is stretched so that verified pairs land in [51, 100] and the others in [0, 49]: ``true_range``
    and ``false_range`` are the smallest and largest percentages the regression gave the calibration pairs on each
    side of the threshold.
    """

    w: float
    b: float
    normalizer: float
    true_range: Tuple[float, float]
    false_range: Tuple[float, float]

    def raw(self, distance: float) -> float:
        """The regression's probability of the same person, in percent."""
        d = distance / self.normalizer if self.normalizer > 1 else distance
        z = self.w * d + self.b
        if z >= 0:  # split by sign so exp never overflows
            return 100.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return 100.0 * ez / (1.0 + ez)

    def confidence(self, distance: float, verified: bool) -> float:
        """DeepFace's ``confidence``: 51 to 100 for a verified pair, 0 to 49 otherwise, rounded to 2 decimals."""
        if distance <= 0:
            return 100.0 if verified else 0.0
        low, high = self.true_range if verified else self.false_range
        target = (max(51.0, low), 100.0) if verified else (0.0, float(min(49, int(high))))
        span = high - low
        value = target[0] if span <= 0 else (self.raw(distance) - low) / span * (target[1] - target[0]) + target[0]
        value = max(value, 51.0) if verified else min(value, 49.0)
        return round(min(max(value, 0.0), 100.0), 2)


def default_confidence(verified: bool) -> float:
    """DeepFace's confidence for a model and metric without a fitted mapping."""
    return 51.0 if verified else 49.0


def fit_confidence(distances: np.ndarray, same: np.ndarray, threshold: float, regularization: float = 1.0,
                   iterations: int = 100) -> ConfidenceModel:
    """Fit :class:`ConfidenceModel` to labelled pairs: an L2-regularised logistic regression (inverse strength
    ``regularization`` on the slope, as scikit-learn's default ``C=1``; the labelled pairs of a good model are
    separable, where an unregularised fit diverges) solved by Newton's method, then the percentage ranges of the
    pairs at or below ``threshold`` and above it."""
    d, y = _as_inputs(distances, same)
    normalizer = float(d.max()) if d.max() > 1 else 1.0
    x = d / normalizer
    design = np.stack([x, np.ones_like(x)], axis=1)
    penalty = np.diag([1.0 / regularization, 0.0])
    params = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ params)))
        gradient = design.T @ (p - y) + penalty @ params
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        params -= step
        if np.abs(step).max() < 1e-10:
            break
    model = ConfidenceModel(float(params[0]), float(params[1]), normalizer, (0.0, 0.0), (0.0, 0.0))
    raw = np.array([model.raw(v) for v in d])
    verified = d <= threshold

    def span(mask: np.ndarray) -> Tuple[float, float]:
        return (float(raw[mask].min()), float(raw[mask].max())) if mask.any() else (0.0, 100.0)

    return ConfidenceModel(model.w, model.b, normalizer, span(verified), span(~verified))
