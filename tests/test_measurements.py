"""Measurements in the docs are generated tables: each is the rendering of its JSON file in docs/measurements/
(command line, date, machine, load, rows), so a table cannot drift from what was recorded, and a benchmark run with
``--record`` writes that file."""

from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "tools" / "docs_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _tool()
PAGES_WITH_MEASUREMENTS = sorted(p.name for p in tables.DOCS.glob("*.md") if tables.measured_names(p.read_text()))
RECORDED = sorted(p.name for p in tables.MEASUREMENTS.glob("*.json"))


@pytest.mark.parametrize("page", PAGES_WITH_MEASUREMENTS)
def test_every_measured_table_is_the_rendering_of_its_json(page: str) -> None:
    text = (tables.DOCS / page).read_text(encoding="utf-8")
    assert tables.render_measurements(text) == text, f"{page} is out of date: run python tools/docs_tables.py"


def test_every_recorded_measurement_is_shown_by_one_page() -> None:
    shown = [name for page in tables.DOCS.glob("*.md") for name in tables.measured_names(page.read_text())]
    assert tables.unshown_measurements(tables.DOCS.glob("*.md")) == []
    assert sorted(shown) == sorted(set(shown)), "a measurement is shown twice"


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_measurement_says_how_it_was_measured(name: str) -> None:
    data = tables.load_measurement(tables.MEASUREMENTS / name)
    assert data["rows"] and data["machine"]
    assert (tables.MEASUREMENTS / name).read_text(encoding="utf-8") == tables.measurement_json(data)


def _without(key: str) -> Callable[[Dict[str, Any]], None]:
    return lambda data: data.pop(key)


@pytest.mark.parametrize("change, message", [
    (_without("command"), "expected the keys"),
    (lambda data: data.update(extra=1), "expected the keys"),
    (lambda data: data["rows"].append(["1"]), "row 1 must hold 2 cells"),
    (lambda data: data["rows"].append([True, "2"]), "row 1 must hold 2 cells"),
    (lambda data: data.update(columns=[]), "columns must be a non-empty list"),
    (lambda data: data.update(command=""), "command must be the command line"),
    (lambda data: data.update(date="3 December"), "date must be YYYY-MM-DD or null"),
])
def test_a_malformed_measurement_is_refused_naming_the_problem(change: Callable[[Dict[str, Any]], None],
                                                               message: str) -> None:
    data = {"title": "t", "command": "python benchmarks/x.py", "date": "2026-12-03", "machine": "m", "load": None,
            "columns": ["a", "b"], "rows": [["1", 2.5]]}
    tables.check_measurement(data, "x.json")
    change(data)
    with pytest.raises(ValueError, match=message):
        tables.check_measurement(data, "x.json")


def test_a_table_edited_by_hand_differs_from_its_rendering(tmp_path: Path) -> None:
    data = {"title": "t", "command": "c", "date": None, "machine": "m", "load": None, "columns": ["batch", "img/s"],
            "rows": [["1", "82.9"], ["32", ""]]}
    tables.write_measurement(tmp_path / "speed.json", data)
    begin, end = tables.measured_markers("speed")
    page = f"Intro\n\n{begin}\n| batch | img/s |\n|---|---|\n| 1 | 82.9 |\n| 32 | |\n{end}\n\nAfter\n"
    assert tables.render_measurements(page, tmp_path) == page
    edited = page.replace("82.9", "90.0")
    assert tables.render_measurements(edited, tmp_path) == page


def test_bench_detector_records_its_table(weights_dir: Path, dataset_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    import bench_detector

    path = tmp_path / "speed.json"
    assert bench_detector.main(["--backend", "scrfd", "--input-size", "320", "--images", "4", "--batch-sizes", "1,2",
                                "--skip-extract", "--workers", "0", "--data", str(dataset_dir),
                                "--record", str(path)]) == 0
    data = tables.load_measurement(path)
    assert data["command"] == ("deepbatch bench --backend scrfd --batch-sizes 1,2 --input-size 320 --images 4 "
                               "--source files --providers auto --workers 0 --skip-extract --repeat 1")
    assert data["date"] == datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert [row[0] for row in data["rows"]] == ["1", "2"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 and row[3] == "-" for row in data["rows"])
    begin, end = tables.measured_markers("speed")
    shown = tables.render_measurements(f"{begin}\n{end}\n", tmp_path)
    assert shown == f"{begin}\n{tables.measurement_table(data)}\n{end}\n"
    assert f"| 1 | {data['rows'][0][1]} |" in shown
