"""deepbatch: find, align and embed faces in batches of images, on GPU or CPU.

``import deepbatch`` is cheap: OpenCV, ONNX Runtime and optional frameworks are imported when a model is built.
Type checkers see the public functions through the imports under ``TYPE_CHECKING``; at run time the module's
``__getattr__`` imports them on first use.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .optional import runtime_conflict
from .renamed import install as _install_renamed_modules

if TYPE_CHECKING:
    from . import DeepFace as DeepFace
    from .api.detect import detect, iter_detect
    from .api.extract import extract_faces, iter_extract_faces
    from .api.find import find
    from .api.represent import represent
    from .api.verify import verify, verify_pairs
    from .database import build_index, register, search
    from .detectors.base import Detector, build_detector, list_detectors
    from .performance import Performance
    from .recognition.base import Recognizer, build_recognizer, list_recognizers
    from .structures import Face, Faces

_EXPORTS = {
    "extract_faces": "deepbatch.api.extract",
    "iter_extract_faces": "deepbatch.api.extract",
    "detect": "deepbatch.api.detect",
    "iter_detect": "deepbatch.api.detect",
    "build_detector": "deepbatch.detectors.base",
    "list_detectors": "deepbatch.detectors.base",
    "Detector": "deepbatch.detectors.base",
    "Faces": "deepbatch.structures",
    "Face": "deepbatch.structures",
    "represent": "deepbatch.api.represent",
    "verify": "deepbatch.api.verify",
    "verify_pairs": "deepbatch.api.verify",
    "build_recognizer": "deepbatch.recognition.base",
    "list_recognizers": "deepbatch.recognition.base",
    "Recognizer": "deepbatch.recognition.base",
    "find": "deepbatch.api.find",
    "register": "deepbatch.database",
    "search": "deepbatch.database",
    "build_index": "deepbatch.database",
    "Performance": "deepbatch.performance",
}
_MODULES = {"DeepFace": "deepbatch.DeepFace"}  # ``from deepbatch import DeepFace``: DeepFace's module, on deepbatch

__all__ = [
    "__version__", "extract_faces", "iter_extract_faces", "detect", "iter_detect", "build_detector", "list_detectors",
    "Detector", "Faces", "Face", "represent", "verify", "verify_pairs", "build_recognizer", "list_recognizers",
    "Recognizer", "find", "register", "search", "build_index", "Performance", "DeepFace",
]


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise type every attribute, typos too, as Any

    def __getattr__(name: str) -> Any:
        if name in _MODULES:
            return importlib.import_module(_MODULES[name])
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'deepbatch' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS) + list(_MODULES))


_install_renamed_modules()  # the module names that moved still import, with a DeprecationWarning

_conflict = runtime_conflict()
if _conflict is not None:
    warnings.warn(_conflict, RuntimeWarning, stacklevel=2)
