"""Scripts of the source repository that are not part of the library (the benchmarks), found beside the package
when it runs from a checkout (an editable install, or the repository on ``PYTHONPATH``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` of the checkout this package runs from, imported once as the module ``name`` (as
    running the script from its folder would). Raises ``ModuleNotFoundError`` (its ``name`` is ``name``) where this
    installation has no such script, as a package installed from a wheel."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    path = BENCHMARKS / f"{name}.py"
    if not path.is_file():
        raise ModuleNotFoundError(f"{path} not found: the benchmarks are scripts of the source repository, not part "
                                  "of the installed package; run them from a checkout", name=name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"{path} cannot be imported", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
