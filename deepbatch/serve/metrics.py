"""Counters, gauges and histograms for ``/metrics``, in Prometheus' text exposition format (version 0.0.4).

Small and dependency-free: a few series, each with an optional ``stage`` or ``route``/``status`` label, updated
under one lock from the event loop and the worker threads.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Sequence, Tuple

Labels = Tuple[Tuple[str, str], ...]

_LOCK = threading.Lock()


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels] + ([extra] if extra else [])
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self.values: Dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with _LOCK:
            self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> List[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with _LOCK:
            lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self.values.items())] or [f"{self.name} 0"]
        return lines


class Gauge:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def render(self) -> List[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {self.value:g}"]


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]):
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets))
        self.series: Dict[Labels, List[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with _LOCK:
            row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += 1
            row[-1] += value

    def summary(self, **labels: str) -> Tuple[float, float]:
        """``(count, sum)`` of one series."""
        with _LOCK:
            row = self.series.get(tuple(sorted(labels.items())))
            return (0.0, 0.0) if row is None else (row[-2], row[-1])

    def render(self) -> List[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with _LOCK:
            for key, row in sorted(self.series.items()):
                for bound, count in zip(self.buckets, row):
                    le = f'le="{bound:g}"'
                    lines.append(f"{self.name}_bucket{_labels(key, le)} {count:g}")
                le = 'le="+Inf"'
                lines.append(f"{self.name}_bucket{_labels(key, le)} {row[-2]:g}")
                lines.append(f"{self.name}_count{_labels(key)} {row[-2]:g}")
                lines.append(f"{self.name}_sum{_labels(key)} {row[-1]:.6f}")
        return lines


SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every series the service exports."""

    def __init__(self) -> None:
        self.requests = Counter("deepbatch_requests_total", "HTTP requests answered, by route and status code")
        self.request_time = Histogram("deepbatch_request_seconds", "time from request to response, by route",
                                      SECONDS)
        self.batch_size = Histogram("deepbatch_batch_size", "images (detect) or faces (embed) per model call, by "
                                    "stage", SIZES)
        self.queue_wait = Histogram("deepbatch_queue_wait_seconds", "time an image waited for its detection batch",
                                    SECONDS)
        self.stage_time = Histogram("deepbatch_stage_seconds", "time of one batched model call, by stage", SECONDS)
        self.queue_depth = Gauge("deepbatch_queue_images", "images waiting for detection")
        self.rejected = Counter("deepbatch_rejected_total", "requests refused with 503 because the queue was full")
        self.model_errors = Counter("deepbatch_model_errors_total", "model calls that raised, by stage")

    def render(self) -> str:
        series: List[Any] = [self.requests, self.request_time, self.batch_size, self.queue_wait, self.stage_time,
                  self.queue_depth, self.rejected, self.model_errors]
        return "\n".join(line for s in series for line in s.render()) + "\n"
