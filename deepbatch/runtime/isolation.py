"""The cross-frame contamination check: does frame i give the same outputs alone and inside a batch?

Frame i is run alone, then placed at several positions of batches of other random frames; every output must have a
leading batch axis and frame i's slice must equal its solo output within ``tolerance``. A graph that flattens the
batch into its rows, normalises over the batch or hard-codes batch 1 fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

# Frame i alone vs in a batch runs different kernels' blocking, so float32 sums are ordered differently: a few
# units in the last place of values of order 1-100. 1e-4 absolute is ~1000x that and far below any real mixing.
DEFAULT_TOLERANCE = 1e-4

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass
class IsolationReport:
    """Outcome of :func:`check_batch_isolation`: per output the largest absolute difference seen."""

    output_names: List[str]
    batch_sizes: Tuple[int, ...]
    tolerance: float
    max_abs_diff: Dict[str, float] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def table(self) -> str:
        width = max([len(n) for n in self.output_names] + [6])
        lines = [f"{'output':<{width}}  max |alone - in batch|"]
        for name in self.output_names:
            lines.append(f"{name:<{width}}  {self.max_abs_diff.get(name, float('nan')):.3g}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict} (batch sizes {', '.join(map(str, self.batch_sizes))}; tolerance {self.tolerance:g})")
        lines.extend(f"  {f}" for f in self.failures)
        return "\n".join(lines)


def positions_for(batch_size: int) -> List[int]:
    """First, middle, last, and position 7 where the batch has one (the classic re-export test)."""
    return sorted({0, batch_size // 2, batch_size - 1} | ({7} if batch_size > 7 else set()))


def check_batch_isolation(
    run: Runner,
    frame_shape: Tuple[int, ...],
    output_names: Sequence[str],
    batch_sizes: Sequence[int] = (2, 7, 16, 32),
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    dtype: type = np.float32,
) -> IsolationReport:
    """Run the check with ``run(batch) -> outputs`` on random frames of ``frame_shape`` (without the batch axis)."""
    rng = np.random.default_rng(seed)
    report = IsolationReport(list(output_names), tuple(batch_sizes), tolerance)
    report.max_abs_diff = {name: 0.0 for name in output_names}
    largest = max(batch_sizes)
    frames: np.ndarray = rng.uniform(-1.0, 1.0, size=(largest + 1, *frame_shape)).astype(dtype)
    probe = frames[-1:]
    alone = [np.asarray(o) for o in run(probe)]
    for name, out in zip(output_names, alone):
        if out.ndim == 0 or out.shape[0] != 1:
            report.failures.append(f"output {name} has no batch axis (shape {out.shape} for one frame)")
    if report.failures:
        return report
    for size in batch_sizes:
        for position in positions_for(size):
            batch = frames[:size].copy()
            batch[position] = probe[0]
            try:
                outputs = [np.asarray(o) for o in run(batch)]
            except Exception as exc:  # a graph that hard-codes its batch size fails here: that is the verdict
                report.failures.append(f"a batch of {size} could not run: {' '.join(str(exc).split())}")
                return report
            for name, solo, out in zip(output_names, alone, outputs):
                if out.shape[0] != size or out.shape[1:] != solo.shape[1:]:
                    report.failures.append(
                        f"output {name}: batch of {size} gave shape {out.shape}, expected ({size}, *{solo.shape[1:]})"
                    )
                    return report
                diff = float(np.max(np.abs(out[position].astype(np.float64) - solo[0]))) if solo.size else 0.0
                report.max_abs_diff[name] = max(report.max_abs_diff[name], diff)
                if not diff <= tolerance:
                    report.failures.append(
                        f"output {name}: frame at position {position} of a batch of {size} differs from the frame "
                        f"alone by {diff:.3g} (> {tolerance:g})"
                    )
    return report


# A repaired graph against the unmodified one: the same float32 kernels on the same frames, but the rewritten graph
# and a batch may be blocked differently, so sums come out in another order. Outputs range from scores (~1) to
# pixel coordinates (~1000): allow 1e-4 absolute plus 1e-5 of the value, ~100x float32 rounding at both scales.
PROOF_ATOL = 1e-4
PROOF_RTOL = 1e-5
PROOF_BATCH = 3


def check_against_original(
    original: Runner,
    candidate: Runner,
    frame_shape: Tuple[int, ...],
    output_names: Sequence[str],
    batch_size: int = PROOF_BATCH,
    seed: int = 0,
    dtype: type = np.float32,
) -> IsolationReport:
    """Prove ``candidate`` (a repaired graph) gives ``original``'s answer, on ``batch_size`` random frames.

    Each frame is run alone through ``original``; ``candidate`` must give frame 0's outputs at batch 1, and every
    frame's outputs inside one mixed batch, within ``PROOF_ATOL + PROOF_RTOL * |original|``. An original whose rows
    carry no batch axis (a flattened export) is compared row block for row block. ``max_abs_diff`` per output is
    the largest difference seen.
    """
    rng = np.random.default_rng(seed)
    frames: np.ndarray = rng.uniform(-1.0, 1.0, size=(batch_size, *frame_shape)).astype(dtype)
    report = IsolationReport(list(output_names), (1, batch_size), PROOF_ATOL)
    report.max_abs_diff = {name: 0.0 for name in output_names}
    alone = [[np.asarray(o) for o in original(frames[i : i + 1])] for i in range(batch_size)]
    for size in (1, batch_size):
        try:
            outputs = [np.asarray(o) for o in candidate(frames[:size])]
        except Exception as exc:  # a graph that still hard-codes its batch size fails here: that is the verdict
            report.failures.append(f"the repaired graph could not run a batch of {size}: {' '.join(str(exc).split())}")
            return report
        for name, out, k in zip(output_names, outputs, range(len(outputs))):
            for position in range(size):
                reference = alone[position][k]
                reference = reference[0] if reference.ndim == out.ndim else reference
                if out.ndim == 0 or out.shape[0] != size or out[position].size != reference.size:
                    report.failures.append(f"output {name}: a batch of {size} gave shape {out.shape}; the original "
                                           f"gives {reference.shape} per frame")
                    return report
                mine = out[position].reshape(reference.shape).astype(np.float64)
                diff = float(np.max(np.abs(mine - reference))) if reference.size else 0.0
                report.max_abs_diff[name] = max(report.max_abs_diff[name], diff)
                if not np.all(np.abs(mine - reference) <= PROOF_ATOL + PROOF_RTOL * np.abs(reference)):
                    where = "alone" if size == 1 else f"at position {position} of a batch of {size}"
                    report.failures.append(f"output {name}: the repaired graph {where} differs from the original "
                                           f"by {diff:.3g}")
                    return report
    return report
