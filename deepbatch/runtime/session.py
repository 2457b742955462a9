"""Creating ONNX Runtime sessions: execution providers chosen and tried for real, CPU threads set for the machine.

Providers
    ``providers="auto"`` asks for TensorRT, then CUDA, then CPU. A provider that this onnxruntime build lacks is
    dropped with one log line; the session is then created, and a provider that is in the build but cannot start
    (its CUDA, cuDNN or TensorRT libraries are missing) is dropped with one log line and the next one is tried. The
    CPU provider always ends the list, so a session is always made. ``"cpu"``, ``"cuda"`` and ``"tensorrt"`` are
    shorthands; an explicit list may hold provider names (full or short) or ``(name, options)`` pairs, and every
    name is checked against the providers ONNX Runtime knows.

TensorRT
    FP16 is on and built engines are cached in ``$DEEPBATCH_HOME/tensorrt`` (``~/.deepbatch/tensorrt``), so a model
    and batch shape is compiled once per machine; options given in a ``("tensorrt", {...})`` pair override these.

CPU threads
    Intra-op threads: ONNX Runtime's default (one per physical core), lowered to the CPUs this process may really
    use where that is fewer (``taskset``, a container's CPU set or cgroup CPU quota, which ONNX Runtime does not
    see); ``threads=`` or ``$DEEPBATCH_THREADS`` override it. Nodes run sequentially (one inter-op thread): the
    detectors' graphs are chains, so parallel branches gain nothing. Idle intra-op threads sleep instead of spinning
    (``allow_spinning=0``): spinning threads burn the cores that decode and letterbox the next chunk (see
    :mod:`deepbatch.core.workers`) and, on a busy machine, those of every other process. A caller that already runs one
    chunk per core on several threads asks for fewer threads per run with :func:`threads_per_run` (ONNX Runtime's
    own threads would only contend for the same cores).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import io
import logging
import numbers
import os
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ProviderError as ProviderError
from ..errors import RuntimeConflictError as RuntimeConflictError
from ..errors import ThreadsError as ThreadsError
from ..native_stderr import STDERR, Captured
from ..optional import gpu_runtime_supported, require, runtime_conflict

logger = logging.getLogger(__name__)

ProviderEntry = Union[str, Tuple[str, Dict[str, Any]]]
ProviderList = Union[str, Sequence[ProviderEntry]]
Resolved = List[Tuple[str, Dict[str, Any]]]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
AUTO_ORDER = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = (TENSORRT, CUDA)
SHORT_NAMES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}
PRESETS = {"auto": AUTO_ORDER, "cpu": (CPU,), "cuda": (CUDA, CPU), "tensorrt": AUTO_ORDER, "trt": AUTO_ORDER}

_announced: set = set()  # fallback messages already logged in this process: one line each, not one per model


def import_onnxruntime():  # type: ignore[no-untyped-def]
    try:
        return require("onnxruntime", "", "running ONNX models", package="onnxruntime-gpu")
    except ImportError as exc:
        conflict = runtime_conflict()  # a half-uninstalled pair of runtimes breaks the import: say how to repair it
        if conflict is not None:
            raise RuntimeConflictError(conflict) from exc
        raise


def tensorrt_cache_dir() -> Path:
    """Folder of built TensorRT engines: ``$DEEPBATCH_HOME/tensorrt``."""
    from ..weights import deepbatch_home

    return deepbatch_home() / "tensorrt"


def default_options(name: str) -> Dict[str, Any]:
    """Provider options deepbatch sets unless the caller gives its own: FP16 and an engine cache for TensorRT."""
    if name == TENSORRT:
        cache = str(tensorrt_cache_dir())
        return {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
    if name == CUDA:
        return {"cudnn_conv_algo_search": "HEURISTIC"}  # EXHAUSTIVE re-benchmarks convolutions for every new batch
    return {}


def _canonical(name: Any, known: Sequence[str]) -> str:
    if not isinstance(name, str):
        raise ProviderError(f"providers: expected a provider name or a (name, options) pair, got {name!r}")
    full = SHORT_NAMES.get(name.lower(), name)
    if full not in known:
        raise ProviderError(
            f"unknown execution provider {name!r}; use one of {', '.join(sorted(SHORT_NAMES))} or a name from "
            f"onnxruntime.get_all_providers(): {', '.join(known)}"
        )
    return full


def requested_providers(providers: ProviderList = "auto") -> Resolved:
    """``providers`` as ``(full name, options)`` pairs with deepbatch's defaults merged in, CPU last; nothing is
    dropped yet. Raises :class:`ProviderError` for a name ONNX Runtime does not know."""
    ort = import_onnxruntime()
    known = list(ort.get_all_providers())
    if isinstance(providers, str):
        preset = PRESETS.get(providers.lower())
        entries: List[ProviderEntry] = list(preset) if preset else [providers]
    else:
        entries = list(providers)
        if not entries:
            raise ProviderError("providers: got an empty list; pass 'auto', 'cpu', 'cuda', 'tensorrt' or names")
    resolved: Resolved = []
    for entry in entries:
        if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], dict):
            name, options = _canonical(entry[0], known), dict(entry[1])
        else:
            name, options = _canonical(entry, known), {}
        if name not in (n for n, _ in resolved):
            resolved.append((name, {**default_options(name), **options}))
    if CPU not in (n for n, _ in resolved):
        resolved.append((CPU, {}))
    return resolved


def _announce(message: str, level: int = logging.WARNING) -> None:
    if message not in _announced:
        _announced.add(message)
        logger.log(level, message)


def _gpu_runtime_hint() -> str:
    """Why this onnxruntime has no CUDA or TensorRT, and the command that gives it them where there is one."""
    conflict = runtime_conflict()
    if conflict is not None:
        return conflict
    if not gpu_runtime_supported():
        return "onnxruntime-gpu is not published for this platform"
    return ("this is the CPU-only onnxruntime package; for CUDA and TensorRT: pip uninstall -y onnxruntime && "
            "pip install onnxruntime-gpu")


def resolve_providers(providers: ProviderList = "auto") -> Resolved:
    """The requested providers (see :func:`requested_providers`) that this onnxruntime build offers.

    Each one left out is reported in one log line naming it and the provider used instead: a warning when it was
    asked for by name, an info line under ``"auto"`` (a CPU-only install is a normal setup).
    """
    ort = import_onnxruntime()
    available = set(ort.get_available_providers())
    wanted = requested_providers(providers)
    kept = [(name, options) for name, options in wanted if name in available]
    missing = [name for name, _ in wanted if name not in available]
    if missing:
        level = logging.INFO if isinstance(providers, str) and providers.lower() == "auto" else logging.WARNING
        hint = f" ({_gpu_runtime_hint()})" if set(missing) & set(GPU_PROVIDERS) else ""
        _announce(f"{', '.join(missing)} not in this onnxruntime build{hint}; using {kept[0][0]}", level)
    return kept


def usable_cpus() -> int:
    """CPUs this process may really use: its affinity mask (``taskset``, a container's CPU set), lowered to a cgroup
    v2 CPU quota (``docker --cpus``) where one is set."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        usable = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            usable = min(usable, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU controller here: the affinity mask is the limit
    return max(1, usable)


def cpu_threads() -> Optional[int]:
    """Intra-op threads for CPU sessions: ``None`` (ONNX Runtime's default, one per physical core) unless this process
    may use fewer CPUs than the machine has, then :func:`usable_cpus`."""
    usable = usable_cpus()
    return usable if usable < (os.cpu_count() or usable) else None


_run_threads = threading.local()


@contextlib.contextmanager
def threads_per_run(threads: int) -> Any:
    """Within this block, CPU models run from this thread with ``threads`` intra-op threads (a session of that many,
    opened once per model): for pipelines that run one chunk per core on several threads at once, which detect more
    images per second than chunks run one after the other on sessions that share every core (ONNX Runtime's
    thread pool costs CPU time on every run; ``benchmarks/peers.py`` measures both). Models given ``threads=`` (or
    ``$DEEPBATCH_THREADS``) keep their own count."""
    previous = getattr(_run_threads, "count", None)
    _run_threads.count = max(1, int(threads))
    try:
        yield
    finally:
        _run_threads.count = previous


def requested_run_threads() -> Optional[int]:
    """The intra-op threads :func:`threads_per_run` asks of runs from this thread, or None."""
    return getattr(_run_threads, "count", None)


def check_threads(threads: Optional[int]) -> None:
    """Raise :class:`ThreadsError` unless ``threads`` is None or a positive integer."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise ThreadsError(f"threads must be a positive integer or None (ONNX Runtime's default), got {threads!r}")


def explicit_threads(threads: Optional[int]) -> Optional[int]:
    """``threads``, else ``$DEEPBATCH_THREADS``: the count a user fixed, which nothing overrides; None if neither."""
    return threads or int(os.environ.get("DEEPBATCH_THREADS", "0") or 0) or None


def session_options(threads: Optional[int] = None):  # type: ignore[no-untyped-def]
    """Session options: full graph optimisation, sequential nodes, no spinning, ``threads`` intra-op threads
    (default :func:`cpu_threads`; ``$DEEPBATCH_THREADS`` overrides the default)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings about exports are not the user's concern
    threads = explicit_threads(threads) or cpu_threads()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


_gpu_prepared: List[bool] = []
# Libraries each GPU provider cannot start without (Linux names, Windows names): the CUDA driver, which only a machine
# with an NVIDIA GPU has, and TensorRT's runtime, which deepbatch's extras do not install.
_GPU_LIBRARIES = {
    CUDA: ("the CUDA driver", ("libcuda.so.1", "nvcuda.dll")),
    TENSORRT: ("TensorRT and the CUDA driver", ("libnvinfer.so.10", "nvinfer_10.dll")),
}


def _loadable(names: Sequence[str]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _libraries_load(provider: str) -> bool:
    """Whether the shared libraries ``provider`` needs can be loaded here (TensorRT also needs CUDA's)."""
    needs = [provider, CUDA] if provider == TENSORRT else [provider]
    return all(_loadable(_GPU_LIBRARIES[name][1]) for name in needs)


def _libraries_needed(providers: Sequence[str]) -> str:
    return " / ".join(_GPU_LIBRARIES[name][0] for name in providers)


def _prepare_gpu_runtime(ort: Any) -> None:
    """Once per process, before the first GPU session: load the CUDA and cuDNN libraries that ``deepbatch[gpu]``
    installs from pip (ONNX Runtime does not search there by itself), and keep ONNX Runtime's own provider-failure
    warnings off stderr: :func:`create_session` reports a provider that cannot start in one line of its own."""
    if _gpu_prepared:
        return
    _gpu_prepared.append(True)
    ort.set_default_logger_severity(3)
    nvidia = importlib.util.find_spec("nvidia")
    if nvidia is None or not hasattr(ort, "preload_dlls"):
        return
    with contextlib.redirect_stdout(io.StringIO()) as said:  # it prints what it could not load
        ort.preload_dlls()
    if said.getvalue().strip():
        logger.debug("onnxruntime.preload_dlls: %s", said.getvalue().strip())


_ORT_LOG = re.compile(r"\[[EWIVF]:onnxruntime:")  # the prefix of ONNX Runtime's own log lines
_LOAD_ERROR = re.compile(r"Failed to load library (\S+) with error: (.+)$")


def _reason(said: Sequence[str], provider: str) -> str:
    """Why ``provider`` did not start, from ONNX Runtime's log lines ``said`` while the session was created."""
    short = provider.replace("ExecutionProvider", "").lower()
    for line in said:
        found = _LOAD_ERROR.search(line)
        if found and short in Path(found.group(1)).name.lower():
            return found.group(2).strip()
    for line in said:
        if short in line.lower() or provider in line:
            return line.split("] ", 1)[-1].strip()
    return "CUDA, cuDNN or TensorRT libraries missing or no GPU"


def create_session(model: Union[str, bytes], providers: ProviderList = "auto", threads: Optional[int] = None):  # type: ignore[no-untyped-def]
    """An ``InferenceSession`` over a model path or serialized bytes, on the first provider that really starts.

    The providers that the session did not take up (ONNX Runtime falls back silently when a provider's libraries
    are missing) or that made session creation fail are reported in one log line each, and the next is used.
    """
    ort = import_onnxruntime()
    chosen = resolve_providers(providers)
    auto = isinstance(providers, str) and providers.lower() == "auto"
    level = logging.INFO if auto else logging.WARNING
    if any(name in GPU_PROVIDERS for name, _ in chosen):
        _prepare_gpu_runtime(ort)
        if auto:  # a GPU build on a machine without the GPU's libraries: go to the CPU without ONNX Runtime's errors
            absent = [name for name, _ in chosen if name in GPU_PROVIDERS and not _libraries_load(name)]
            if absent:
                chosen = [(name, options) for name, options in chosen if name not in absent]
                _announce(f"{', '.join(absent)} left out: {_libraries_needed(absent)} not found on this machine; "
                          f"using {chosen[0][0]}", logging.INFO)
    if any(name == TENSORRT for name, _ in chosen):
        tensorrt_cache_dir().mkdir(parents=True, exist_ok=True)
    while True:
        names = [name for name, _ in chosen]
        # ONNX Runtime logs a GPU provider that cannot start from C++, in red, once per session, and prints an
        # "EP Error" banner to stdout (where the results go) when it retries: both are taken, and the reason given
        # in deepbatch's one line per provider below.
        gpu = names[0] != CPU
        with STDERR.exclusive(_ORT_LOG) if gpu else contextlib.nullcontext(Captured()) as said, \
                contextlib.redirect_stdout(io.StringIO()) if gpu else contextlib.nullcontext() as printed:
            try:
                session = ort.InferenceSession(model, sess_options=session_options(threads), providers=names,
                                               provider_options=[options for _, options in chosen])
            except Exception as exc:  # ONNX Runtime raises its own Fail/RuntimeException types
                if names[0] == CPU:
                    raise
                failure: Optional[Exception] = exc
            else:
                failure = None
        if said.lines or (printed is not None and printed.getvalue().strip()):
            logger.debug("ONNX Runtime said while creating the session: %s %s", said.text,
                         printed.getvalue().strip() if printed is not None else "")
        if failure is not None:
            _announce(f"{names[0]} could not start ({str(failure).strip().splitlines()[0]}); trying {names[1]}",
                      level)
            chosen = chosen[1:]
            continue
        taken = set(session.get_providers())
        dropped = [name for name in names if name not in taken]
        for name in dropped:
            _announce(f"{name} could not start ({_reason(said.lines, name)}); running on "
                      f"{session.get_providers()[0]}", level)
        logger.debug("ONNX Runtime session on %s", session.get_providers())
        return session
