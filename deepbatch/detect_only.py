"""Deprecated name of :mod:`deepbatch.api.detect` (detect): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .api import detect as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .api.detect import (  # noqa: F401
        detect,
        iter_detect,
    )

warnings.warn("deepbatch.detect_only is deprecated: import deepbatch.api.detect instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
