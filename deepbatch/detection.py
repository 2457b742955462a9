"""Deprecated name of :mod:`deepbatch.api.extract` (extract_faces): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .api import extract as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .api.extract import (  # noqa: F401
        ImageFaces,
        as_stream,
        extract_faces,
        face_dicts,
        iter_detections,
        iter_extract_faces,
        record_dicts,
        resolve_detector,
    )

warnings.warn("deepbatch.detection is deprecated: import deepbatch.api.extract instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
