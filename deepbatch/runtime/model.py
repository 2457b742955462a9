"""An ONNX model prepared for batched inference, with a per-image fallback when batching cannot be proven safe.

How a model runs is its *batching mode*:

* ``native``: the file declares a dynamic batch axis and runs as it is (at most its declared height and width are
  freed for another canvas);
* ``repaired``: the file declares batch 1 or flattens the batch, and deepbatch freed the declared axis and, where
  data flow shows the body hard-codes batch 1 (:mod:`.batchflow`), rewrote those nodes (:mod:`.surgery`). A graph
  whose body was rewritten, or whose data flow may mix frames, is accepted only after it gives the *original*
  graph's outputs on probe frames, alone and in a mixed batch (:func:`~.isolation.check_against_original`);
* ``per_image``: the repair could not be proven; the original graph runs one image per ``session.run``, and
  ``mode_reason`` says why.

The verdict is cached by the file's SHA-256 (:mod:`.repair_cache`), so a second process skips the proof; the
graph itself is never cached but derived again, in memory, from the verified file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ChecksumError, ModelFormatError
from ..weights import check_loaded
from .batchflow import trace_batch
from .isolation import check_against_original
from .onnx_graph import declared_dims, graph_constants
from .repair_cache import load_entry, store_entry
from .session import (
    GPU_PROVIDERS,
    ProviderList,
    create_session,
    explicit_threads,
    requested_run_threads,
)
from .surgery import BatchRepair, batch_layout, import_onnx, make_batch_dynamic

logger = logging.getLogger(__name__)
_BAD_MODEL_ERRORS = ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NotImplemented")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_onnx(path: Path, data: Optional[bytes] = None):  # type: ignore[no-untyped-def]
    """The ONNX graph in ``path`` (or its bytes ``data``); a file that is not one (truncated, corrupt, another
    format) raises :class:`ModelFormatError` naming it."""
    onnx = import_onnx()
    try:
        return onnx.load_from_string(data) if data is not None else onnx.load(str(path))
    except MemoryError:
        raise
    except Exception as exc:  # protobuf's DecodeError, or onnx's own errors for external data
        raise ModelFormatError(f"{path}: not a readable ONNX model ({_first_line(exc)}); the file is truncated, "
                               "corrupt or in another format: delete it to download it again, or replace it") from exc


def _open_session(path: Path, model: Union[str, bytes], providers: ProviderList, threads: Optional[int]) -> Any:
    try:
        return create_session(model, providers, threads)
    except Exception as exc:
        if type(exc).__name__ in _BAD_MODEL_ERRORS:
            raise ModelFormatError(f"{path}: ONNX Runtime cannot load this model ({_first_line(exc)}); the "
                                   "file is corrupt or not a model for this backend") from exc
        raise


NATIVE, REPAIRED, PER_IMAGE = "native", "repaired", "per_image"
_VERDICT_KEYS = {"mode", "reason", "layout", "repair", "changes", "max_abs_diff"}
_VERDICT_TYPES = {"mode": str, "reason": str, "layout": str, "repair": str, "changes": dict}


class OnnxModel:
    """One ONNX Runtime session that takes a whole batch (see the module docstring for the batching modes).

    ``probe_shape`` (C, H, W) is the frame shape the model will be fed (the proof runs on random frames of it);
    ``dynamic_spatial`` frees declared height and width; ``verify_batch`` forces the proof on (also for a native
    export, which is then rewritten only if it fails) or off; ``cache`` reads and writes the prepared graph under
    ``$DEEPBATCH_HOME/batch_repairs``. ``io_binding`` runs through an ONNX Runtime IO binding (default: on when the
    session runs on CUDA or TensorRT). ``run`` may be called from several threads at once, and on the CPU takes the
    thread count a caller asks with :func:`~.session.threads_per_run` unless ``threads`` fixes it; ``run_calls``
    counts real ``session.run`` calls. Raises :class:`ModelFormatError` when the graph cannot run on the ``probe_shape``
    canvas (a body that hard-codes another one), naming the canvas it was exported for.
    """

    def __init__(
        self,
        path: Union[str, Path],
        providers: ProviderList = "auto",
        threads: Optional[int] = None,
        dynamic_spatial: bool = False,
        probe_shape: Optional[Tuple[int, int, int]] = None,
        verify_batch: Optional[bool] = None,
        io_binding: Optional[bool] = None,
        cache: bool = True,
    ):
        self.path = Path(path)
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        check_loaded(self.path, digest)  # the bytes that run are the bytes that were checked
        options = {"spatial": bool(dynamic_spatial), "probe": list(probe_shape) if probe_shape else None,
                   "verify": verify_batch}
        cached = load_entry(digest, options) if cache else None
        replayed = _replay(self.path, data, cached, dynamic_spatial) if cached is not None else None
        self.from_cache = cached is not None and replayed is not None
        if cached is not None and replayed is not None:
            verdict, prepared = cached, replayed[0]
        else:
            verdict, prepared = _prepare(self.path, data, providers, threads, dynamic_spatial, probe_shape,
                                         verify_batch)
            if cache:
                store_entry(digest, options, verdict)
        self.verdict: Dict[str, Any] = verdict
        self.mode: str = verdict["mode"]
        self.mode_reason: str = verdict["reason"]
        self.layout: str = verdict["layout"]
        self.repair_description: str = verdict["repair"]
        self.repair = BatchRepair(**verdict["changes"])  # what the graph that runs changed in the file
        self._graph = prepared  # the derived graph's bytes; None: the file as it is, read again when needed
        self._digest = digest
        self._provider_request = providers
        self.session = _open_session(self.path, prepared if prepared is not None else data, providers, threads)
        del data  # not kept: a large file would stay in memory for the model's life
        if self.mode == PER_IMAGE:
            logger.warning("%s: running one image per call (%s)", self.path.name, self.mode_reason)
        elif self.mode == REPAIRED:
            logger.info("%s: %s", self.path.name, self.repair_description)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()
        self.io_binding = self.providers[0] in GPU_PROVIDERS if io_binding is None else bool(io_binding)
        self._fixed_threads = self.providers[0] in GPU_PROVIDERS or explicit_threads(threads) is not None
        self._sessions_by_threads: Dict[int, Any] = {}
        self.run_calls = 0
        self.last_batch_size = 0

    def _model_bytes(self) -> bytes:
        """The graph a new session runs: the derived one, or the file read again and proved to be the very bytes
        that were checked when the model was built."""
        if self._graph is not None:
            return self._graph
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self._digest:
            raise ChecksumError(f"{self.path} changed while it was in use: its bytes now have SHA-256 {digest}, not "
                                f"{self._digest}; it was not loaded again. Build the model again")
        return data

    @property
    def per_image(self) -> bool:
        return self.mode == PER_IMAGE

    @property
    def batching(self) -> str:
        """The mode with its reason, e.g. ``"repaired (Reshape node(s) ... rewritten)"``."""
        return f"{self.mode} ({self.mode_reason})"

    @property
    def providers(self) -> List[str]:
        return list(self.session.get_providers())

    @property
    def input_shape(self) -> list:
        return list(self.session.get_inputs()[0].shape)

    def _session_here(self) -> Any:
        """The session runs from this thread use: the model's own, or one with the thread count asked by
        :func:`~.session.threads_per_run` (same graph, same provider), opened on first use."""
        wanted = None if self._fixed_threads else requested_run_threads()
        if wanted is None:
            return self.session
        with self._lock:
            session = self._sessions_by_threads.get(wanted)
            if session is None:
                session = _open_session(self.path, self._model_bytes(), self._provider_request, wanted)
                self._sessions_by_threads[wanted] = session
        return session

    def _run_session(self, blob: np.ndarray) -> List[np.ndarray]:
        with self._lock:
            self.run_calls += 1
        if self.io_binding:
            return self._run_bound(blob)
        return self._session_here().run(self.output_names, {self.input_name: blob})

    def _run_bound(self, blob: np.ndarray) -> List[np.ndarray]:
        """One run through an IO binding: the batch is copied to the provider's device once, straight from
        ``blob``, and the outputs are bound to host memory, so each comes back in one device-to-host copy."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(blob))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def run(self, blob: np.ndarray) -> List[np.ndarray]:
        """Outputs for an (N, ...) input batch, each with a leading axis of N: one ``session.run`` per batch, or one
        per image in ``per_image`` mode."""
        with self._lock:
            self.last_batch_size = len(blob)
        if not self.per_image:
            return self._run_session(blob)
        per_frame = [self._run_session(blob[i : i + 1]) for i in range(len(blob))]
        flattened = self.layout == "flattened"
        return [np.stack([_one_frame(outs[k], flattened) for outs in per_frame]) for k in range(len(self.output_names))]


def _one_frame(output: np.ndarray, flattened: bool) -> np.ndarray:
    """A single frame's output without its batch axis; a flattened export's 2-D rows have none to drop."""
    return output if flattened and output.ndim == 2 else output[0]


def _runner(session: Any) -> Any:
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return lambda blob: session.run(names, {input_name: blob})


def _canvas_error(path: Path, original: Any, probe_shape: Tuple[int, ...], exc: Exception) -> ModelFormatError:
    dims = declared_dims(original.graph.input[0])
    declared = dims[2:] if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]) else None
    height, width = probe_shape[-2:]
    fix = (f"build it with input_size=({declared[1]}, {declared[0]}) (the {declared[1]}x{declared[0]} canvas it was "
           "exported for)" if declared else "build it with the canvas size it was exported for")
    return ModelFormatError(f"{path.name}: this export does not run on a {width}x{height} canvas (its graph "
                            f"hard-codes another size: {' '.join(str(exc).split())[:300]}); {fix}")


def _replay(path: Path, data: bytes, verdict: Dict[str, Any],
            spatial: bool) -> Optional[Tuple[Optional[bytes]]]:
    """``(graph bytes or None for the file as it is,)`` of a cached verdict, re-derived from the verified file's
    ``data`` in memory, or None (a miss) when the verdict is malformed or its recorded rewrite is not what deepbatch
    derives from this file now. No graph is ever read from the cache."""
    try:
        if (not _VERDICT_KEYS <= verdict.keys() or verdict["mode"] not in (NATIVE, REPAIRED, PER_IMAGE)
                or not all(isinstance(verdict[k], t) for k, t in _VERDICT_TYPES.items())):
            return None
        changes = verdict["changes"]
        BatchRepair(**changes)  # the recorded rewrite has the expected fields
        original = load_onnx(path, data)
        reference, declared = make_batch_dynamic(original, spatial=spatial, body=False)
        if dataclasses.asdict(declared) == changes:
            return (reference.SerializeToString() if declared.changed else None,)
        if verdict["mode"] == PER_IMAGE:
            return None  # a per-image verdict runs the file with only its declared axis freed
        rewritten, repair = make_batch_dynamic(original, spatial=spatial, body=True)
        if dataclasses.asdict(repair) == changes:
            return (rewritten.SerializeToString(),)
    except (ModelFormatError, TypeError, KeyError, AttributeError, ValueError) as exc:
        logger.info("%s: ignoring a cached verdict that does not apply (%s); preparing the model again", path.name,
                    exc)
    return None


def _prepare(path: Path, data: bytes, providers: ProviderList, threads: Optional[int], spatial: bool,
             probe_shape: Optional[Tuple[int, int, int]], verify: Optional[bool]) -> Tuple[Dict[str, Any], Any]:
    """``(verdict, graph bytes or None for the file as it is)``: repair, prove against the original, decide."""
    original = load_onnx(path, data)
    layout = batch_layout(original)
    reference, declared = make_batch_dynamic(original, spatial=spatial, body=False)  # the original body
    reference_bytes = reference.SerializeToString() if declared.changed else None
    verdict: Dict[str, Any] = {"layout": layout, "repair": declared.describe(), "max_abs_diff": None,
                               "changes": dataclasses.asdict(declared)}
    flow = trace_batch(original, graph_constants(original.graph))
    reference_session = None

    def reference_runner() -> Any:
        nonlocal reference_session
        if reference_session is None:
            reference_session = _open_session(path, reference_bytes or data, providers, threads)
        return _runner(reference_session)

    dims = declared_dims(original.graph.input[0])
    if probe_shape is not None and declared.spatial and list(probe_shape[-2:]) != dims[-2:]:
        try:  # the declared canvas was freed: the body must really run on this one
            reference_runner()(np.zeros((1, *probe_shape), np.float32))
        except Exception as exc:  # ONNX Runtime's own exception types
            raise _canvas_error(path, original, probe_shape, exc) from exc

    if layout == "dynamic" and not verify:
        return {**verdict, "mode": NATIVE, "reason": "the export declares a dynamic batch axis"}, reference_bytes
    if layout == "fixed" and flow.independent and verify is not True:
        reason = "declared batch 1 freed; data flow shows every node keeps frames apart"
        return {**verdict, "mode": REPAIRED, "reason": reason}, reference_bytes
    if probe_shape is None or verify is False:
        if layout == "dynamic":
            return {**verdict, "mode": NATIVE, "reason": "the export declares a dynamic batch axis"}, reference_bytes
        try:
            rewritten, repair = make_batch_dynamic(original, spatial=spatial, body=True)
        except ModelFormatError as exc:
            return {**verdict, "mode": PER_IMAGE, "reason": str(exc)}, reference_bytes
        reason = f"{repair.describe()}; not proven (no probe shape given, or verify_batch=False)"
        return {**verdict, "mode": REPAIRED, "reason": reason, "repair": repair.describe(),
                "changes": dataclasses.asdict(repair)}, rewritten.SerializeToString()

    candidates = []
    if layout == "dynamic":
        candidates.append((reference, declared))
    try:
        candidates.append(make_batch_dynamic(original, spatial=spatial, body=True))
    except ModelFormatError as exc:
        failure = str(exc)
    else:
        failure = ""
    for candidate, repair in candidates:
        try:
            session = create_session(candidate.SerializeToString(), providers, threads)
        except Exception as exc:  # ONNX Runtime rejects the rewritten graph: it cannot be proven
            failure = f"the rewritten graph does not load ({' '.join(str(exc).split())[:200]})"
            continue
        try:
            report = check_against_original(reference_runner(), _runner(session), probe_shape,
                                            [o.name for o in session.get_outputs()])
        except Exception as exc:  # the original itself does not run on the probe frames
            if declared.spatial and list(probe_shape[-2:]) != dims[-2:]:
                raise _canvas_error(path, original, probe_shape, exc) from exc
            raise  # a graph that cannot run at all: ONNX Runtime's own error, as running it would give
        diff = max(report.max_abs_diff.values(), default=0.0)
        if report.passed:
            mode = NATIVE if candidate is reference and layout == "dynamic" else REPAIRED
            reason = ("proven: frames alone and in a batch equal the original" if mode == NATIVE else
                      f"{repair.describe()}; proven equal to the original graph (max difference {diff:.3g})")
            return {**verdict, "mode": mode, "reason": reason, "repair": repair.describe(), "max_abs_diff": diff,
                    "changes": dataclasses.asdict(repair)}, candidate.SerializeToString()
        failure = report.failures[0]
    reason = f"the batch axis could not be repaired safely: {failure}"
    return {**verdict, "mode": PER_IMAGE, "reason": reason}, reference_bytes
