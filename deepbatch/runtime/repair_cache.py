"""On-disk cache of prepared models: the graph a model file runs as, with the verdict that proved it.

An entry is keyed by the SHA-256 of the model file, the deepbatch version and the loading options (canvas, freed
height and width, forced check), and lives in ``$DEEPBATCH_HOME/batch_repairs`` as ``<key>.json`` (the verdict) and
``<key>.onnx`` (the prepared graph, when it differs from the file). An entry is used only when its JSON parses, names
the same file digest, version and options, and its graph has the SHA-256 the JSON records; anything else is ignored
(and overwritten by the next build), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .._version import __version__
from ..io.outputs import write_atomic

logger = logging.getLogger(__name__)


def repair_cache_dir() -> Path:
    """``$DEEPBATCH_HOME/batch_repairs`` (``~/.deepbatch/batch_repairs``)."""
    from ..weights import deepbatch_home

    return deepbatch_home() / "batch_repairs"


def cache_key(file_digest: str, options: Dict[str, Any]) -> str:
    text = json.dumps({"file": file_digest, "version": __version__, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_entry(file_digest: str, options: Dict[str, Any]) -> Optional[Tuple[Dict[str, Any], Optional[bytes]]]:
    """``(verdict, graph bytes or None)`` of a valid entry, or None when there is none or it cannot be trusted."""
    key = cache_key(file_digest, options)
    folder = repair_cache_dir()
    try:
        record = json.loads((folder / f"{key}.json").read_text())
        if (record.get("file_sha256") != file_digest or record.get("version") != __version__
                or record.get("options") != json.loads(json.dumps(options)) or not isinstance(record.get("verdict"),
                                                                                           dict)):
            logger.info("ignoring a stale batch-repair cache entry %s", key)
            return None
        graph = None
        if record.get("graph_sha256"):
            graph = (folder / f"{key}.onnx").read_bytes()
            if hashlib.sha256(graph).hexdigest() != record["graph_sha256"]:
                logger.info("ignoring a corrupt batch-repair cache entry %s (graph digest differs)", key)
                return None
        return record["verdict"], graph
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        logger.info("ignoring an unreadable batch-repair cache entry %s (%s)", key, exc)
        return None


def store_entry(file_digest: str, options: Dict[str, Any], verdict: Dict[str, Any], graph: Optional[bytes]) -> None:
    """Write an entry atomically (graph first, then the JSON that vouches for it); a failure only logs."""
    key = cache_key(file_digest, options)
    folder = repair_cache_dir()
    record = {"file_sha256": file_digest, "version": __version__, "options": options, "verdict": verdict,
              "graph_sha256": hashlib.sha256(graph).hexdigest() if graph is not None else None}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if graph is not None:
            write_atomic(folder / f"{key}.onnx", graph)
        write_atomic(folder / f"{key}.json", json.dumps(record, indent=1).encode())
    except OSError as exc:
        logger.warning("could not cache the prepared model in %s (%s); it will be prepared again next time",
                       folder, exc)

