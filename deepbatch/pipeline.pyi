"""Deprecated name of :mod:`deepbatch.core.workers` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .core.workers import CPU_AUTO_BATCH as CPU_AUTO_BATCH
from .core.workers import DEFAULT_PREFETCH as DEFAULT_PREFETCH
from .core.workers import GPU_AUTO_BATCH as GPU_AUTO_BATCH
from .core.workers import BatchSize as BatchSize
from .core.workers import R as R
from .core.workers import Stages as Stages
from .core.workers import T as T
from .core.workers import Weigh as Weigh
from .core.workers import budget_chunks as budget_chunks
from .core.workers import default_workers as default_workers
from .core.workers import detector_canvas as detector_canvas
from .core.workers import detector_stages as detector_stages
from .core.workers import numbered_chunks as numbered_chunks
from .core.workers import parallel_workers as parallel_workers
from .core.workers import prefetch_map as prefetch_map
from .core.workers import resolve_batch_size as resolve_batch_size
