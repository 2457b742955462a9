"""``batchify`` and ``check_batch`` on real exports and on generated graphs that flatten or mix the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import batch_mixing, flatten_batch, flattening_head, strict_reshape

from deepbatch.errors import ModelFormatError
from deepbatch.runtime.batchify import DEFAULT_BATCH_SIZES, BatchUnsafeError, batchify, check_batch

# Real exports with a batch declared as 1: (file, make height and width dynamic, frame shape to check at).
# SCRFD-2.5G is checked on a 320x320 canvas after freeing its spatial axes (as the detector uses it), which keeps
# the 217-frame check of the larger model short; the other two at their declared shapes.
DECLARED_BATCH_ONE = [
    ("scrfd_500m_kps.onnx", False, None),
    ("scrfd_2.5g_kps.onnx", True, (3, 320, 320)),
    ("mobilefacenet_b1.onnx", False, None),
]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> dict:
    folder = tmp_path_factory.mktemp("graphs")
    return {
        "flattening_head": flattening_head(folder / "flattening_head.onnx"),
        "det_flat": flatten_batch(weights_dir / "scrfd_500m_kps.onnx", folder / "det_flat.onnx"),
        "mixing": batch_mixing(folder / "mixing.onnx"),
        "mixing_b1": batch_mixing(folder / "mixing_b1.onnx", batch=1),
        "strict_reshape": strict_reshape(folder / "strict_reshape.onnx"),
    }


def _output_shapes(path: Path, batch: int, frame_shape: tuple) -> list:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    blob = np.random.default_rng(0).uniform(-1, 1, (batch, *frame_shape)).astype(np.float32)
    return [o.shape for o in session.run(None, {session.get_inputs()[0].name: blob})]


@pytest.mark.parametrize("filename, dynamic_spatial, input_shape", DECLARED_BATCH_ONE)
def test_batchified_export_passes_check_at_every_batch_size(
    weights_dir: Path, tmp_path: Path, filename: str, dynamic_spatial: bool, input_shape: tuple
) -> None:
    target = tmp_path / filename
    batchify(weights_dir / filename, target, batch_sizes=(2,), input_shape=input_shape, dynamic_spatial=dynamic_spatial)
    report = check_batch(target, DEFAULT_BATCH_SIZES, input_shape=input_shape)
    assert report.passed, report.table()


def test_check_batch_fails_on_declared_batch_one(weights_dir: Path) -> None:
    report = check_batch(weights_dir / "mobilefacenet_b1.onnx", batch_sizes=(2,))
    assert not report.passed
    assert "a batch of 2 could not run" in report.failures[0]


def test_check_batch_fails_on_flattened_outputs(graphs: dict) -> None:
    report = check_batch(graphs["flattening_head"])
    assert report.failures == ["output scores has no batch axis (shape (128, 4) for one frame)"]


def test_check_batch_fails_on_graph_that_mixes_frames(graphs: dict) -> None:
    report = check_batch(graphs["mixing"])
    assert not report.passed
    assert report.max_abs_diff["features"] > 1.0  # unit-variance frames: the batch mean shifts outputs by ~1
    assert "differs from the frame alone" in report.failures[0]


def test_batchify_repairs_generated_flattening_head(graphs: dict, tmp_path: Path) -> None:
    result = batchify(graphs["flattening_head"], tmp_path / "head.onnx")
    assert result.layout == "flattened"
    assert result.repair.reshapes == ["flatten_rows"]
    assert result.report.passed, result.report.table()


def test_batchify_gives_flattened_scrfd_one_row_block_per_image(graphs: dict, tmp_path: Path) -> None:
    target = tmp_path / "det_batched.onnx"
    batchify(graphs["det_flat"], target, batch_sizes=(2,))
    shapes = _output_shapes(target, 3, (3, 640, 640))
    assert sorted(shapes) == sorted([(3, n, c) for n in (12800, 3200, 800) for c in (1, 4, 10)])


@pytest.mark.parametrize(
    "graph, reason",
    [
        ("mixing_b1", "frames still affect each other"),
        ("strict_reshape", "allowzero=1"),
    ],
)
def test_batchify_refuses_and_writes_nothing(graphs: dict, tmp_path: Path, graph: str, reason: str) -> None:
    target = tmp_path / "out.onnx"
    with pytest.raises(BatchUnsafeError, match=reason):
        batchify(graphs[graph], target)
    assert not target.exists()


def test_refusal_carries_the_failed_report(graphs: dict, tmp_path: Path) -> None:
    with pytest.raises(BatchUnsafeError) as caught:
        batchify(graphs["mixing_b1"], tmp_path / "out.onnx", batch_sizes=(2,))
    assert caught.value.report is not None and not caught.value.report.passed


def test_batchify_keeps_embedding_output_two_dimensional(weights_dir: Path, tmp_path: Path) -> None:
    # The export declares a dynamic batch and flattens [B, 128, 1, 1] with Reshape [-1, 128]: one row per image.
    target = tmp_path / "mobilefacenet.onnx"
    result = batchify(weights_dir / "mobilefacenet_dyn.onnx", target, batch_sizes=(2,))
    assert not result.repair.changed
    assert _output_shapes(target, 3, (3, 112, 112)) == [(3, 128)]


def test_batchified_file_is_a_valid_onnx_model(weights_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "mobilefacenet_b1.onnx"
    batchify(weights_dir / "mobilefacenet_b1.onnx", target, batch_sizes=(2,))
    model = onnx.load(str(target))
    onnx.checker.check_model(model)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_dynamic_frame_shape_needs_input_shape(weights_dir: Path) -> None:
    with pytest.raises(ModelFormatError, match="--input-shape"):
        check_batch(weights_dir / "face_detection_yunet_2026may.onnx")


def test_input_shape_of_wrong_rank_is_rejected(weights_dir: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not fit input"):
        check_batch(weights_dir / "mobilefacenet_dyn.onnx", input_shape=(112, 112))


@pytest.mark.parametrize("sizes", [(), (1,), (2, 0)])
def test_batch_sizes_below_two_are_rejected(weights_dir: Path, sizes: tuple) -> None:
    with pytest.raises(ValueError, match="batch_sizes"):
        check_batch(weights_dir / "mobilefacenet_dyn.onnx", batch_sizes=sizes)
