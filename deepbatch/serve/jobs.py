"""What a request hands the :class:`~deepbatch.serve.batcher.Batcher`: a :class:`Job` per decoded image, and the
:class:`Ticket` that accounts for the room its images were admitted into."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..core.stream import FaceRules
from ..records import ImageRecord


@dataclass
class Job:
    """One decoded image of one request, and what the request asks of it."""

    image: np.ndarray
    detector: str
    rules: FaceRules
    recognizer: Optional[str] = None  # None: detection only (crops are cut when ``crops``)
    normalization: str = "base"
    crops: bool = False
    source: Optional[str] = None
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)
    record: Optional[ImageRecord] = None
    pixels: Optional[np.ndarray] = None


@dataclass
class Ticket:
    """The room :meth:`Batcher.admit` reserved for one request's images, settled exactly once: ``"claimed"`` (run on
    the thread that decoded them, :meth:`Batcher.claim`), ``"submitted"`` (queued, :meth:`Batcher.submit`) or
    ``"released"`` (given back, :meth:`Batcher.give_back`); ``"admitted"`` until then."""

    images: int
    state: str = "admitted"
