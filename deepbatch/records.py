"""The one per-image record that the streaming core yields and every edge consumes.

:func:`deepbatch.core.stream.iter_records` fills ``image``, ``shape`` and ``faces`` (chosen by the face rules,
:class:`deepbatch.core.stream.FaceRules`), and, when asked, ``crops``, ``points`` and ``embeddings``. The Python API
turns a record into DeepFace-style dicts; the command line and Ray turn it into a row with :meth:`ImageRecord.row`
(:mod:`deepbatch.rows`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import DeepbatchError
from .structures import Faces


@dataclass
class ImageRecord:
    """One input image: its position ``index`` in the stream, its ``source`` (path or description, or None), the
    decoded ``image`` (BGR, at ``1 / factor`` of the original size; dropped once its faces are embedded) and the
    original image's ``shape`` ``(height, width, ...)``;
    ``faces``; after embedding, ``embeddings`` ``(N, D)`` float32 in face order, ``points`` ``(N,)``, how many
    landmarks placed each face on the template (5, 2 to 4, or 0 for a box crop), and ``crops`` (uint8 BGR, only
    when asked for); or the ``error`` that stopped it."""

    index: int
    source: Optional[str]
    image: Optional[np.ndarray] = None
    faces: Optional[Faces] = None
    error: Optional[DeepbatchError] = None
    shape: Optional[Tuple[int, ...]] = None
    embeddings: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    crops: Optional[List[np.ndarray]] = None
    factor: int = 1  # ``image`` was decoded at 1 / factor of the original size; ``faces`` are in original pixels

    def __post_init__(self) -> None:
        if self.shape is None and self.image is not None:
            self.shape = self.image.shape

    @property
    def alignments(self) -> List[str]:
        """Per face ``"five_point"``, ``"partial_points"`` or ``"box_crop"``."""
        from .ops.align import alignment_methods

        return [] if self.points is None else alignment_methods(self.points)

    def row(self, path: Optional[str] = None, frame: Optional[int] = None,
            timestamp: Optional[float] = None) -> Dict[str, Any]:
        """The output row of :mod:`deepbatch.rows` (``path`` defaults to ``source``)."""
        from .rows import image_row

        embedded = self.embeddings is not None and self.error is None
        return image_row(self.source if path is None else path, self.shape, self.faces, self.error, frame, timestamp,
                         embeddings=self.embeddings if embedded else None,
                         alignments=self.alignments if embedded else ())
