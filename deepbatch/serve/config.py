"""What ``deepbatch serve`` is told: :class:`ServeConfig`, with the command line's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from ..detectors.base import Detector
from ..io.images import ImageLimits
from ..recognition.base import Recognizer
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, DEFAULT_QUEUE_LIMIT
from .face_db import DatabaseChoice


@dataclass
class ServeConfig:
    """What ``deepbatch serve`` is told; the defaults are those of the command line."""

    detector: str = "scrfd"
    model: str = "arcface_mbf"
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    max_body_bytes: int = 32 << 20
    max_images: int = 16
    max_pixels: int = 50_000_000
    timeout_s: float = 60.0
    allow_path: Optional[Path] = None
    allow_urls: bool = True
    token: Optional[str] = None
    warm: bool = True
    database: Optional[DatabaseChoice] = None  # the face database of /register and /search (None: none)
    detectors: Dict[str, Detector] = field(default_factory=dict)  # served instances, by name (tests, plugins)
    recognizers: Dict[str, Recognizer] = field(default_factory=dict)

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels, max_bytes=self.max_body_bytes)
