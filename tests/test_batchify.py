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


# --- how a model is prepared at load: OnnxModel's batching mode, proof, canvas errors and cache -----------------


def _canvas_graph(target: Path, height: int = 448, width: int = 800) -> Path:
    """A detector-like graph declared on a height x width canvas whose Reshape hard-codes that canvas's cells."""
    from onnx import TensorProto, helper, numpy_helper

    cells = (height // 8) * (width // 8)
    weights = np.random.default_rng(0).normal(0, 0.5, (2, 3, 8, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["maps"], strides=[8, 8]),
         helper.make_node("Reshape", ["maps", "rows"], ["y"])],
        "canvas", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, cells])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array([1, 2, cells], np.int64), "rows")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(target))
    return target


def test_another_canvas_names_the_one_the_export_needs(tmp_path: Path) -> None:
    from deepbatch.runtime.model import OnnxModel

    with pytest.raises(ModelFormatError, match=r"640x640 canvas.*input_size=\(800, 448\)"):
        OnnxModel(_canvas_graph(tmp_path / "canvas.onnx"), "cpu", dynamic_spatial=True, probe_shape=(3, 640, 640))


def test_a_hard_coded_canvas_is_repaired_and_proven_on_its_own_canvas(tmp_path: Path) -> None:
    from deepbatch.runtime.model import OnnxModel

    model = OnnxModel(_canvas_graph(tmp_path / "canvas.onnx", 64, 96), "cpu", dynamic_spatial=True,
                      probe_shape=(3, 64, 96))
    assert model.mode == "repaired" and "proven equal to the original" in model.mode_reason


def test_per_image_mode_counts_one_session_call_per_image(graphs: dict) -> None:
    from deepbatch.runtime.model import OnnxModel

    model = OnnxModel(graphs["mixing_b1"], "cpu", probe_shape=(3, 16, 16))
    assert model.mode == "per_image" and "original" in model.mode_reason
    model.run(np.zeros((3, 3, 16, 16), np.float32))
    assert model.run_calls == 3


@pytest.fixture()
def cached(tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prepared-model cache in a fresh folder, filled by loading the resize-baked SCRFD file once."""
    from deepbatch.runtime.model import OnnxModel

    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path))
    first = OnnxModel(weights_dir / "scrfd_2.5g_fixed640_resize.onnx", "cpu", probe_shape=(3, 640, 640))
    assert not first.from_cache and first.mode == "repaired" and "Resize" in first.repair_description
    return tmp_path / "batch_repairs"


def test_second_load_comes_from_the_cache(cached: Path, weights_dir: Path) -> None:
    from deepbatch.runtime.model import OnnxModel

    again = OnnxModel(weights_dir / "scrfd_2.5g_fixed640_resize.onnx", "cpu", probe_shape=(3, 640, 640))
    assert again.from_cache and again.mode == "repaired"


@pytest.mark.parametrize("damage", ["json", "version"])
def test_a_damaged_cache_entry_is_rebuilt(cached: Path, weights_dir: Path, damage: str) -> None:
    import json

    from deepbatch.runtime.model import OnnxModel

    record = next(cached.glob("*.json"))
    if damage == "json":
        record.write_text("{not json")
    else:
        record.write_text(json.dumps({**json.loads(record.read_text()), "version": "0.0.0"}))
    model = OnnxModel(weights_dir / "scrfd_2.5g_fixed640_resize.onnx", "cpu", probe_shape=(3, 640, 640))
    assert not model.from_cache and model.mode == "repaired"
    assert OnnxModel(weights_dir / "scrfd_2.5g_fixed640_resize.onnx", "cpu", probe_shape=(3, 640, 640)).from_cache


@pytest.mark.parametrize("verify, mode", [(None, "native"), (True, "per_image")])
def test_a_dynamic_export_runs_as_it_is_unless_a_forced_check_fails(graphs: dict, verify, mode) -> None:  # type: ignore[no-untyped-def]
    from deepbatch.runtime.model import OnnxModel

    model = OnnxModel(graphs["mixing"], "cpu", probe_shape=(3, 16, 16), verify_batch=verify, cache=False)
    assert model.mode == mode and model.repair_description == "nothing to change"


def test_check_batch_command_says_how_deepbatch_runs_the_file(weights_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from deepbatch.cli import main

    main(["check-batch", str(weights_dir / "scrfd_2.5g_fixed640_resize.onnx"), "--batch-sizes", "2"])
    assert "deepbatch runs it as: repaired (" in capsys.readouterr().out


def test_an_unproven_repair_still_rewrites_the_flattening_head(graphs: dict) -> None:
    from deepbatch.runtime.model import OnnxModel

    model = OnnxModel(graphs["flattening_head"], "cpu", verify_batch=False, cache=False)
    assert model.mode == "repaired" and "not proven" in model.mode_reason
    assert model.run(np.zeros((2, 3, 32, 32), np.float32))[0].shape[0] == 2


def test_missing_onnx_asks_for_deepbatch_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """``onnx`` is a base requirement, not part of an extra: the hint reinstalls deepbatch without naming one."""
    import re
    import sys

    from deepbatch.errors import MissingDependencyError
    from deepbatch.optional import install_command
    from deepbatch.runtime.surgery import import_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=re.escape(install_command(""))) as raised:
        import_onnx()
    assert raised.value.extra == "" and "[" not in install_command("")
