"""Each exit code of the command line means one thing: 0 ok, 1 some inputs failed, 2 usage or configuration
(bad weights included), 3 a resource or internal failure, 130 interrupted (tested in test_outputs.py)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence, Tuple

import pytest

from deepbatch.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from deepbatch.detectors import DETECTORS
from deepbatch.recognition import RECOGNIZERS

ROOT = Path(__file__).resolve().parent.parent


def run(args: Sequence[object]) -> Tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_everything_went_through_is_0(dataset_dir: Path) -> None:
    assert run(["detect", dataset_dir / "img1.jpg", "--no-progress"])[0] == EXIT_OK


def test_some_inputs_failed_is_1(dataset_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    assert run(["detect", dataset_dir / "img1.jpg", tmp_path / "broken.jpg", "--no-progress"])[0] == EXIT_FAILED


def test_unknown_model_is_2(dataset_dir: Path) -> None:
    assert run(["detect", dataset_dir / "img1.jpg", "--backend", "nope", "--no-progress"])[0] == EXIT_USAGE


@pytest.mark.parametrize("source, filename, backend, message", [
    ("face_detection_yunet_2026may.onnx", None, "yunet", "SHA-256"),  # registered digest: the file is refused
    ("scrfd_500m_kps.onnx", None, "scrfd_500m", "SHA-256"),  # a registered digest under an alternative name too
    ("scrfd_500m_kps.onnx", "centerface.onnx", "centerface", "not a readable ONNX model"),  # no digest: the loader
])
def test_corrupt_weights_are_2_without_a_traceback(source: str, filename: Optional[str], backend: str, message: str,
                                                   tmp_path: Path, weights_dir: Path, dataset_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    filename = filename or source
    data = (weights_dir / source).read_bytes()
    (tmp_path / filename).write_bytes(data[: len(data) // 2])
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path))
    DETECTORS.clear_cache()  # built detectors are kept per process: build this one from the corrupt file
    code, err = run(["detect", dataset_dir / "img1.jpg", "--backend", backend, "--no-progress"])
    assert code == EXIT_USAGE and message in err and str(tmp_path / filename) in err
    assert "Traceback" not in err


_OUT_OF_MEMORY = textwrap.dedent("""
    import resource, sys
    import cv2, numpy as np
    from deepbatch.cli import main
    folder = sys.argv[1]
    cv2.imwrite(folder + "/small.jpg", np.zeros((64, 64, 3), np.uint8))
    # 243 MB once decoded; a PNG, because detection decodes a large JPEG at a reduced scale
    cv2.imwrite(folder + "/large.png", np.zeros((9000, 9000, 3), np.uint8))
    main(["detect", folder + "/small.jpg", "--no-progress"])  # load the model and libraries first
    in_use = int(open("/proc/self/statm").read().split()[0]) * 4096
    resource.setrlimit(resource.RLIMIT_AS, (in_use + (150 << 20), resource.RLIM_INFINITY))
    sys.exit(main(["detect", folder + "/large.png", "--no-progress"]))
""")


def test_out_of_memory_is_3(tmp_path: Path, weights_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", _OUT_OF_MEMORY, str(tmp_path)], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == EXIT_INTERNAL, done.stderr[-2000:]
    assert "out of memory" in done.stderr and "Traceback" not in done.stderr


def _graph_that_fails_when_run(path: Path) -> None:
    """A recognizer-shaped graph ([N, 3, H, W] in) that ONNX Runtime loads but cannot run: it reshapes 37632
    values per face into rows of 5."""
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 5])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "fails",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 5])], initializer=[shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_runtime_failure_is_3_without_a_traceback(tmp_path: Path, dataset_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "mobilefacenet_dyn.onnx"
    _graph_that_fails_when_run(model)
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", f"{tmp_path}{os.pathsep}{os.environ['DEEPBATCH_WEIGHTS']}")
    monkeypatch.setenv("DEEPBATCH_TRUSTED_WEIGHTS", str(model))  # a custom file under the registered name
    RECOGNIZERS.clear_cache()
    code, err = run(["represent", dataset_dir / "img1.jpg", "--model", "MobileFaceNet", "--no-progress"])
    RECOGNIZERS.clear_cache()
    assert code == EXIT_INTERNAL and "internal failure" in err and "Traceback" not in err
