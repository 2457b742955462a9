"""Importing a package a backend needs only when it is built, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, purpose: str, package: str = "") -> ModuleType:
    """``import module``, or :class:`MissingDependencyError` saying that ``purpose`` needs ``package`` (default:
    the module's name) from ``pip install 'deepbatch[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
