"""Deprecated name of :mod:`deepbatch.core.stream` (the pipelined core): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .core import stream as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .core.stream import (  # noqa: F401
        NO_FACE_RULES,
        ON_ERROR,
        FaceRules,
        check_on_error,
        iter_detections,
        iter_records,
        model_input,
        no_face_rule,
        scale_faces,
        select_faces,
    )

warnings.warn("deepbatch.stream is deprecated: import deepbatch.core.stream instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
