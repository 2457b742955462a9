"""The package layout's promises: renamed modules still import under their old names (the very same module, with a
DeprecationWarning), split modules re-export every name they held, and a module never hides a public function."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

import deepbatch

RENAMED = [
    ("deepbatch.detection", "deepbatch.api.extract"),
    ("deepbatch.detect_only", "deepbatch.api.detect"),
    ("deepbatch.representation", "deepbatch.api.represent"),
    ("deepbatch.verification", "deepbatch.api.verify"),
    ("deepbatch.search", "deepbatch.api.find"),
    ("deepbatch.stream", "deepbatch.core.stream"),
    ("deepbatch.pipeline", "deepbatch.core.workers"),
]

# every name imported from deepbatch.io.images before it was split, and the module that holds it now
IMAGES_NAMES = [
    ("ImageLimits", "limits"), ("get_image_limits", "limits"), ("set_image_limits", "limits"),
    ("load_image", "load"), ("read_encoded", "load"), ("load_image_for_canvas", "load"),
    ("PRIVATE_URLS_ENV", "fetch"), ("non_global_reason", "fetch"), ("URL_TIMEOUT_S", "fetch"),
    ("decode", "decode"), ("describe", "inputs"), ("as_batch", "inputs"), ("validate_arrays", "inputs"),
    ("jpeg_is_truncated", "jpeg"), ("to_bgr", "arrays"), ("list_image_files", "folders"),
    ("IMAGE_EXTENSIONS", "folders"), ("decode_for_canvas", "reduced"), ("reduction_factor", "reduced"),
    ("declared_pixels", "reduced"), ("CanvasImage", "reduced"),
]

CLI_NAMES = [("main", "main"), ("build_parser", "parser"), ("EXIT_OK", "exit_codes"), ("EXIT_FAILED", "exit_codes"),
             ("EXIT_USAGE", "exit_codes"), ("EXIT_INTERNAL", "exit_codes"), ("EXIT_INTERRUPTED", "exit_codes"),
             ("cmd_models", "tables"), ("Sink", "sinks"), ("run_local", "engines")]


def _fresh_import(name: str) -> types.ModuleType:
    """``name`` imported anew (its warning said again), without leaving it as an attribute of the package, where
    ``deepbatch.search`` would hide the function of that name."""
    sys.modules.pop(name, None)
    try:
        return importlib.import_module(name)
    finally:
        vars(deepbatch).pop(name.rsplit(".", 1)[1], None)


@pytest.mark.parametrize(("old", "new"), RENAMED)
def test_an_old_module_name_is_the_new_module_with_a_warning(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: import {new} instead"):
        module = _fresh_import(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize(("name", "home"), IMAGES_NAMES)
def test_io_images_re_exports_the_split_modules(name: str, home: str) -> None:
    images = importlib.import_module("deepbatch.io.images")
    assert getattr(images, name) is getattr(importlib.import_module(f"deepbatch.io.{home}"), name)


def test_image_limits_set_through_io_images_are_the_ones_every_module_reads() -> None:
    from deepbatch.io import images, limits

    previous = images.set_image_limits(max_pixels=1234)
    try:
        assert limits.get_image_limits().max_pixels == 1234 == images.get_image_limits().max_pixels
    finally:
        images.set_image_limits(max_pixels=previous.max_pixels)


@pytest.mark.parametrize(("name", "home"), CLI_NAMES)
def test_cli_re_exports_its_modules(name: str, home: str) -> None:
    cli = importlib.import_module("deepbatch.cli")
    assert getattr(cli, name) is getattr(importlib.import_module(f"deepbatch.cli.{home}"), name)


@pytest.mark.parametrize("verb", ["extract_faces", "detect", "represent", "verify", "find"])
def test_a_verb_stays_a_function_once_its_module_is_imported(verb: str) -> None:
    for module in ("extract", "detect", "represent", "verify", "find"):
        importlib.import_module(f"deepbatch.api.{module}")
    assert isinstance(getattr(deepbatch, verb), types.FunctionType)


@pytest.mark.parametrize(("old", "script"), [("deepbatch.bench", "bench_detector"),
                                             ("deepbatch.bench_gpu", "bench_gpu")])
def test_the_benchmarks_live_outside_the_package(old: str, script: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated"):
        module = _fresh_import(old)
    assert module.__file__ is not None and module.__file__.endswith(f"benchmarks/{script}.py")
