"""Execution providers: resolution, validation, fallback with one log line, CPU threads, the IO-binding run path.

This machine's onnxruntime may be a CPU-only build; the GPU paths are exercised as far as such a build allows (a
GPU provider asked for falls back to the CPU with one log line; the IO-binding branch runs on the CPU provider).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, List

import numpy as np
import onnxruntime as ort
import pytest

from deepbatch.detectors.base import build_detector
from deepbatch.runtime import session as session_module
from deepbatch.runtime.model import OnnxModel
from deepbatch.runtime.session import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderError,
    cpu_threads,
    create_session,
    requested_providers,
    resolve_providers,
    session_options,
    tensorrt_cache_dir,
    usable_cpus,
)

GPU_BUILD = CUDA in ort.get_available_providers()
needs_cpu_only_build = pytest.mark.skipif(GPU_BUILD, reason="checks the fallback of a build without CUDA")
# Bound through an IO binding or passed to run(), the same input runs the same kernels: identical outputs.
EXACT = 0.0


@pytest.fixture(autouse=True)
def fresh_announcements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fallback lines are logged once per process; each test starts with none logged yet."""
    monkeypatch.setattr(session_module, "_announced", set())


@pytest.fixture(scope="module")
def scrfd_path(weights_dir: Path) -> str:
    return str(weights_dir / "scrfd_500m_kps.onnx")


def names(resolved: List[Any]) -> List[str]:
    return [name for name, _ in resolved]


def fallback_records(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == session_module.logger.name]


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        ("auto", [TENSORRT, CUDA, CPU]),
        ("cpu", [CPU]),
        ("CPU", [CPU]),
        ("cuda", [CUDA, CPU]),
        ("tensorrt", [TENSORRT, CUDA, CPU]),
        (["cuda"], [CUDA, CPU]),
        (["CUDAExecutionProvider", "cpu"], [CUDA, CPU]),
        (["cpu", "cuda"], [CPU, CUDA]),
        ([("tensorrt", {"trt_fp16_enable": False})], [TENSORRT, CPU]),
        (["cuda", "cuda"], [CUDA, CPU]),
    ],
)
def test_requested_providers(providers: Any, expected: List[str]):
    assert names(requested_providers(providers)) == expected


def test_tensorrt_defaults_to_fp16_with_an_engine_cache():
    options = dict(requested_providers("tensorrt"))[TENSORRT]
    assert options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(tensorrt_cache_dir())


def test_given_tensorrt_options_override_the_defaults():
    options = dict(requested_providers([("tensorrt", {"trt_fp16_enable": False})]))[TENSORRT]
    assert options["trt_fp16_enable"] is False and options["trt_engine_cache_enable"] is True


def test_tensorrt_engine_cache_lives_under_deepbatch_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path))
    assert tensorrt_cache_dir() == tmp_path / "tensorrt"


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ("gpu", "unknown execution provider 'gpu'"),
        (["CUDA_Provider"], "unknown execution provider 'CUDA_Provider'"),
        ([3], "expected a provider name"),
        ([], "empty list"),
    ],
)
def test_bad_providers_are_refused_with_the_valid_names(providers: Any, message: str):
    with pytest.raises(ProviderError, match=message):
        requested_providers(providers)


def test_provider_errors_are_value_errors():
    assert issubclass(ProviderError, ValueError)


def test_unknown_provider_message_lists_the_choices():
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        requested_providers(["nope"])


def test_resolution_keeps_only_providers_of_this_build():
    assert set(names(resolve_providers("auto"))) <= set(ort.get_available_providers())


def test_resolution_always_ends_with_the_cpu():
    assert names(resolve_providers("cuda"))[-1] == CPU


@needs_cpu_only_build
def test_asking_for_cuda_falls_back_to_cpu_with_one_warning(scrfd_path: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.DEBUG, logger=session_module.logger.name):
        session = create_session(scrfd_path, "cuda")
    warnings = [r for r in fallback_records(caplog) if r.levelno >= logging.WARNING]
    assert session.get_providers() == [CPU]
    assert len(warnings) == 1 and CUDA in warnings[0].getMessage() and CPU in warnings[0].getMessage()


@needs_cpu_only_build
def test_the_fallback_line_is_logged_once_per_process(scrfd_path: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger=session_module.logger.name):
        create_session(scrfd_path, ["cuda"])
        create_session(scrfd_path, ["cuda"])
    assert len(fallback_records(caplog)) == 1


@needs_cpu_only_build
def test_auto_on_a_cpu_build_says_so_at_info_level(scrfd_path: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.DEBUG, logger=session_module.logger.name):
        create_session(scrfd_path, "auto")
    levels = [r.levelno for r in fallback_records(caplog) if "not in this onnxruntime build" in r.getMessage()]
    assert levels == [logging.INFO]


def test_cpu_session_has_no_fallback_line(scrfd_path: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger=session_module.logger.name):
        create_session(scrfd_path, "cpu")
    assert fallback_records(caplog) == []


@needs_cpu_only_build
def test_a_detector_asked_to_run_on_tensorrt_runs_on_the_cpu(weights_dir: Path, dataset_dir: Path):
    detector = build_detector("scrfd", input_size=320, providers="tensorrt")
    assert detector.model.providers == [CPU]
    import cv2

    assert len(detector.detect_faces([cv2.imread(str(dataset_dir / "couple.jpg"))])[0]) == 2


def test_default_intra_op_threads_follow_the_usable_cpus():
    assert session_options().intra_op_num_threads == (cpu_threads() or 0)  # 0 is ONNX Runtime's own default


def test_usable_cpus_never_exceed_the_affinity_mask():
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


def test_threads_argument_sets_intra_op_threads():
    assert session_options(1).intra_op_num_threads == 1


def test_threads_environment_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEEPBATCH_THREADS", "3")
    assert session_options().intra_op_num_threads == 3


def test_idle_intra_op_threads_do_not_spin():
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_io_binding_is_off_on_the_cpu_by_default(scrfd_path: str):
    assert OnnxModel(scrfd_path, "cpu", verify_batch=False).io_binding is False


def test_io_binding_run_equals_plain_run(scrfd_path: str):
    plain = OnnxModel(scrfd_path, "cpu", dynamic_spatial=True, verify_batch=False)
    bound = OnnxModel(scrfd_path, "cpu", dynamic_spatial=True, verify_batch=False, io_binding=True)
    blob = np.random.default_rng(0).uniform(-1, 1, (3, 3, 160, 160)).astype(np.float32)
    for a, b in zip(plain.run(blob), bound.run(blob)):
        np.testing.assert_allclose(a, b, atol=EXACT, rtol=0)
