"""Creating ONNX Runtime sessions with a sensible choice of execution providers."""

from __future__ import annotations

import logging
import os
from typing import Any, List, Optional, Sequence, Union

from ..errors import MissingDependencyError

logger = logging.getLogger(__name__)

ProviderList = Union[str, Sequence[Any]]
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def import_onnxruntime():  # type: ignore[no-untyped-def]
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError("onnxruntime", "gpu", "running ONNX models") from exc
    return onnxruntime


def resolve_providers(providers: ProviderList = "auto") -> List[Any]:
    """The provider list to hand to ONNX Runtime.

    ``"auto"`` takes TensorRT, CUDA and CPU in that order, keeping those this onnxruntime build offers; ``"cpu"``
    and ``"cuda"`` are shorthands; an explicit list is passed through.
    """
    ort = import_onnxruntime()
    available = set(ort.get_available_providers())
    if isinstance(providers, str):
        key = providers.lower()
        if key == "auto":
            return [p for p in AUTO_ORDER if p in available]
        if key == "cpu":
            return ["CPUExecutionProvider"]
        if key == "cuda":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if key in ("tensorrt", "trt"):
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        raise ValueError(f"providers={providers!r}: expected 'auto', 'cpu', 'cuda', 'tensorrt' or a list")
    return list(providers)


def session_options(threads: Optional[int] = None):  # type: ignore[no-untyped-def]
    """Session options: full graph optimisation; ``threads`` intra-op threads (default: ONNX Runtime's choice, one
    per physical core; ``$DEEPBATCH_THREADS`` overrides it)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings about exports are not the user's concern
    threads = threads or int(os.environ.get("DEEPBATCH_THREADS", "0") or 0)
    if threads:
        options.intra_op_num_threads = threads
    return options


def create_session(model: Union[str, bytes], providers: ProviderList = "auto", threads: Optional[int] = None):  # type: ignore[no-untyped-def]
    """An ``InferenceSession`` over a model path or serialized bytes."""
    ort = import_onnxruntime()
    chosen = resolve_providers(providers)
    session = ort.InferenceSession(model, sess_options=session_options(threads), providers=chosen)
    logger.debug("ONNX Runtime session on %s", session.get_providers())
    return session
