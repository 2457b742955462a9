"""Deprecated name of :mod:`deepbatch.api.extract` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .api.extract import ImageFaces as ImageFaces
from .api.extract import as_stream as as_stream
from .api.extract import extract_faces as extract_faces
from .api.extract import face_dicts as face_dicts
from .api.extract import iter_detections as iter_detections
from .api.extract import iter_extract_faces as iter_extract_faces
from .api.extract import record_dicts as record_dicts
from .api.extract import resolve_detector as resolve_detector
