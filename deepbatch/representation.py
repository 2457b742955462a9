"""Deprecated name of :mod:`deepbatch.api.represent` (represent): importing it gives that very module, with a
``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .api import represent as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .api.represent import (  # noqa: F401
        embedding_dicts,
        represent,
    )

warnings.warn("deepbatch.representation is deprecated: import deepbatch.api.represent instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
