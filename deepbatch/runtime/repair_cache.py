"""On-disk cache of prepared models: the verdict that proved how a model file runs, never a graph.

An entry is keyed by the SHA-256 of the model file's verified bytes, the deepbatch version and the loading options
(canvas, freed height and width, forced check), and lives in ``$DEEPBATCH_HOME/batch_repairs`` as ``<key>.json``:
the verdict and the rewrite it chose (which inputs, outputs and nodes were changed). The cache holds no graph: on a
hit the rewrite is applied again, in memory, to the verified original, and the entry counts only when that gives
exactly the recorded changes (:func:`deepbatch.runtime.model.OnnxModel`). So nothing in the folder can put a graph
into a session that deepbatch did not derive from the verified file itself; a forged entry can at most pick one of
deepbatch's own two derivations of that file.

The JSON is read only when it is a regular file (not a link, FIFO or device) of at most :data:`MAX_ENTRY_BYTES`;
anything odd (unreadable, not JSON, another file, version or options, a missing key, a rewrite that does not
reproduce) is a miss: the model is prepared again and the entry overwritten, so a damaged cache heals on the next
run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Dict, Optional

from .._version import __version__
from ..io.outputs import write_atomic

logger = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 1 << 20  # a verdict is a few kilobytes; anything larger is not one of ours


def repair_cache_dir() -> Path:
    """``$DEEPBATCH_HOME/batch_repairs`` (``~/.deepbatch/batch_repairs``)."""
    from ..weights import deepbatch_home

    return deepbatch_home() / "batch_repairs"


def cache_key(file_digest: str, options: Dict[str, Any]) -> str:
    text = json.dumps({"file": file_digest, "version": __version__, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_small_regular_file(path: Path, limit: int = MAX_ENTRY_BYTES) -> bytes:
    """The bytes of ``path`` when it is a regular file (a symlink is not followed) of at most ``limit`` bytes; a
    FIFO, device, link or larger file raises ``OSError`` at once, without blocking or reading it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        return data
    finally:
        os.close(fd)


def load_entry(file_digest: str, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The verdict of a well-formed entry for this file and these options, or None (a miss) for anything else."""
    key = cache_key(file_digest, options)
    path = repair_cache_dir() / f"{key}.json"
    try:
        record = json.loads(read_small_regular_file(path))
        if (not isinstance(record, dict) or record.get("file_sha256") != file_digest
                or record.get("version") != __version__ or record.get("options") != json.loads(json.dumps(options))
                or not isinstance(record.get("verdict"), dict)):
            logger.info("ignoring a stale batch-repair cache entry %s; it will be rebuilt", key)
            return None
        return record["verdict"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        logger.info("ignoring an unreadable batch-repair cache entry %s (%s); it will be rebuilt", key, exc)
        return None


def store_entry(file_digest: str, options: Dict[str, Any], verdict: Dict[str, Any]) -> None:
    """Write an entry atomically, replacing whatever was there; a failure only logs."""
    key = cache_key(file_digest, options)
    folder = repair_cache_dir()
    record = {"file_sha256": file_digest, "version": __version__, "options": options, "verdict": verdict}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{key}.json", json.dumps(record, indent=1).encode())
    except OSError as exc:
        logger.warning("could not cache the prepared model in %s (%s); it will be prepared again next time",
                       folder, exc)
