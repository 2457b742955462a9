"""Deprecated name of :mod:`deepbatch.api.detect` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.detect import detect as detect
from .api.detect import iter_detect as iter_detect
