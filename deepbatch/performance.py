"""How a call spends the machine, in one object: :class:`Performance`.

Every field has an automatic default, so most callers never pass one. The verbs (``extract_faces``,
``iter_extract_faces``, ``detect``, ``iter_detect``, ``represent``, ``verify_pairs``, ``find``, ``register``,
``search``) take ``performance=Performance(...)``; their older keyword arguments ``batch_size=``, ``workers=`` and
``prefetch=`` are still accepted as advanced spellings of the same fields (pass one or the other, not both).
``threads`` is a model-construction setting: the verbs give it to the models they build from a registered name
(a model passed as an instance keeps the count it was built with); its older spellings, ``threads=`` of a
backend's constructor or of ``build_detector``/``build_recognizer`` and ``$DEEPBATCH_THREADS``, still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from .core.workers import DEFAULT_PREFETCH, BatchSize, resolve_batch_size
from .errors import ArgumentError
from .registry import accepts


@dataclass(frozen=True)
class Performance:
    """Performance settings of one call; the defaults are automatic choices.

    Args:
        batch_size: images per model call; ``"auto"`` chooses for the device (32 on CUDA or TensorRT, 1 on a CPU,
            where single-image chunks keep every core busy).
        workers: threads that read, decode and letterbox the next chunks while the model runs the current one;
            ``None`` chooses from the usable cores, ``0`` does everything in the calling thread.
        prefetch: chunks prepared ahead of the model; memory holds a few chunks of images whatever the input's
            length, so a larger value trades memory for smoother throughput.
        threads: intra-op threads of each ONNX Runtime model the call builds from a name; ``None`` chooses for the
            machine (ONNX Runtime's one per physical core, lowered to the CPUs this process may use, or
            ``$DEEPBATCH_THREADS``), and lets a pipeline that runs one chunk per core give each run its share.
            Backends that do not run on ONNX Runtime ignore it.
    """

    batch_size: BatchSize = "auto"
    workers: Optional[int] = None
    prefetch: int = DEFAULT_PREFETCH
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        if self.batch_size != "auto":
            resolve_batch_size(self.batch_size)  # raises ArgumentError naming a bad value
        for name in ("workers", "prefetch"):
            value = getattr(self, name)
            if value is None and name == "workers":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ArgumentError(f"Performance({name}=...) must be an integer >= 0"
                                    f"{' or None' if name == 'workers' else ''}, got {value!r}")
        threads = self.threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ArgumentError(f"Performance(threads=...) must be a positive integer or None (automatic), "
                                f"got {threads!r}")

    def model_options(self, factory: Any) -> Dict[str, Any]:
        """The construction options these settings give a model built by ``factory`` (a registry entry's):
        ``threads`` when it is set and the factory takes it, else none."""
        if self.threads is None or not accepts(factory, "threads"):
            return {}
        return {"threads": self.threads}


AUTOMATIC = Performance()  # every choice left to deepbatch


def settle(performance: Optional[Performance], batch_size: BatchSize = "auto", workers: Optional[int] = None,
           prefetch: int = DEFAULT_PREFETCH, threads: Optional[int] = None) -> Performance:
    """The settings of one call: ``performance`` when given (the advanced keyword arguments must then keep their
    defaults), else the advanced keyword arguments ``batch_size``, ``workers``, ``prefetch`` and ``threads``.

    Raises:
        ArgumentError: ``performance`` is not a :class:`Performance`, or both it and an advanced argument are given.
    """
    given = Performance(batch_size, workers, prefetch, threads)
    if performance is None:
        return given
    if not isinstance(performance, Performance):
        raise ArgumentError(f"performance must be a deepbatch.Performance, got {type(performance).__name__}")
    if given != AUTOMATIC:
        raise ArgumentError(f"performance={performance} and batch_size/workers/prefetch/threads were both given; "
                            "pass the settings in one of them")
    return performance
