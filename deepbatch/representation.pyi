"""Deprecated name of :mod:`deepbatch.api.represent` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.represent import embedding_dicts as embedding_dicts
from .api.represent import represent as represent
