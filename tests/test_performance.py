"""deepbatch.Performance: one object for the performance settings every verb takes, the older keyword arguments
still accepted as its advanced spellings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import deepbatch
from deepbatch import Performance
from deepbatch.cli.parser import build_parser
from deepbatch.detectors.base import DETECTORS
from deepbatch.errors import ArgumentError
from deepbatch.performance import AUTOMATIC, settle
from deepbatch.plan import build_plan
from deepbatch.recognition.base import RECOGNIZERS

PHOTOS = ["couple.jpg", "img1.jpg", "img12.jpg"]


def test_the_default_is_every_choice_automatic() -> None:
    assert Performance() == AUTOMATIC == Performance(batch_size="auto", workers=None, prefetch=2, threads=None)


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0}, "batch_size must be a positive integer or 'auto', got 0"),
    ({"batch_size": "big"}, "batch_size must be a positive integer or 'auto', got 'big'"),
    ({"workers": -1}, r"Performance\(workers=...\) must be an integer >= 0 or None, got -1"),
    ({"prefetch": 1.5}, r"Performance\(prefetch=...\) must be an integer >= 0, got 1.5"),
    ({"prefetch": None}, r"Performance\(prefetch=...\) must be an integer >= 0, got None"),
    ({"threads": 0}, r"Performance\(threads=...\) must be a positive integer or None \(automatic\), got 0"),
    ({"threads": "4"}, r"Performance\(threads=...\) must be a positive integer or None \(automatic\), got '4'"),
    ({"threads": True}, r"Performance\(threads=...\) must be a positive integer or None \(automatic\), got True"),
])
def test_a_bad_setting_is_refused_naming_it(settings: Dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        Performance(**settings)


@pytest.mark.parametrize(("performance", "keywords", "expected"), [
    (None, {}, Performance()),
    (None, {"batch_size": 4, "workers": 0}, Performance(4, 0)),
    (Performance(8, 1, 3), {}, Performance(8, 1, 3)),
    (None, {"threads": 2}, Performance(threads=2)),
])
def test_settle_takes_the_object_or_the_keywords(performance: Any, keywords: Dict[str, Any],
                                                 expected: Performance) -> None:
    assert settle(performance, **keywords) == expected


@pytest.mark.parametrize(("performance", "keywords", "message"), [
    (Performance(4), {"batch_size": 4}, "were both given"),
    (Performance(), {"prefetch": 5}, "were both given"),
    (Performance(threads=1), {"threads": 1}, "were both given"),
    ({"batch_size": 4}, {}, "performance must be a deepbatch.Performance, got dict"),
])
def test_settle_refuses_both_or_another_type(performance: Any, keywords: Dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        settle(performance, **keywords)


@pytest.fixture(scope="module")
def photos(dataset_dir: Path) -> List[str]:
    return [str(dataset_dir / name) for name in PHOTOS]


def test_detect_with_performance_equals_detect_with_the_keywords(photos: List[str], scrfd_320: Any) -> None:
    given = deepbatch.detect(photos, scrfd_320, performance=Performance(batch_size=2, workers=0, prefetch=1))
    spelled = deepbatch.detect(photos, scrfd_320, batch_size=2, workers=0, prefetch=1)
    assert [len(faces) for faces in given] == [len(faces) for faces in spelled]
    for a, b in zip(given, spelled):
        np.testing.assert_array_equal(a.boxes, b.boxes)


def test_extract_faces_takes_performance(photos: List[str], scrfd_320: Any) -> None:
    given = deepbatch.extract_faces(photos, scrfd_320, performance=Performance(batch_size=3, workers=0))
    default = deepbatch.extract_faces(photos, scrfd_320)
    assert [[f["facial_area"] for f in image] for image in given] == [[f["facial_area"] for f in image]
                                                                      for image in default]


def test_iter_extract_faces_refuses_both_spellings(photos: List[str], scrfd_320: Any) -> None:
    with pytest.raises(ArgumentError, match="were both given"):
        next(deepbatch.iter_extract_faces(photos, scrfd_320, workers=0, performance=Performance(workers=0)))


def test_verify_pairs_takes_performance(photos: List[str], scrfd_320: Any, weights_dir: Path) -> None:
    pairs = [(photos[0], photos[1]), (photos[1], photos[2])]
    given = deepbatch.verify_pairs(pairs, detector_backend=scrfd_320, performance=Performance(batch_size=2,
                                                                                                workers=0))
    spelled = deepbatch.verify_pairs(pairs, detector_backend=scrfd_320, batch_size=2)
    assert [r["distance"] for r in given] == [r["distance"] for r in spelled]


def test_represent_takes_performance(photos: List[str], scrfd_320: Any, weights_dir: Path) -> None:
    given = deepbatch.represent(photos, detector_backend=scrfd_320, performance=Performance(batch_size=2, workers=0))
    spelled = deepbatch.represent(photos, detector_backend=scrfd_320, batch_size=2)
    assert [[f["embedding"] for f in image] for image in given] == [[f["embedding"] for f in image]
                                                                    for image in spelled]


def test_find_takes_performance(photos: List[str], scrfd_320: Any, weights_dir: Path, tmp_path: Path) -> None:
    for photo in photos:
        (tmp_path / Path(photo).name).write_bytes(Path(photo).read_bytes())
    tables = deepbatch.find(photos[1], tmp_path, detector_backend=scrfd_320, silent=True, return_type="dict",
                            performance=Performance(batch_size=2, workers=0, prefetch=1))
    assert Path(tables[0][0]["identity"]).name == Path(photos[1]).name


def _intra_op_threads(model: Any) -> int:
    return int(model.model.session.get_session_options().intra_op_num_threads)


@pytest.fixture()
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """The models built from a name during the test, each built for real: the registries' caches start empty (and
    are restored afterwards), so every model a verb asks for is created here."""
    created: List[Any] = []
    for registry in (DETECTORS, RECOGNIZERS):
        monkeypatch.setattr(registry, "_cache", {})
        create = registry.create

        def recording(name: str, _create: Any = create, **kwargs: Any) -> Any:
            model = _create(name, **kwargs)
            created.append(model)
            return model

        monkeypatch.setattr(registry, "create", recording)
    return created


@pytest.mark.parametrize("threads", [1, 2])
def test_a_detector_built_from_a_name_gets_the_threads(photos: List[str], weights_dir: Path, fresh_models: List[Any],
                                                       threads: int) -> None:
    deepbatch.detect(photos[:1], "scrfd", performance=Performance(threads=threads))
    assert [_intra_op_threads(model) for model in fresh_models] == [threads]


@pytest.mark.parametrize("threads", [1, 2])
def test_represent_builds_both_models_with_the_threads(photos: List[str], weights_dir: Path,
                                                       fresh_models: List[Any], threads: int) -> None:
    deepbatch.represent(photos[1], detector_backend="scrfd", performance=Performance(threads=threads))
    assert len(fresh_models) == 2  # the recognizer and the detector
    assert [_intra_op_threads(model) for model in fresh_models] == [threads, threads]


def test_threads_are_left_out_for_a_backend_without_onnx_runtime() -> None:
    assert Performance(threads=2).model_options(DETECTORS.entry("opencv").factory) == {}
    assert Performance(threads=2).model_options(DETECTORS.entry("scrfd").factory) == {"threads": 2}
    assert Performance().model_options(DETECTORS.entry("scrfd").factory) == {}


def test_the_command_line_threads_reach_the_models(photos: List[str]) -> None:
    plan = build_plan(build_parser().parse_args(["represent", photos[0], "--threads", "3"]))
    assert plan.models.detector_kwargs == {"threads": 3} and plan.models.recognizer_kwargs == {"threads": 3}
    plan = build_plan(build_parser().parse_args(["detect", photos[0], "--backend", "opencv", "--threads", "3"]))
    assert plan.models.detector_kwargs == {}


VERBS = {
    "extract_faces": lambda photos, tmp, p: deepbatch.extract_faces(photos[1], "scrfd", performance=p),
    "iter_detect": lambda photos, tmp, p: list(deepbatch.iter_detect(photos[:1], "scrfd", performance=p)),
    "verify": lambda photos, tmp, p: deepbatch.verify(photos[1], photos[2], detector_backend="scrfd", performance=p),
    "register": lambda photos, tmp, p: deepbatch.register(photos[1], detector_backend="scrfd",
                                                          connection_details=str(tmp / "faces.db"), performance=p),
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_builds_its_models_with_one_thread(verb: str, photos: List[str], weights_dir: Path,
                                                      tmp_path: Path, fresh_models: List[Any]) -> None:
    VERBS[verb](photos, tmp_path, Performance(threads=1))
    assert fresh_models and [_intra_op_threads(model) for model in fresh_models] == [1] * len(fresh_models)


@pytest.mark.parametrize("command", [["detect", "--threads", "1"], ["register", "--threads", "1"]])
def test_the_command_line_builds_its_models_with_the_threads(command: List[str], photos: List[str], weights_dir: Path,
                                                             tmp_path: Path, fresh_models: List[Any],
                                                             capsys: pytest.CaptureFixture) -> None:
    from deepbatch.cli import main

    verb, *options = command
    where = ["--db", str(tmp_path / "faces.db")] if verb == "register" else ["-o", str(tmp_path / "rows.jsonl")]
    assert main([verb, photos[1], *options, *where]) == 0
    assert fresh_models and [_intra_op_threads(model) for model in fresh_models] == [1] * len(fresh_models)
