"""Selecting models by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deepbatch
from deepbatch.detectors import DETECTORS, build_detector, list_detectors
from deepbatch.errors import UnknownModelError
from deepbatch.recognition import RECOGNIZERS
from deepbatch.registry import Registry
from deepbatch.weights import find_weights


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


def test_only_the_most_recently_used_models_stay_cached(weights_dir):  # type: ignore[no-untyped-def]
    from deepbatch.registry import CACHED_MODELS

    DETECTORS.clear_cache()
    first = build_detector("scrfd", input_size=320)
    kept = build_detector("scrfd")
    for size in range(352, 352 + 32 * (CACHED_MODELS - 1), 32):  # fills the cache; ``kept`` is used all along
        build_detector("scrfd", input_size=size)
        assert build_detector("scrfd") is kept
    assert build_detector("scrfd", input_size=320) is not first  # let go, then built again


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


def _weights_of(name: str):  # type: ignore[no-untyped-def]
    entry = DETECTORS.entry(name)
    return entry.defaults.get("weights") or getattr(entry.factory, "weights", None)


@pytest.mark.parametrize("name", DETECTORS.names(aliases=False))
def test_every_registered_name_builds_under_its_own_name(name: str) -> None:
    from deepbatch.errors import MissingDependencyError
    from deepbatch.weights import find_weights

    spec = _weights_of(name)
    if spec is not None and find_weights(spec) is None:
        pytest.skip(f"no weights for {name} here (see test_missing_weights_give_the_typed_error)")
    try:
        detector = DETECTORS.create(name)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    assert detector.name == name


@pytest.mark.parametrize("name", [n for n in DETECTORS.names(aliases=False) if _weights_of(n) is not None])
def test_missing_weights_give_the_typed_error(name: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deepbatch.errors import WeightsNotFoundError
    from deepbatch.weights import resolve_weights

    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="|".join(_weights_of(name).names)):
        resolve_weights(_weights_of(name), download=False)


# The short names users type (DeepFace's and the README's) and what each must build: its variant and weights file.
# Written out here, not read from the registry, so that an alias pointing at another variant fails.
ALIASES = {"scrfd": ("scrfd_500m", "scrfd_500m_kps.onnx"), "ultralight": ("ultralight_320", "ultralight_rfb_320.onnx"),
           "lffd": ("lffd_v1", "lffd_10_560_25L_8scales_v1.onnx"), "yolov8": ("yolov8n", "yolov8n-face.onnx")}


def test_the_aliases_are_the_published_table() -> None:
    assert {alias: DETECTORS.canonical(alias) for alias in DETECTORS.aliases()} == {
        alias: target for alias, (target, _) in ALIASES.items()}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_an_alias_builds_the_detector_of_its_target(alias: str, generated_models, parity_images) -> None:  # type: ignore[no-untyped-def]
    """Built by its alias, a detector loads its variant's weights file and finds what that file finds."""
    target, filename = ALIASES[alias]
    options = generated_models.get(target, {})
    if not options and find_weights(_weights_of(target)) is None:
        pytest.skip(f"no weights for {target} here")
    built = DETECTORS.create(alias, **options)
    assert built.weights.filename == filename
    if not options:  # the real weights: the file the alias loads is the variant's
        assert Path(built.model.path).name == filename
    expected = DETECTORS.create(target, **options).detect_faces(parity_images)
    for faces, reference in zip(built.detect_faces(parity_images), expected):
        np.testing.assert_array_equal(faces.boxes, reference.boxes)


@pytest.mark.parametrize("kind", ["detectors", "recognizers"])
def test_docs_table_of_names_is_the_registry(kind: str) -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "tools" / "docs_tables.py"
    spec = importlib.util.spec_from_file_location("docs_tables", script)
    assert spec is not None and spec.loader is not None
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    page = tables.PAGES[kind]
    text = page.read_text(encoding="utf-8")
    assert tables.render(text, [kind]) == text, f"{page.name} is out of date: run python tools/docs_tables.py"


@pytest.mark.parametrize("registry", [DETECTORS, RECOGNIZERS], ids=["detectors", "recognizers"])
def test_every_backend_declares_what_the_docs_tables_show(registry) -> None:  # type: ignore[no-untyped-def]
    """A new backend is one file: its registration and class data fill its row in the docs' table, with no gap."""
    for name in registry.names(aliases=False):
        entry = registry.entry(name)
        weights = entry.defaults.get("weights") or getattr(entry.factory, "weights", None)
        assert entry.licence, f"{name} registers no weights licence"
        assert entry.factory.runs_on, f"{name} does not say what runs it"
        assert weights is not None or entry.factory.bundled_weights, f"{name} says nowhere where its weights are"
