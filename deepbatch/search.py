"""Deprecated name of :mod:`deepbatch.api.find` (find): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .api import find as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .api.find import (  # noqa: F401
        CHANGE_DETECTIONS,
        INDEX_VERSION,
        RESULT_COLUMNS,
        RETURN_TYPES,
        SOURCE_COLUMNS,
        TARGET_COLUMNS,
        EmptyDatabaseError,
        FaceIndex,
        IndexFormatError,
        IndexUpdate,
        _resolve_return_type,
        file_signature,
        find,
        index_file_name,
        update_index,
    )

warnings.warn("deepbatch.search is deprecated: import deepbatch.api.find instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
