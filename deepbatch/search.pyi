"""Deprecated name of :mod:`deepbatch.api.find` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.find import CHANGE_DETECTIONS as CHANGE_DETECTIONS
from .api.find import INDEX_VERSION as INDEX_VERSION
from .api.find import RESULT_COLUMNS as RESULT_COLUMNS
from .api.find import RETURN_TYPES as RETURN_TYPES
from .api.find import SOURCE_COLUMNS as SOURCE_COLUMNS
from .api.find import TARGET_COLUMNS as TARGET_COLUMNS
from .api.find import EmptyDatabaseError as EmptyDatabaseError
from .api.find import FaceIndex as FaceIndex
from .api.find import IndexFormatError as IndexFormatError
from .api.find import IndexUpdate as IndexUpdate
from .api.find import file_signature as file_signature
from .api.find import find as find
from .api.find import index_file_name as index_file_name
from .api.find import update_index as update_index
