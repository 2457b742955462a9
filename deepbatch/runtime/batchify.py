"""Making an ONNX face model batchable on disk, and proving that a model file batches safely.

* :func:`check_batch` opens a model file as it is and runs the cross-frame contamination check
  (:func:`~deepbatch.runtime.isolation.check_batch_isolation`) on random frames: frame i alone against frame i at
  several positions of batches of several sizes.
* :func:`batchify` repairs a file whose batch is declared as 1 or flattened into the rows of its outputs
  (:func:`~deepbatch.runtime.surgery.make_batch_dynamic`), runs the same check on the repaired graph, and writes
  the result only when the check passes; otherwise it refuses with :class:`BatchUnsafeError`.

Both work on any single-input ONNX model with a floating-point input (detectors and recognizers alike).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ArgumentError, ModelFormatError
from ..errors import BatchUnsafeError as BatchUnsafeError
from ..io.outputs import write_atomic
from .isolation import DEFAULT_TOLERANCE, IsolationReport, check_against_original, check_batch_isolation
from .session import ProviderList, create_session
from .surgery import BatchRepair, batch_layout, import_onnx, make_batch_dynamic

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_BATCH_SIZES = (2, 7, 16, 32)


@dataclass
class BatchifyResult:
    """What :func:`batchify` did: the declared ``layout`` of the source (``fixed``, ``flattened`` or ``dynamic``),
    the ``repair`` applied, and the isolation ``report`` of the file written to ``target``."""

    source: Path
    target: Path
    layout: str
    repair: BatchRepair
    report: IsolationReport


def _graph_input(model: Any, path: PathLike) -> Any:
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelFormatError(
            f"{os.fspath(path)}: the batch check needs a model with exactly one input, this one has {names}"
        )
    return inputs[0]


def frame_spec(model: Any, path: PathLike, input_shape: Optional[Sequence[int]] = None) -> Tuple[Tuple[int, ...], Any]:
    """``(frame_shape, dtype)`` of one frame of the model's only input (its shape without the batch axis).

    ``input_shape`` (e.g. ``(3, 640, 640)``) is needed when the model leaves a dimension after the batch axis
    dynamic; otherwise the declared dimensions are used.
    """
    onnx = import_onnx()
    value = _graph_input(model, path)
    elem_type = value.type.tensor_type.elem_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    if not np.issubdtype(dtype, np.floating):
        raise ModelFormatError(
            f"{os.fspath(path)}: input {value.name!r} is {dtype}; the batch check feeds random floating-point frames "
            "and supports float16/float32/float64 inputs only"
        )
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != len(dims) - 1 or any(v < 1 for v in shape):
            raise ModelFormatError(
                f"{os.fspath(path)}: input_shape {shape} does not fit input {value.name!r} of declared shape {dims}; "
                f"give the {len(dims) - 1} positive dimensions after the batch axis"
            )
        return shape, dtype
    rest = dims[1:]
    unknown = [d for d in rest if not isinstance(d, int) or d < 1]
    if not dims or unknown:
        raise ModelFormatError(
            f"{os.fspath(path)}: input {value.name!r} has shape {dims} with dynamic dimension(s) {unknown} after the "
            "batch axis; give the frame shape to check with, e.g. input_shape=(3, 640, 640) "
            "(command line: --input-shape 3,640,640)"
        )
    return tuple(int(d) for d in rest), dtype


def _check_session(
    session: Any, frame_shape: Tuple[int, ...], dtype: Any, batch_sizes: Sequence[int], tolerance: float, seed: int
) -> IsolationReport:
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]

    def run(blob: np.ndarray) -> Sequence[np.ndarray]:
        return session.run(output_names, {input_name: blob})

    return check_batch_isolation(run, frame_shape, output_names, batch_sizes, tolerance, seed, dtype.type)


def _runner(session: Any) -> Any:
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return lambda blob: session.run(names, {input_name: blob})


def _validate_sizes(batch_sizes: Sequence[int]) -> Tuple[int, ...]:
    sizes = tuple(int(s) for s in batch_sizes)
    if not sizes or any(s < 2 for s in sizes):
        raise ArgumentError(f"batch_sizes must be one or more integers >= 2, got {tuple(batch_sizes)}")
    return sizes


def check_batch(
    model_path: PathLike,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    input_shape: Optional[Sequence[int]] = None,
    tolerance: float = DEFAULT_TOLERANCE,
    providers: ProviderList = "auto",
    seed: int = 0,
) -> IsolationReport:
    """The cross-frame contamination check of the model file at ``model_path``, as it is (nothing is repaired).

    Random frames of the input's shape (``input_shape`` where the file leaves it dynamic) are drawn from ``seed``;
    frame i is run alone, then at the first, middle and last position (and position 7) of batches of each of
    ``batch_sizes``; every output's slice must equal the solo output within ``tolerance`` (absolute). A file that
    refuses a batch (declared batch 1) or has outputs without a batch axis fails too. ``report.passed`` is the
    verdict, ``report.table()`` the per-output maximum differences.
    """
    onnx = import_onnx()
    sizes = _validate_sizes(batch_sizes)
    path = Path(model_path)
    model = onnx.load(str(path))
    frame_shape, dtype = frame_spec(model, path, input_shape)
    session = create_session(str(path), providers)
    return _check_session(session, frame_shape, dtype, sizes, tolerance, seed)


def batchify(
    source: PathLike,
    target: PathLike,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    input_shape: Optional[Sequence[int]] = None,
    dynamic_spatial: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    providers: ProviderList = "auto",
    seed: int = 0,
) -> BatchifyResult:
    """Write to ``target`` a copy of the model ``source`` with a true dynamic batch axis on its input and outputs.

    The graph is rewritten by :func:`make_batch_dynamic` (declared batch 1 made dynamic; Reshape constants that
    hard-code batch 1 or flatten the batch into ``[-1, C]`` rows rewritten to keep the batch axis), and with
    ``dynamic_spatial`` the input's height and width are freed too. A rewritten body must first give the original
    graph's outputs, alone and in a mixed batch (:func:`~.isolation.check_against_original`). The repaired graph is
    then checked with
    :func:`check_batch`'s test at ``batch_sizes`` on frames of the source's declared shape (or ``input_shape``);
    only a graph that passes is written (atomically). Raises :class:`BatchUnsafeError` (nothing written) when the
    graph cannot be rewritten or the check fails, and :class:`~deepbatch.errors.ModelFormatError` when the model
    does not suit the check (several inputs, integer input, dynamic frame shape without ``input_shape``).
    """
    onnx = import_onnx()
    sizes = _validate_sizes(batch_sizes)
    source, target = Path(source), Path(target)
    original = onnx.load(str(source))
    frame_shape, dtype = frame_spec(original, source, input_shape)
    layout = batch_layout(original)
    try:
        repaired, repair = make_batch_dynamic(original, spatial=dynamic_spatial)
    except ModelFormatError as exc:
        raise BatchUnsafeError(f"{source}: cannot give this graph a batch axis ({exc}); nothing was written") from exc
    data = repaired.SerializeToString()
    try:
        session = create_session(data, providers)
    except Exception as exc:  # ONNX Runtime rejects the rewritten graph: it cannot be proven safe
        raise BatchUnsafeError(
            f"{source}: the rewritten graph does not load in ONNX Runtime ({' '.join(str(exc).split())}); "
            "nothing was written"
        ) from exc
    if repair.rewrote_nodes:
        original_session = create_session(make_batch_dynamic(original, spatial=dynamic_spatial, body=False)[0]
                                           .SerializeToString(), providers)
        names = [o.name for o in session.get_outputs()]
        proof = check_against_original(_runner(original_session), _runner(session), frame_shape, names, seed=seed,
                                       dtype=dtype.type)
        if not proof.passed:
            raise BatchUnsafeError(
                f"{source}: the rewritten graph ({repair.describe()}) does not give the original graph's answer, so "
                f"nothing was written.\n{proof.table()}", proof)
    report = _check_session(session, frame_shape, dtype, sizes, tolerance, seed)
    if not report.passed:
        raise BatchUnsafeError(
            f"{source}: after the rewrite ({repair.describe()}) frames still affect each other in a batch, so the "
            f"result is not safe and nothing was written. Run this model one image per call.\n{report.table()}",
            report,
        )
    write_atomic(target, data)
    logger.info("%s -> %s: %s", source, target, repair.describe())
    return BatchifyResult(source, target, layout, repair, report)

