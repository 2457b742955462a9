"""An ONNX model prepared for batched inference, with a per-image fallback when batching cannot be trusted."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..errors import ModelFormatError
from .isolation import check_batch_isolation
from .session import GPU_PROVIDERS, ProviderList, create_session
from .surgery import batch_layout, import_onnx, make_batch_dynamic

logger = logging.getLogger(__name__)
_BAD_MODEL_ERRORS = ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NotImplemented")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_onnx(path: Path):  # type: ignore[no-untyped-def]
    """The ONNX graph in ``path``; a file that is not one (truncated, corrupt, another format) raises
    :class:`ModelFormatError` naming it."""
    onnx = import_onnx()
    try:
        return onnx.load(str(path))
    except MemoryError:
        raise
    except Exception as exc:  # protobuf's DecodeError, or onnx's own errors for external data
        raise ModelFormatError(f"{path}: not a readable ONNX model ({_first_line(exc)}); the file is truncated, "
                               "corrupt or in another format: delete it to download it again, or replace it") from exc


class OnnxModel:
    """One ONNX Runtime session that takes a whole batch.

    Exports with a fixed or flattened batch axis are repaired in memory (:func:`make_batch_dynamic`). A repaired
    graph is then checked for cross-frame contamination on random frames of ``probe_shape`` (C, H, W); if the check
    fails, the model falls back to one ``session.run`` per image with a warning, so results are slower but never
    wrong. ``verify_batch`` forces the check on (also for exports declared dynamic) or off. ``io_binding`` runs
    through an ONNX Runtime IO binding (default: on when the session runs on CUDA or TensorRT). ``run`` may be
    called from several threads at once.
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
    ):
        self.path = Path(path)
        original = load_onnx(self.path)
        self.layout = batch_layout(original)
        repaired, self.repair = make_batch_dynamic(original, spatial=dynamic_spatial)
        self.per_image = False
        try:
            self.session = create_session(repaired.SerializeToString() if self.repair.changed else str(self.path),
                                          providers, threads)
        except Exception as exc:
            if type(exc).__name__ in _BAD_MODEL_ERRORS:
                raise ModelFormatError(f"{self.path}: ONNX Runtime cannot load this model ({_first_line(exc)}); the "
                                       "file is corrupt or not a model for this backend") from exc
            raise
        if self.repair.changed:
            logger.info("%s: %s", self.path.name, self.repair.describe())
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()
        self.io_binding = self.providers[0] in GPU_PROVIDERS if io_binding is None else bool(io_binding)
        self.run_calls = 0
        self.last_batch_size = 0
        if verify_batch is None:
            verify_batch = self.repair.changed
        if verify_batch and probe_shape is not None:
            report = check_batch_isolation(self._run_session, probe_shape, self.output_names, batch_sizes=(2,))
            if not report.passed:
                logger.warning(
                    "%s: the batch axis could not be repaired safely (%s); running one image per call instead",
                    self.path.name, report.failures[0],
                )
                self.per_image = True
                self.session = create_session(str(self.path), providers, threads)

    @property
    def providers(self) -> List[str]:
        return list(self.session.get_providers())

    @property
    def input_shape(self) -> list:
        return list(self.session.get_inputs()[0].shape)

    def _run_session(self, blob: np.ndarray) -> List[np.ndarray]:
        if self.io_binding:
            return self._run_bound(blob)
        return self.session.run(self.output_names, {self.input_name: blob})

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
        """Outputs for an (N, ...) input batch, each with a leading axis of N (one ``session.run`` per batch)."""
        with self._lock:
            self.run_calls += 1
            self.last_batch_size = len(blob)
        if not self.per_image:
            return self._run_session(blob)
        per_frame = [self._run_session(blob[i : i + 1]) for i in range(len(blob))]
        flattened = self.layout == "flattened"
        return [np.stack([_one_frame(outs[k], flattened) for outs in per_frame]) for k in range(len(self.output_names))]


def _one_frame(output: np.ndarray, flattened: bool) -> np.ndarray:
    """A single frame's output without its batch axis; a flattened export's 2-D rows have none to drop."""
    return output if flattened and output.ndim == 2 else output[0]

