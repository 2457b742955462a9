"""Deprecated name of :mod:`deepbatch.core.stream` (see :mod:`deepbatch.renamed`): the names type checkers see."""

from .core.stream import NO_FACE_RULES as NO_FACE_RULES
from .core.stream import ON_ERROR as ON_ERROR
from .core.stream import FaceRules as FaceRules
from .core.stream import check_on_error as check_on_error
from .core.stream import iter_detections as iter_detections
from .core.stream import iter_records as iter_records
from .core.stream import model_input as model_input
from .core.stream import no_face_rule as no_face_rule
from .core.stream import scale_faces as scale_faces
from .core.stream import select_faces as select_faces
