"""Selecting models by name."""

from __future__ import annotations

import pytest

import deepbatch
from deepbatch.detectors import DETECTORS, build_detector, list_detectors
from deepbatch.errors import UnknownModelError
from deepbatch.registry import Registry


def test_unknown_name_lists_the_valid_names():  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownModelError) as info:
        build_detector("retina_net_9000")
    assert isinstance(info.value, ValueError)
    for name in ("scrfd", "scrfd_500m", "opencv", "skip"):
        assert name in str(info.value)


def test_a_detector_is_built_once_and_cached(weights_dir):  # type: ignore[no-untyped-def]
    assert build_detector("scrfd") is build_detector("scrfd_500m")
    assert build_detector("SCRFD") is build_detector("scrfd")


def test_other_arguments_build_another_instance(weights_dir):  # type: ignore[no-untyped-def]
    assert build_detector("scrfd", input_size=320) is not build_detector("scrfd")


@pytest.mark.parametrize("alias, target", [("scrfd", "scrfd_500m")])
def test_aliases_resolve(alias, target):  # type: ignore[no-untyped-def]
    assert DETECTORS.canonical(alias) == target
    assert alias in list_detectors() and target in list_detectors()


@pytest.mark.parametrize("name", ["scrfd_500m", "scrfd_2.5g", "scrfd_10g", "scrfd_34g"])
def test_scrfd_variants_are_names(name):  # type: ignore[no-untyped-def]
    assert name in list_detectors()


def test_registering_a_name_twice_is_an_error():  # type: ignore[no-untyped-def]
    registry: Registry[object] = Registry("thing", "deepbatch")
    registry.register("a")(object)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("A")(object)


def test_import_is_cheap():  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    heavy = "('cv2', 'onnxruntime', 'onnx', 'torch', 'tensorflow', 'ray', 'ultralytics')"
    code = f"import sys, deepbatch; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    assert deepbatch.__version__
