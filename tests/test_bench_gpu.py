"""The GPU benchmark's device-side pieces, checked on the CPU against deepbatch's own pre-processing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gpu import (  # noqa: E402  (a script of benchmarks/, the benchmark of `make bench-gpu`)
    check_preamble,
    check_torch_decode,
    gpu_status,
    install_gpu_packages,
    probe_model,
    tensorrt_requirement,
)

from deepbatch.detectors import build_detector  # noqa: E402
from deepbatch.io.images import list_image_files, load_image  # noqa: E402

PREAMBLE_OUTPUT_TOLERANCE = 1e-5  # same float32 arithmetic in another graph: reassociation may move the last bit


@pytest.fixture(scope="module")
def scrfd_cpu(weights_dir: Path):  # type: ignore[no-untyped-def]
    return build_detector("scrfd_500m", input_size=640, providers="cpu")


def test_uint8_preamble_equals_cpu_normalisation(scrfd_cpu, dataset_dir: Path) -> None:  # type: ignore[no-untyped-def]
    frames = [load_image(p) for p in list_image_files(dataset_dir)[:4]]
    report = check_preamble(scrfd_cpu, frames)
    assert report["input_max_abs_diff"] == 0.0
    assert report["output_max_abs_diff"] <= PREAMBLE_OUTPUT_TOLERANCE


@pytest.mark.heavy  # imports torch and torchvision
def test_torch_jpeg_decoding_finds_the_same_faces(scrfd_cpu, dataset_dir: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torchvision", reason="the torch decoding path needs torchvision (the yolo extra)")
    report = check_torch_decode(scrfd_cpu, [str(p) for p in list_image_files(dataset_dir)])
    assert report["same_face_counts"]


def test_the_cuda_probe_loads_in_the_installed_onnxruntime() -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(probe_model().SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].name == "y"


def test_without_a_gpu_the_reason_is_the_missing_gpu() -> None:
    usable, reason = gpu_status()
    if usable:
        pytest.skip(f"a GPU is here: {reason}")
    assert "IR version" not in reason and ("no GPU" in reason or "no CUDAExecutionProvider" in reason), reason


def test_the_tensorrt_wheel_matches_the_installed_runtime() -> None:
    import re

    import onnxruntime as ort

    cuda = getattr(getattr(ort.capi, "build_and_package_info", None), "cuda_version", "")
    requirement = tensorrt_requirement()
    if not cuda or "TensorrtExecutionProvider" not in ort.get_available_providers():
        assert requirement is None
        return
    match = re.fullmatch(r"tensorrt-cu(\d+)>=(\d+),<(\d+)", requirement or "")
    assert match is not None, requirement
    assert match.group(1) == cuda.split(".")[0] and int(match.group(3)) == int(match.group(2)) + 1


def test_an_offline_install_removes_nothing_and_says_what_is_missing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import os

    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (tools / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    empty = tmp_path / "wheels"
    empty.mkdir()
    runtime = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()
               if d.metadata["Name"].startswith("onnxruntime")}
    said = install_gpu_packages(empty)
    after = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()
             if d.metadata["Name"].startswith("onnxruntime")}
    assert after == runtime
    assert said and all("already installed" in line or "could not be downloaded" in line for line in said), said
