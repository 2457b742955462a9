"""The index file of a ``find`` database folder: its arrays, their checksum, and what one refresh changed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..detectors.base import Detector
from ..errors import DeepbatchError, IndexFormatError
from ..recognition.base import Recognizer

INDEX_VERSION = 2  # 2: with the checksum of the arrays


@dataclass
class FaceIndex:
    """The embedded faces of a database folder: one row per face, or per image where no face was embedded.

    ``identities`` holds each image's path relative to the folder, ``hashes`` its change signature (size and
    modification time, or a content hash), ``embeddings`` ``(N, D)`` float32 (zeros where ``valid`` is False: the
    image had no face or could not be read), ``boxes`` ``(N, 4)`` int ``x, y, w, h`` in image pixels.
    """

    identities: np.ndarray
    hashes: np.ndarray
    embeddings: np.ndarray
    boxes: np.ndarray
    valid: np.ndarray
    key: str

    @classmethod
    def empty(cls, dim: int, key: str) -> FaceIndex:
        return cls(np.array([], dtype=str), np.array([], dtype=str), np.zeros((0, dim), np.float32),
                   np.zeros((0, 4), np.int64), np.zeros(0, bool), key)

    def __len__(self) -> int:
        return len(self.identities)

    def select(self, mask: np.ndarray) -> FaceIndex:
        return FaceIndex(self.identities[mask], self.hashes[mask], self.embeddings[mask], self.boxes[mask],
                         self.valid[mask], self.key)

    def extend(self, other: FaceIndex) -> FaceIndex:
        return FaceIndex(np.concatenate([self.identities, other.identities]),
                         np.concatenate([self.hashes, other.hashes]),
                         np.concatenate([self.embeddings, other.embeddings]),
                         np.concatenate([self.boxes, other.boxes]), np.concatenate([self.valid, other.valid]),
                         self.key)

    def checksum(self) -> str:
        """SHA-256 of the key and of every array's dtype, shape and bytes."""
        digest = hashlib.sha256(f"{INDEX_VERSION}:{self.key}".encode())
        for name in ("identities", "hashes", "embeddings", "boxes", "valid"):
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"|{name}:{array.dtype.str}:{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def problem(self) -> Optional[str]:
        """What makes the arrays inconsistent (lengths, shapes), or None."""
        rows = len(self.identities)
        lengths = {name: len(getattr(self, name)) for name in ("hashes", "embeddings", "boxes", "valid")}
        if any(n != rows for n in lengths.values()):
            return f"its arrays have different lengths ({rows} identities, " + ", ".join(
                f"{n} {name}" for name, n in lengths.items()) + ")"
        if self.embeddings.ndim != 2 or self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            return f"embeddings of shape {self.embeddings.shape} and boxes of shape {self.boxes.shape}"
        if self.identities.ndim != 1 or self.hashes.ndim != 1 or self.valid.ndim != 1:
            return "identities, hashes and valid are not flat lists"
        return None

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file beside ``path``, then a rename."""
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(temporary, mode)
            with os.fdopen(handle, "wb") as out:
                stored = FaceIndex(self.identities.astype(str), self.hashes.astype(str),
                                   self.embeddings.astype(np.float32), self.boxes.astype(np.int64),
                                   self.valid.astype(bool), self.key)
                np.savez(out, version=np.array(INDEX_VERSION), key=np.array(self.key),
                         identities=stored.identities, hashes=stored.hashes, embeddings=stored.embeddings,
                         boxes=stored.boxes, valid=stored.valid, checksum=np.array(stored.checksum()))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, key: str, dim: int) -> FaceIndex:
        """The index in ``path``; raises :class:`IndexFormatError` when it is unreadable, written for another
        configuration or format, inconsistent, or its arrays do not have the checksum it carries."""
        try:
            with np.load(path, allow_pickle=False) as data:
                version, stored_key = int(data["version"]), str(data["key"])
                if version != INDEX_VERSION:
                    raise IndexFormatError(f"{path}: index format {version}, not {INDEX_VERSION}")
                index = cls(data["identities"], data["hashes"], data["embeddings"], data["boxes"], data["valid"],
                            stored_key)
                checksum = str(data["checksum"])
        except IndexFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
            raise IndexFormatError(f"{path}: not a readable deepbatch face index ({exc})") from exc
        if stored_key != key or index.embeddings.ndim != 2 or index.embeddings.shape[1:] != (dim,):
            raise IndexFormatError(
                f"{path}: index written for {stored_key!r} ({index.embeddings.shape[1:]} embeddings), not {key!r} "
                f"({dim}-d)"
            )
        problem = index.problem()
        if problem is not None:
            raise IndexFormatError(f"{path}: a damaged index: {problem}")
        if index.checksum() != checksum:
            raise IndexFormatError(f"{path}: its arrays do not have the checksum it carries (damaged or edited)")
        return index


@dataclass
class IndexUpdate:
    """What one refresh of an index did: images ``added``, ``changed`` and ``removed`` (relative paths), how many
    images it embedded, and the images that could not be embedded (relative path -> error)."""

    path: Path
    added: List[str] = field(default_factory=list)
    changed: List[str] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)
    embedded: int = 0
    failed: Dict[str, DeepbatchError] = field(default_factory=dict)

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def index_file_name(recognizer: Recognizer, detector: Detector, align: bool, normalization: str,
                    expand_percentage: float) -> str:
    """The index file name for one configuration (DeepFace's naming, with a ``deepbatch`` prefix so a DeepFace
    datastore in the same folder is never read as ours)."""
    parts = ["deepbatch", "model", recognizer.name, "detector", detector.name, "aligned" if align else "unaligned",
             "normalization", normalization, "expand", f"{expand_percentage:g}"]
    return "_".join(parts).replace("-", "").lower() + ".npz"


def file_signature(path: Path, change_detection: str) -> str:
    """``size:mtime_ns`` of a file, or with ``"content"`` the SHA-1 of its bytes."""
    if change_detection == "content":
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
