"""Deprecated name of :mod:`deepbatch.api.verify` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.verify import NO_FACIAL_AREA as NO_FACIAL_AREA
from .api.verify import SIDES as SIDES
from .api.verify import EmbeddingSizeError as EmbeddingSizeError
from .api.verify import EmbeddingTypeError as EmbeddingTypeError
from .api.verify import at_pair as at_pair
from .api.verify import best_pair as best_pair
from .api.verify import check_threshold as check_threshold
from .api.verify import face_area as face_area
from .api.verify import given_embedding as given_embedding
from .api.verify import is_embedding as is_embedding
from .api.verify import verify as verify
from .api.verify import verify_pairs as verify_pairs
