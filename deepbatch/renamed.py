"""Module names that moved: importing an old name gives the module that now holds its code (the very same module
object, so an attribute set on one is set on the other), with a ``DeprecationWarning``.

The old names are served by an import hook rather than by files, so that the files' history follows their moves.
The two benchmark harnesses left the package for ``benchmarks/`` of the source repository; their old names load
those scripts from a checkout (:mod:`deepbatch.source_tree`)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import CodeType, ModuleType
from typing import Any, Optional, Sequence

MOVED = {
    "deepbatch.detection": "deepbatch.api.extract",
    "deepbatch.detect_only": "deepbatch.api.detect",
    "deepbatch.representation": "deepbatch.api.represent",
    "deepbatch.verification": "deepbatch.api.verify",
    "deepbatch.search": "deepbatch.api.find",
    "deepbatch.stream": "deepbatch.core.stream",
    "deepbatch.pipeline": "deepbatch.core.workers",
}
# names that left a module that stays: (module, name) -> the module that holds the name now
MOVED_NAMES = {
    ("deepbatch.formatting", "BatchResult"): "deepbatch.core.on_error",
    ("deepbatch.formatting", "collect_batch"): "deepbatch.core.on_error",
}
# old module name -> the script of benchmarks/ that holds it now, and how it is run
BENCHMARKS = {
    "deepbatch.bench": ("bench_detector", "deepbatch bench or make bench"),
    "deepbatch.bench_gpu": ("bench_gpu", "make bench-gpu"),
}


def warn_moved(old: str) -> None:
    """The ``DeprecationWarning`` of importing the old name ``old``."""
    if old in MOVED:
        message = f"{old} is deprecated: import {MOVED[old]} instead"
    else:
        script, how = BENCHMARKS[old]
        message = f"{old} is deprecated: the benchmark is benchmarks/{script}.py of the repository (run it with {how})"
    warnings.warn(message, DeprecationWarning, stacklevel=3)


def moved_name(module: str, name: str) -> Any:
    """The object ``name`` that left ``module`` (:data:`MOVED_NAMES`), with a ``DeprecationWarning``; for a module's
    ``__getattr__``, so an unknown name is an ``AttributeError`` as usual."""
    home = MOVED_NAMES.get((module, name))
    if home is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} is deprecated: import it from {home}", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(home), name)


def moved_module(old: str) -> ModuleType:
    """The module that the old name ``old`` stands for now."""
    if old in MOVED:
        return importlib.import_module(MOVED[old])
    from .source_tree import load_benchmark

    return load_benchmark(BENCHMARKS[old][0])


class RenamedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and :data:`BENCHMARKS` and loads them as their new modules
    (``python -m deepbatch.bench`` runs the benchmark's ``main``)."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname in MOVED or fullname in BENCHMARKS:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_moved(spec.name)
        return moved_module(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its new name."""

    def get_code(self, fullname: str) -> Optional[CodeType]:
        """For ``python -m``: the benchmark's ``main`` (a moved library module has nothing to run)."""
        if fullname not in BENCHMARKS:
            return None
        source = (f"import sys\nfrom deepbatch.renamed import moved_module, warn_moved\nwarn_moved({fullname!r})\n"
                  f"sys.exit(moved_module({fullname!r}).main())\n")
        return compile(source, f"<{fullname}>", "exec")

    def is_package(self, fullname: str) -> bool:
        return False


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, RenamedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, RenamedModules())  # ahead of finders that would find stale files of the old names

