"""Letting go of the models a test built, so one pytest process does not keep them all."""

from __future__ import annotations

import contextlib
import ctypes
import gc


def let_go_of_models() -> None:
    """Drop the registries' cached models and give the freed memory back to the system (glibc's ``malloc_trim``):
    an ONNX Runtime session keeps its arena, sized by the largest batch it ran, for as long as it lives."""
    from deepbatch.detectors import DETECTORS
    from deepbatch.recognition import RECOGNIZERS

    DETECTORS.clear_cache()
    RECOGNIZERS.clear_cache()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
