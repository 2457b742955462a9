"""The package's structure: one error hierarchy, one home for each shared rule, an import graph without cycles."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import pytest

import deepbatch
from deepbatch import errors
from deepbatch.batching import CPU_AUTO_BATCH, chunks, numbered_chunks, resolve_batch_size
from deepbatch.checks import check_batch_size
from deepbatch.core.stream import FaceRules, chunks_held, iter_records
from deepbatch.detectors.base import OnnxDetector, build_detector
from deepbatch.errors import ArgumentError
from deepbatch.recognition import distance
from deepbatch.recognition.normalization import l2_normalize
from deepbatch.summary import run_summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import import_graph  # noqa: E402


def test_the_package_imports_without_cycles_and_without_private_names() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "import_graph.py"), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_import_graph_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from .a import other\n    from ._c import _hidden\n")
    (package / "_c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import other\n")
    graph, private = import_graph.read_graph(tmp_path, "pkg")
    assert graph["pkg.b"] == {"pkg.a", "pkg._c"} and graph["pkg._c"] == set()
    assert import_graph.cycles(graph) == [["pkg.a", "pkg.b"]]
    assert private == [("pkg.b", "pkg._c", "_hidden")]


def _exception_classes() -> Iterator[str]:
    for path in sorted((ROOT / "deepbatch").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "deepbatch/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and (b.id.endswith(("Error", "Exception")) or b.id in dir(errors))
                    for b in node.bases):
                yield f"{relative}:{node.name}"


def test_every_exception_class_is_defined_in_errors() -> None:
    assert list(_exception_classes()) == []


@pytest.mark.parametrize("module, name", [
    ("deepbatch.ray", "DatasetColumnError"), ("deepbatch.ray", "RayResourceError"),
    ("deepbatch.ray", "WorkerSpecError"),
    ("deepbatch.search", "EmptyDatabaseError"), ("deepbatch.search", "IndexFormatError"),
    ("deepbatch.verification", "EmbeddingTypeError"), ("deepbatch.verification", "EmbeddingSizeError"),
    ("deepbatch.runtime.session", "ProviderError"), ("deepbatch.runtime.session", "RuntimeConflictError"),
    ("deepbatch.runtime.session", "ThreadsError"), ("deepbatch.recognition.base", "ThresholdUnknownError"),
    ("deepbatch.recognition.normalization", "UnsupportedNormalizationError"),
    ("deepbatch.recognition.base", "UnsupportedNormalizationError"),
    ("deepbatch.runtime.batchify", "BatchUnsafeError"), ("deepbatch.io.video", "VideoError"),
    ("deepbatch.io.outputs", "OutputRefusedError"), ("deepbatch.io.outputs", "OutputBusyError"),
    ("deepbatch.DeepFace", "UnsupportedFeatureError"),
])
def test_errors_still_import_from_their_former_modules(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


@pytest.mark.parametrize("name", ["BatchResult", "collect_batch"])
def test_the_batch_error_policy_still_imports_from_formatting_with_a_warning(name: str) -> None:
    formatting = importlib.import_module("deepbatch.formatting")
    with pytest.warns(DeprecationWarning, match=f"deepbatch.formatting.{name} is deprecated: import it from "
                                                "deepbatch.core.on_error"):
        moved = getattr(formatting, name)
    assert moved is getattr(importlib.import_module("deepbatch.core.on_error"), name)


def test_formatting_holds_only_the_conversion_to_dicts() -> None:
    tree = ast.parse((ROOT / "deepbatch" / "formatting.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert defined == {"_point", "facial_area", "confidence", "present_face"}
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module("deepbatch.formatting").no_such_name  # noqa: B018


def test_the_ray_argument_error_is_the_argument_error() -> None:
    ray_module = pytest.importorskip("deepbatch.ray")
    assert ray_module.RayArgumentError is ArgumentError


@pytest.mark.parametrize("value, expected", [(1, 1), (64, 64), (np.int64(8), 8), (0, None), (-1, None),
                                             (1.5, None), ("8", None), (True, None), (None, None)])
def test_one_batch_size_check(value: Any, expected: Optional[int]) -> None:
    if expected is None:
        with pytest.raises(ArgumentError, match=f"batch_size must be a positive integer, got {value!r}"):
            check_batch_size(value)
    else:
        assert check_batch_size(value) == expected and type(check_batch_size(value)) is int


def test_auto_batch_size_on_the_cpu_and_its_refusals() -> None:
    assert resolve_batch_size("auto", build_detector("skip")) == CPU_AUTO_BATCH
    with pytest.raises(ArgumentError, match="a positive integer or 'auto', got 0"):
        resolve_batch_size(0)


def test_one_way_to_cut_batches() -> None:
    array = np.arange(10).reshape(5, 2)
    assert [c.tolist() for c in chunks(array, 2)] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9]]]
    assert list(chunks([1, 2, 3], 3)) == [[1, 2, 3]]
    assert list(numbered_chunks(iter("abcde"), 2)) == [(0, ["a", "b"]), (2, ["c", "d"]), (4, ["e"])]
    with pytest.raises(ArgumentError, match="batch_size"):
        list(chunks([1], 0))


def _edges() -> Dict[str, Callable[..., Any]]:
    return {
        "extract_faces": lambda path: deepbatch.extract_faces(path, anti_spoofing=True),
        "represent": lambda path: deepbatch.represent(path, anti_spoofing=True),
        "verify": lambda path: deepbatch.verify(path, path, anti_spoofing=True),
        "find": lambda path: deepbatch.find(path, str(Path(path).parent), anti_spoofing=True),
    }


@pytest.mark.parametrize("edge", sorted(_edges()))
def test_every_edge_refuses_anti_spoofing_before_reading_an_image(edge: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jpg")  # an image error would mean the image was read first
    with pytest.raises(ArgumentError, match="anti_spoofing is not supported by deepbatch"):
        _edges()[edge](missing)


def test_l2_normalize_gives_float32_unit_rows_and_keeps_zero_rows() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0]], np.float64)
    unit = l2_normalize(rows)
    assert unit.dtype == np.float32 and unit.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    assert distance.l2_normalize is l2_normalize and l2_normalize(rows, np.float64).dtype == np.float64


@pytest.mark.parametrize("options, expected", [
    ({"frames": 2}, "detect: 3 image(s) and 2 video frame(s): 4 face(s), 1 without a face, 0 failed; 2.0 s "
                    "(2.5 images/s)"),
    ({"workers": 2, "output": "out.parquet"}, "detect: 3 image(s) on 2 Ray worker(s): 4 face(s), 1 without a face, "
                                              "0 failed; 2.0 s (1.5 images/s); results in out.parquet"),
])
def test_one_run_summary_for_both_engines(options: Dict[str, Any], expected: str) -> None:
    assert run_summary("detect:", 3, 4, 1, 0, 2.0, **options) == expected


def _most_read_ahead(detector: Any, batch_size: int, workers: Optional[int], prefetch: int) -> int:
    """The most inputs read from a generator beyond those already yielded back, the current one included."""
    read: List[int] = [0]

    def frames() -> Iterator[np.ndarray]:
        for _ in range(12 * batch_size):
            read[0] += 1
            yield np.full((64, 64, 3), 128, np.uint8)

    most = 0
    for done, _ in enumerate(iter_records(frames(), detector, batch_size, FaceRules("empty"), crops=True,
                                          workers=workers, prefetch=prefetch)):
        most = max(most, read[0] - done)
    return most


@pytest.mark.parametrize("workers, prefetch, held", [(None, 2, 4), (1, 1, 3), (None, 0, 1), (0, 2, 1)])
def test_the_stream_holds_at_most_chunks_held(workers: Optional[int], prefetch: int, held: int) -> None:
    detector = build_detector("skip")
    assert chunks_held(detector, workers, prefetch) == held
    assert _most_read_ahead(detector, 3, workers, prefetch) <= held * 3


def test_a_cpu_model_running_whole_chunks_holds_more(scrfd_320: OnnxDetector) -> None:
    if not scrfd_320.parallel_chunks:
        pytest.skip("the detector's model does not run on the CPU here")
    assert chunks_held(scrfd_320, 1, 1) == 4  # max(prefetch, workers + 1) + 2
    assert _most_read_ahead(scrfd_320, 2, 1, 1) <= 4 * 2
