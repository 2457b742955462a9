"""Deprecated name of :mod:`deepbatch.api.verify` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.verify import NO_FACIAL_AREA as NO_FACIAL_AREA
from .api.verify import SIDES as SIDES
from .api.verify import EmbeddingSizeError as EmbeddingSizeError
from .api.verify import EmbeddingTypeError as EmbeddingTypeError
from .api.verify import _area as _area
from .api.verify import _at_pair as _at_pair
from .api.verify import _best_pair as _best_pair
from .api.verify import _given_embedding as _given_embedding
from .api.verify import _is_embedding as _is_embedding
from .api.verify import check_threshold as check_threshold
from .api.verify import verify as verify
from .api.verify import verify_pairs as verify_pairs
