"""The example numbers of README.md and the docs are what the code prints: the examples are run and compared with
what each page shows (``python tools/docs_examples.py`` rewrites them), and the detector table's face counts
(docs/detectors.md, recorded in docs/measurements/detector_backends.json) are counted again."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import pytest

from deepbatch.detectors import build_detector
from deepbatch.errors import MissingDependencyError, WeightsNotFoundError

ROOT = Path(__file__).resolve().parent.parent
# detector, batching, faces in couple.jpg, faces in selfie-many-people.jpg, ... (the detector speed table)
BACKENDS = json.loads((ROOT / "docs" / "measurements" / "detector_backends.json").read_text(encoding="utf-8"))
COUNT_ROWS = [(row[0].strip("`"), row[2], row[3]) for row in BACKENDS["rows"]]


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_examples", ROOT / "tools" / "docs_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_show_what_they_print(dataset_dir, weights_dir):  # type: ignore[no-untyped-def]
    tool = _tool()
    values = tool.outputs()
    for page in tool.PAGES:
        text = page.read_text(encoding="utf-8")
        assert tool.render(text, values) == text, (
            f"{page.name}'s examples are out of date: run python tools/docs_examples.py")


def test_every_example_is_found_in_its_page():  # type: ignore[no-untyped-def]
    tool = _tool()
    shown = {pattern.pattern for patterns in tool.PAGES.values() for pattern in patterns}
    assert shown == {p.pattern for p in (tool.FACIAL_AREA, tool.CONFIDENCE, tool.ROW, tool.VERIFY)}
    for page, patterns in tool.PAGES.items():
        for pattern in patterns:
            assert pattern.search(page.read_text(encoding="utf-8")), f"{page.name}: {pattern.pattern}"


def test_the_detector_table_has_rows():  # type: ignore[no-untyped-def]
    assert len(COUNT_ROWS) >= 8


@pytest.mark.parametrize("name, couple, selfie", COUNT_ROWS)
def test_detector_table_face_counts_are_counted(name, couple, selfie, dataset_dir, weights_dir):  # type: ignore[no-untyped-def]
    try:
        detector = build_detector(name)
    except (MissingDependencyError, WeightsNotFoundError) as exc:
        pytest.skip(str(exc))
    found = [len(detector.detect_faces([cv2.imread(str(dataset_dir / photo))])[0])
             for photo in ("couple.jpg", "selfie-many-people.jpg")]
    assert found == [int(couple), int(selfie)]
