"""deepbatch: find, align and embed faces in batches of images, on GPU or CPU.

``import deepbatch`` is cheap: OpenCV, ONNX Runtime and optional frameworks are imported when a model is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_EXPORTS = {
    "extract_faces": "deepbatch.detection",
    "iter_extract_faces": "deepbatch.detection",
    "detect": "deepbatch.detect_only",
    "iter_detect": "deepbatch.detect_only",
    "build_detector": "deepbatch.detectors.base",
    "list_detectors": "deepbatch.detectors.base",
    "Detector": "deepbatch.detectors.base",
    "Faces": "deepbatch.structures",
    "Face": "deepbatch.structures",
    "represent": "deepbatch.representation",
    "verify": "deepbatch.verification",
    "verify_pairs": "deepbatch.verification",
    "build_recognizer": "deepbatch.recognition.base",
    "list_recognizers": "deepbatch.recognition.base",
    "Recognizer": "deepbatch.recognition.base",
    "find": "deepbatch.search",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepbatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
