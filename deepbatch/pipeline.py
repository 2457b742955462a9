"""Deprecated name of :mod:`deepbatch.core.workers` (chunking and the prefetch thread pool): importing it gives
that very module, with a ``DeprecationWarning``."""

import sys
import warnings
from typing import TYPE_CHECKING

from .core import workers as _module

if TYPE_CHECKING:  # the names as type checkers see them; at run time this module is the new one
    from .core.workers import (  # noqa: F401
        CPU_AUTO_BATCH,
        DEFAULT_PREFETCH,
        GPU_AUTO_BATCH,
        BatchSize,
        R,
        Stages,
        T,
        Weigh,
        budget_chunks,
        default_workers,
        detector_canvas,
        detector_stages,
        numbered_chunks,
        parallel_workers,
        prefetch_map,
        resolve_batch_size,
    )

warnings.warn("deepbatch.pipeline is deprecated: import deepbatch.core.workers instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
