"""Deprecated name of :mod:`deepbatch.api.verify` (verify): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .api import verify as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .api.verify import (  # noqa: F401
        NO_FACIAL_AREA,
        SIDES,
        EmbeddingSizeError,
        EmbeddingTypeError,
        _area,
        _at_pair,
        _best_pair,
        _given_embedding,
        _is_embedding,
        check_threshold,
        verify,
        verify_pairs,
    )

warnings.warn("deepbatch.verification is deprecated: import deepbatch.api.verify instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
