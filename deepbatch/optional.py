"""Optional packages: imported only when a backend is built, with an install command that works where deepbatch is.

:func:`install_command` writes the ``pip`` line for an extra that fits how this copy of deepbatch was installed
(an editable clone, a local folder, a git URL or a package index). :func:`runtime_conflict` spots the two ONNX
Runtime distributions installed side by side, which overwrite each other's files.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import MissingDependencyError
from .install import AFTER_EXTRA as AFTER_EXTRA
from .install import install_command as install_command

# The modules each extra brings, checked by `deepbatch models` without importing them.
EXTRA_MODULES: Dict[str, Tuple[str, ...]] = {
    "mtcnn": ("mtcnn", "tensorflow"),
    "dlib": ("dlib",),
    "yolo": ("ultralytics", "torch"),
    "ray": ("ray", "pyarrow"),
    "fastmtcnn": ("facenet_pytorch", "torch"),
    "find": ("pandas",),
    "deepface": ("deepface", "tensorflow", "tf_keras"),
    "database": ("usearch", "psycopg"),
}
# The pip name of a module, where it differs from the module's name.
PACKAGE_NAMES: Dict[str, str] = {"facenet_pytorch": "facenet-pytorch", "ray": "ray[data]"}
_CPU_RUNTIME, _GPU_RUNTIME = "onnxruntime", "onnxruntime-gpu"


def require(module: str, extra: str, purpose: str, package: str = "") -> ModuleType:
    """``import module``, or :class:`MissingDependencyError` saying that ``purpose`` needs ``package`` (default:
    the module's name) and every other package of ``extra`` that is missing too, with the :func:`install_command`
    for ``extra``: one error names all that the user must install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        first = package or PACKAGE_NAMES.get(module.split(".")[0], module.split(".")[0])
        others = [p for p in missing_packages(extra) if p != first]
        raise MissingDependencyError([first, *others], extra, purpose) from exc


def require_all(modules: Sequence[str], extra: str, purpose: str) -> None:
    """Raise :class:`MissingDependencyError` naming every one of ``modules`` that cannot be imported (nothing is
    imported), so that one install fixes them all."""
    missing = [PACKAGE_NAMES.get(m, m) for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(missing, extra, purpose)


def missing_packages(extra: str) -> List[str]:
    """The pip names of :func:`missing_modules` of ``extra``."""
    return [PACKAGE_NAMES.get(m, m) for m in missing_modules(extra)]


def missing_modules(extra: str) -> List[str]:
    """The modules of ``extra`` (see :data:`EXTRA_MODULES`) that cannot be imported here; nothing is imported."""
    return [m for m in EXTRA_MODULES.get(extra, ()) if importlib.util.find_spec(m) is None]


def gpu_runtime_supported() -> bool:
    """Whether ``onnxruntime-gpu`` is published for this platform (Linux x86_64, Windows x64): the markers of
    ``setup.py`` choose it there and ``onnxruntime`` elsewhere."""
    import platform

    machine = platform.machine().lower()
    return (sys.platform.startswith("linux") and machine == "x86_64") or (
        sys.platform == "win32" and machine in ("amd64", "x86_64"))


def _installed_runtimes() -> List[str]:
    """The ONNX Runtime distributions whose metadata lies on ``sys.path`` (a directory listing, no imports)."""
    found = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project = name[: -len(".dist-info")].rsplit("-", 1)[0].lower().replace("_", "-")
                if project in (_CPU_RUNTIME, _GPU_RUNTIME):
                    found.add(project)
    return sorted(found)


def runtime_conflict() -> Optional[str]:
    """A message with the fix when ``onnxruntime`` and ``onnxruntime-gpu`` are both installed, else ``None``.

    Both write the same ``onnxruntime`` package, so the last one installed wins file by file and uninstalling either
    breaks the other; the fix removes both and reinstalls the one this platform should have.
    """
    if len(_installed_runtimes()) < 2:
        return None
    from importlib import metadata

    try:
        versions = {name: metadata.version(name) for name in (_CPU_RUNTIME, _GPU_RUNTIME)}
    except metadata.PackageNotFoundError:
        return None
    keep = _GPU_RUNTIME if gpu_runtime_supported() else _CPU_RUNTIME
    return (
        f"both onnxruntime {versions[_CPU_RUNTIME]} and onnxruntime-gpu {versions[_GPU_RUNTIME]} are installed; they "
        "overwrite each other's files, so ONNX Runtime may lack its GPU providers or fail to import. Fix it with: "
        f"pip uninstall -y onnxruntime onnxruntime-gpu && pip install '{keep}'"
    )
