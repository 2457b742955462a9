"""Face-embedding models by name. Importing this package registers every backend in :data:`RECOGNIZERS`.

Backend modules build their ONNX Runtime sessions only when a recognizer is built, so listing names is cheap.
"""

from . import (  # noqa: F401  (registration side effects)
    arcface,
    deepface_models,  # noqa: F401  (after arcface and sface: it renames DeepFace's spellings of them)
    dlib_resnet,
    mobilefacenet,
    sface,
)
from .base import RECOGNIZERS, OnnxRecognizer, Recognizer, build_recognizer, list_recognizers

__all__ = ["RECOGNIZERS", "OnnxRecognizer", "Recognizer", "build_recognizer", "list_recognizers"]
