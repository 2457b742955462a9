"""Multi-class detectors keep only their face classes: found by name in the file (ultralytics records ``names``), or
named with ``classes=``; a file with no class named like a face is refused, listing its classes. The reference is
ultralytics' own ``predict(classes=...)`` on the same exported files."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

from deepbatch.detectors import build_detector
from deepbatch.detectors.classes import face_class_ids
from deepbatch.errors import ArgumentError, ModelFormatError

PERSON_FACE = {0: "person", 1: "face"}
EXPRESSIONS = dict(enumerate(["anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]))
# name -> (ultralytics model kind, classes); "yolov8n"/"yolov10n" in the name makes ultralytics build the n scale
MODELS = {"yolov8n_person_face": ("detect", PERSON_FACE), "yolov10n_person_face": ("end2end", PERSON_FACE),
          "yolov8n_expressions": ("detect", EXPRESSIONS)}
# Random-weight models: thresholds that keep a handful of candidates per photo (as tests/test_yolo.py).
THRESHOLDS = {"detect": 0.8, "end2end": 0.6}
# Same graph, ONNX Runtime vs ultralytics on the same file: float32 sums in another order (as tests/test_yolo.py).
RUNTIME_TOLERANCE_PX = 0.05


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    pytest.importorskip("ultralytics", reason="the ultralytics exporter needs deepbatch[yolo]")
    from models import ultralytics_face_exports

    return ultralytics_face_exports(tmp_path_factory.mktemp("classes"), {k: v[0] for k, v in MODELS.items()},
                                    names={k: v[1] for k, v in MODELS.items()}, dynamic_shapes=(False,))


@pytest.fixture(scope="module")
def square_photos(dataset_dir: Path) -> List[np.ndarray]:
    """Photos resized to the 640 canvas, so every letterbox convention gives the same pixels."""
    return [cv2.resize(cv2.imread(str(dataset_dir / n)), (640, 640)) for n in ("couple.jpg", "img1.jpg", "img3.jpg")]


def _reference(path: Path, photos: List[np.ndarray], threshold: float, classes: List[int]) -> List[np.ndarray]:
    """ultralytics' own boxes for ``classes`` only, per photo, sorted (one NMS over the face classes: the faces of
    several classes are one kind of object)."""
    import ultralytics

    model = ultralytics.YOLO(str(path), task="detect")
    results = model.predict(photos, imgsz=640, conf=threshold, iou=0.4, classes=classes, rect=False, verbose=False,
                            agnostic_nms=True)
    return [_rows(r.boxes.xyxy.cpu().numpy()) for r in results]


def _rows(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))] if len(boxes) else boxes.reshape(0, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov8n_person_face", "yolov10n_person_face"])
@pytest.mark.parametrize("backend", ["yolov8n", "yolov8n_pt"])
def test_person_rows_are_not_faces(exported, square_photos, name, backend):  # type: ignore[no-untyped-def]
    kind = MODELS[name][0]
    path = exported[f"{name}_fixed"] if backend == "yolov8n" else exported[name]
    detector = build_detector(backend, model_path=str(path), score_threshold=THRESHOLDS[kind])
    assert detector.face_classes == [1]
    ours = [_rows(f.boxes) for f in detector.detect_faces(square_photos)]
    # the reference runs the file the backend runs (ultralytics' PyTorch end-to-end head picks its top rows per class
    # kept, its ONNX export over all classes)
    faces = _reference(path, square_photos, THRESHOLDS[kind], [1])
    persons = _reference(path, square_photos, THRESHOLDS[kind], [0])
    assert sum(len(p) for p in persons) > 0 and sum(len(f) for f in faces) > 0  # both classes fire: a real test
    for mine, theirs in zip(ours, faces):
        assert len(mine) == len(theirs)
        np.testing.assert_allclose(mine, theirs, atol=RUNTIME_TOLERANCE_PX)


@pytest.mark.slow
@pytest.mark.parametrize("backend, suffix", [("yolov8n", "_fixed"), ("yolov8n_pt", "")])
def test_a_file_without_a_face_class_is_refused_listing_its_classes(exported, backend, suffix):  # type: ignore[no-untyped-def]
    with pytest.raises(ModelFormatError, match="none of its classes is a face .*'happy'.*classes="):
        build_detector(backend, model_path=str(exported[f"yolov8n_expressions{suffix}"]))


@pytest.mark.slow
@pytest.mark.parametrize("backend, suffix", [("yolov8n", "_fixed"), ("yolov8n_pt", "")])
def test_classes_names_which_expressions_count_as_faces(exported, square_photos, backend, suffix):  # type: ignore[no-untyped-def]
    path = exported[f"yolov8n_expressions{suffix}"]
    detector = build_detector(backend, model_path=str(path), classes=["happy", "sad"],
                              score_threshold=THRESHOLDS["detect"])
    assert detector.face_classes == [4, 6]
    theirs = _reference(path, square_photos, THRESHOLDS["detect"], [4, 6])
    assert sum(len(t) for t in theirs) > 0
    for mine, reference in zip(detector.detect_faces(square_photos), theirs):
        assert len(mine) == len(reference)
        np.testing.assert_allclose(_rows(mine.boxes), reference, atol=RUNTIME_TOLERANCE_PX)


@pytest.mark.parametrize("names, classes, expected", [
    (None, None, None),  # a file without names: a one-class face model
    ({0: "0"}, None, None),  # one class named by its id (yolov8-face checkpoints): a one-class face model
    ({0: "face"}, None, [0]),
    (PERSON_FACE, None, [1]),
    ({0: "human_face", 1: "surface"}, None, [0]),
    (EXPRESSIONS, ["happy", "SAD"], [4, 6]),
    (EXPRESSIONS, [7, 0], [0, 7]),
    (None, [0], [0]),
])
def test_face_classes_by_name_or_by_choice(names, classes, expected):  # type: ignore[no-untyped-def]
    assert face_class_ids(names, classes, "m.onnx") == expected


@pytest.mark.parametrize("names, classes, error, message", [
    (EXPRESSIONS, None, ModelFormatError, r"m.onnx: none of its classes is a face \(0: 'anger'.*7: 'surprise'\)"),
    ({0: "person", 1: "car"}, None, ModelFormatError, "classes=\\[...\\]"),
    ({0: "0", 1: "1"}, None, ModelFormatError, "none of its classes is a face"),  # unnamed classes: which is a face?
    (EXPRESSIONS, ["smile"], ArgumentError, "'smile' is not a class of m.onnx"),
    (PERSON_FACE, [5], ArgumentError, "5 is not a class"),
])
def test_no_face_class_is_refused(names, classes, error, message):  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        face_class_ids(names, classes, "m.onnx")
