"""The prepared-model cache holds nothing that can replace the verified file, never blocks, and heals.

Each test fills a fresh cache by loading the real resize-baked SCRFD file (whose graph deepbatch rewrites and proves),
damages or forges the entry as an attacker with write access to ``$DEEPBATCH_HOME`` would, and loads again: the
model must run as a fresh preparation does, and the entry must be whole again afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

MODEL = "scrfd_2.5g_fixed640_resize.onnx"
PROBE = (3, 640, 640)
LOAD_TIMEOUT_S = 120.0


@pytest.fixture
def model_path(weights_dir: Path) -> Path:
    return weights_dir / MODEL


@pytest.fixture
def entry(tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The JSON entry of a fresh cache, written by a first load."""
    from deepbatch.runtime.model import OnnxModel

    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path))
    first = OnnxModel(model_path, "cpu", probe_shape=PROBE)
    assert not first.from_cache and first.mode == "repaired"
    (found,) = (tmp_path / "batch_repairs").glob("*.json")
    return found


def load(model_path: Path) -> Any:
    """The model loaded in a thread that must finish within :data:`LOAD_TIMEOUT_S` (a hang fails the test)."""
    from deepbatch.runtime.model import OnnxModel

    result: Dict[str, Any] = {}

    def target() -> None:
        try:
            result["model"] = OnnxModel(model_path, "cpu", probe_shape=PROBE)
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LOAD_TIMEOUT_S)
    assert not thread.is_alive(), "loading the model hung on the cache entry"
    if "error" in result:
        raise result["error"]
    return result["model"]


BLOB = np.random.default_rng(0).uniform(-1, 1, (2, *PROBE)).astype(np.float32)  # a batch of two frames


@pytest.fixture(scope="module")
def fresh_outputs(weights_dir: Path) -> Any:
    """What a preparation without the cache gives on :data:`BLOB`."""
    from deepbatch.runtime.model import OnnxModel

    return OnnxModel(weights_dir / MODEL, "cpu", probe_shape=PROBE, cache=False).run(BLOB)


def forge_graph(entry: Path, weights_dir: Path) -> None:
    """An attacker's graph beside the entry, with the entry's own digest field updated to match it."""
    graph = (weights_dir / "scrfd_2.5g_kps.onnx").read_bytes()  # another model with the same inputs and outputs
    entry.with_suffix(".onnx").write_bytes(graph)
    record = json.loads(entry.read_text())
    record["graph_sha256"] = hashlib.sha256(graph).hexdigest()
    entry.write_text(json.dumps(record))


def damage(entry: Path, how: str, weights_dir: Path) -> None:
    record = json.loads(entry.read_text())
    entry.unlink()
    if how == "forged_graph":
        entry.write_text(json.dumps(record))
        forge_graph(entry, weights_dir)
    elif how == "graph_sha256_null":
        entry.write_text(json.dumps({**record, "graph_sha256": None}))
    elif how == "fifo":
        os.mkfifo(entry)
    elif how == "link_to_dev_zero":
        entry.symlink_to("/dev/zero")
    elif how == "not_json":
        entry.write_text("{not json")
    elif how == "edited_changes":
        record["verdict"]["changes"]["reshapes"] = ["no_such_node"]
        entry.write_text(json.dumps(record))
    elif how == "verdict_not_a_dict":
        entry.write_text(json.dumps({**record, "verdict": {**record["verdict"], "changes": 5}}))
    elif how == "huge":
        entry.write_bytes(b" " * (2 << 20) + json.dumps(record).encode())


ATTACKS = ["forged_graph", "graph_sha256_null", "fifo", "link_to_dev_zero", "not_json", "edited_changes",
           "verdict_not_a_dict", "huge"]


HEALS = {"fifo", "link_to_dev_zero", "not_json", "edited_changes", "verdict_not_a_dict", "huge"}


@pytest.mark.parametrize("how", ATTACKS)
def test_a_forged_or_damaged_entry_never_changes_what_runs_and_heals(entry: Path, model_path: Path,
                                                                      weights_dir: Path, fresh_outputs: Any,
                                                                      how: str) -> None:
    damage(entry, how, weights_dir)
    model = load(model_path)
    assert model.mode == "repaired"
    assert all(np.array_equal(a, b) for a, b in zip(model.run(BLOB), fresh_outputs))
    assert model.from_cache is (how not in HEALS)  # a damaged entry is a miss, prepared again
    assert entry.is_file() and not entry.is_symlink()
    assert load(model_path).from_cache  # the entry serves the next run
