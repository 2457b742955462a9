"""YOLO face backends: numpy decoding of both export layouts on graphs with known outputs, agreement with SCRFD on a
YOLO-layout graph derived from it, and the ultralytics runtime against the ONNX one on the same exported model."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import onnx
import pytest
from models import yolo_face_from_scrfd
from onnx import helper, numpy_helper

from deepbatch.detectors import DETECTORS, build_detector
from deepbatch.detectors.yolo import DFL_BINS, YOLO_ALIASES, YOLO_VARIANTS, YoloFace
from deepbatch.errors import MissingDependencyError, ModelFormatError, WeightsNotFoundError
from deepbatch.optional import install_command

# Decoding is float32 arithmetic on exactly representable inputs: results agree to rounding.
DECODE_TOLERANCE_PX = 1e-3
# A score equal to an image's mean brightness is a float32 mean over 640 * 640 * 3 pixels: exact for white (1.0),
# off by ~1e-3 for a grey whose value / 255 is not a binary fraction.
BRIGHTNESS_TOLERANCE = 2e-3
# The derived graph rescales YOLO's x/255 input into SCRFD's (x - 127.5)/128 in float32, which moves scores by ~1e-7
# and boxes by ~1e-4 px against SCRFD fed directly.
DERIVED_TOLERANCE_PX = 1e-2
DERIVED_SCORE_TOLERANCE = 1e-5
# Same canvas, same graph, two runtimes (PyTorch with fused Conv+BN vs ONNX Runtime): float32 sums in another order.
RUNTIME_TOLERANCE_PX = 0.05
RUNTIME_SCORE_TOLERANCE = 1e-4
# ultralytics rounds the resized size (ours truncates): on a photo scaled by ~0.3 that moves the content by up to one
# canvas pixel, about 3 original pixels, and changes the resampled pixels a little.
LETTERBOX_TOLERANCE_PX = 8.0

# Observer-ordered keypoints (image-left eye first) and the person-relative order deepbatch reports.
KEYPOINTS = np.array([[300, 220], [340, 220], [320, 250], [305, 280], [335, 280]], np.float32)
PERSON_ORDER = KEYPOINTS[[1, 0, 2, 4, 3]]


def _save(nodes: list, initializers: list, outputs: list, target: Path, size: int = 640) -> Path:
    graph = helper.make_graph(nodes, target.stem, [helper.make_tensor_value_info(
        "images", onnx.TensorProto.FLOAT, ["batch", 3, size, size])], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def _mean_driven(target: Path, slope: np.ndarray, offset: np.ndarray, size: int = 640, transpose: bool = False) -> Path:
    """A graph with one ``(B, C, N)`` output ``mean(image) * slope + offset`` (``(B, N, C)`` with ``transpose``):
    each image's outputs depend on its own brightness only."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["brightness"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Squeeze", ["brightness", "squeeze_axes"], ["brightness_per_image"]),  # (B, 1, 1)
             helper.make_node("Mul", ["brightness_per_image", "slope"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], ["output0" if not transpose else "rows"])]
    if transpose:
        nodes.append(helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1]))
    initializers = [numpy_helper.from_array(slope.astype(np.float32), "slope"),
                    numpy_helper.from_array(offset.astype(np.float32), "offset"),
                    numpy_helper.from_array(np.array([3], np.int64), "squeeze_axes")]
    shape = ["batch", *(slope.shape[::-1] if transpose else slope.shape)]
    return _save(nodes, initializers, [helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, shape)],
                 target, size)


def decoded_graph(target: Path, keypoint_values: int = 3, transpose: bool = False) -> Path:
    """Ultralytics' decoded layout with three candidates; scores are the image's mean brightness (in [0, 1]) times
    1, 0.9 and 0.5. Candidate 1 overlaps candidate 0 (NMS removes it); candidate 0 carries ``KEYPOINTS``."""
    boxes = np.array([[320, 240, 100, 120], [322, 242, 100, 120], [100, 100, 40, 40]], np.float32)
    keypoints = np.zeros((3, 5, keypoint_values), np.float32)
    keypoints[:, :, :2] = KEYPOINTS
    keypoints[:, :, 2:] = 0.9
    offset = np.concatenate([boxes, np.zeros((3, 1)), keypoints.reshape(3, -1)], axis=1).T  # (C, N)
    slope = np.zeros_like(offset)
    slope[4] = [1.0, 0.9, 0.5]
    return _mean_driven(target, slope, offset, transpose=transpose)


def raw_heads_graph(target: Path, size: int = 64) -> Path:
    """Raw per-stride heads (DFL bins, score logit, keypoint offsets) with one face in cell (x=1, y=2) of stride 16:
    box sides 1 stride from the cell centre, score logit ``20 * brightness - 10``, keypoints ``RAW_KEYPOINTS``."""
    outputs, nodes, initializers = [], [], []
    nodes.append(helper.make_node("ReduceMean", ["images"], ["brightness"], axes=[1, 2, 3], keepdims=1))
    for stride in (8, 16, 32):
        cells = size // stride
        offset = np.zeros((4 * DFL_BINS + 16, cells, cells), np.float32)
        slope = np.zeros_like(offset)
        offset[4 * DFL_BINS] = -20.0
        if stride == 16:
            for side in range(4):
                offset[side * DFL_BINS + 1, 2, 1] = 30.0  # all the weight on bin 1: a side of 1 stride
            offset[4 * DFL_BINS, 2, 1], slope[4 * DFL_BINS, 2, 1] = -10.0, 20.0
            offsets = np.array([[-0.25, -0.25], [0.75, -0.25], [0.25, 0.25], [-0.125, 0.5], [0.625, 0.5]])
            offset[4 * DFL_BINS + 1 :, 2, 1] = np.concatenate([offsets, np.ones((5, 1))], axis=1).ravel()
        names = [f"slope_{stride}", f"offset_{stride}", f"scaled_{stride}", f"head_{stride}"]
        initializers += [numpy_helper.from_array(slope, names[0]), numpy_helper.from_array(offset, names[1])]
        nodes += [helper.make_node("Mul", ["brightness", names[0]], [names[2]]),
                  helper.make_node("Add", [names[2], names[1]], [names[3]])]
        outputs.append(helper.make_tensor_value_info(names[3], onnx.TensorProto.FLOAT,
                                                     ["batch", 4 * DFL_BINS + 16, cells, cells]))
    return _save(nodes, initializers, outputs, target, size)


# Cell (1, 2) of stride 16 has its centre at (24, 40); (2 * offset + cell) * 16 for the keypoints.
RAW_BOX = np.array([8, 24, 40, 56], np.float32)
RAW_KEYPOINTS = np.array([[8, 24], [40, 24], [24, 40], [12, 48], [36, 48]], np.float32)


def uniform(value: int, size: int = 320) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> YoloFace:
    return YoloFace(model_path=decoded_graph(tmp_path_factory.mktemp("yolo") / "decoded.onnx"))


def test_decoded_layout_gives_the_known_face_in_original_pixels(decoded):  # type: ignore[no-untyped-def]
    faces = decoded.detect_faces([uniform(255)])[0]  # 320 px image on a 640 canvas: original = canvas / 2
    np.testing.assert_allclose(faces.boxes, [[135, 90, 185, 150], [40, 40, 60, 60]], atol=DECODE_TOLERANCE_PX)
    np.testing.assert_allclose(faces.scores, [1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(faces.landmarks[0], PERSON_ORDER / 2, atol=DECODE_TOLERANCE_PX)


def test_decoded_layout_keeps_each_image_its_own_faces(decoded):  # type: ignore[no-untyped-def]
    bright, dim, dark = decoded.detect_faces([uniform(255), uniform(153), uniform(102)], batch_size=3)
    assert (len(bright), len(dim), len(dark)) == (2, 1, 0)  # brightness 1.0, 0.6, 0.4 against threshold 0.5
    np.testing.assert_allclose(dim.scores, [0.6], atol=BRIGHTNESS_TOLERANCE)


@pytest.mark.parametrize("transpose, keypoint_values", [(True, 3), (False, 2)])
def test_decoded_layout_variants_give_the_same_faces(tmp_path, decoded, transpose, keypoint_values):  # type: ignore[no-untyped-def]
    variant = YoloFace(model_path=decoded_graph(tmp_path / "variant.onnx", keypoint_values, transpose))
    expected = decoded.detect_faces([uniform(255)])[0]
    faces = variant.detect_faces([uniform(255)])[0]
    np.testing.assert_allclose(faces.boxes, expected.boxes, atol=DECODE_TOLERANCE_PX)
    np.testing.assert_allclose(faces.landmarks, expected.landmarks, atol=DECODE_TOLERANCE_PX)


def test_detection_only_export_gives_no_landmarks(tmp_path):  # type: ignore[no-untyped-def]
    boxes_and_scores = np.array([[320, 240, 100, 120, 0]], np.float32).T  # (5, 1)
    slope = np.zeros_like(boxes_and_scores)
    slope[4] = 1.0
    detector = YoloFace(model_path=_mean_driven(tmp_path / "detect.onnx", slope, boxes_and_scores))
    faces = detector.detect_faces([uniform(255)])[0]
    assert not detector.has_landmarks and faces.landmarks is None
    np.testing.assert_allclose(faces.boxes, [[135, 90, 185, 150]], atol=DECODE_TOLERANCE_PX)


def test_raw_heads_decode_dfl_boxes_and_keypoint_offsets(tmp_path):  # type: ignore[no-untyped-def]
    detector = YoloFace(model_path=raw_heads_graph(tmp_path / "raw.onnx"), input_size=64)
    faces, none = detector.detect_faces([uniform(255, 64), uniform(102, 64)])
    assert len(none) == 0  # logit 20 * 0.4 - 10 = -2: score 0.12
    np.testing.assert_allclose(faces.boxes, [RAW_BOX], atol=DECODE_TOLERANCE_PX)
    np.testing.assert_allclose(faces.scores, [1 / (1 + np.exp(-10.0))], atol=1e-6)
    np.testing.assert_allclose(faces.landmarks, [RAW_KEYPOINTS[[1, 0, 2, 4, 3]]], atol=DECODE_TOLERANCE_PX)


def test_unknown_output_layout_is_refused(tmp_path):  # type: ignore[no-untyped-def]
    slope = np.zeros((7, 3), np.float32)
    detector = YoloFace(model_path=_mean_driven(tmp_path / "bad.onnx", slope, slope))
    with pytest.raises(ModelFormatError, match="channels"):
        detector.detect_faces([uniform(255)])


@pytest.fixture(scope="module")
def derived_export(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Path:
    return yolo_face_from_scrfd(weights_dir / "scrfd_500m_kps.onnx", tmp_path_factory.mktemp("derived") / "y.onnx")


@pytest.fixture(scope="module")
def square_photos(dataset_dir: Path) -> List[np.ndarray]:
    """Photos resized to the 640 canvas, so every letterbox convention gives the same pixels."""
    return [cv2.resize(cv2.imread(str(dataset_dir / n)), (640, 640)) for n in ("couple.jpg", "img1.jpg", "img3.jpg")]


def test_yolo_layout_of_scrfd_finds_what_scrfd_finds(derived_export, square_photos):  # type: ignore[no-untyped-def]
    yolo = YoloFace(model_path=derived_export).detect_faces(square_photos)
    scrfd = build_detector("scrfd_500m").detect_faces(square_photos)
    assert [len(f) for f in yolo] == [len(f) for f in scrfd] and sum(len(f) for f in yolo) >= 4
    for ours, reference in zip(yolo, scrfd):
        np.testing.assert_allclose(ours.boxes, reference.boxes, atol=DERIVED_TOLERANCE_PX)
        np.testing.assert_allclose(ours.scores, reference.scores, atol=DERIVED_SCORE_TOLERANCE)
        np.testing.assert_allclose(ours.landmarks, reference.landmarks, atol=DERIVED_TOLERANCE_PX)


@pytest.mark.parametrize("name", sorted(YOLO_VARIANTS))
def test_variants_are_registered_for_both_runtimes_with_published_files(name):  # type: ignore[no-untyped-def]
    onnx_weights = DETECTORS.entry(name).defaults["weights"]
    pt_weights = DETECTORS.entry(f"{name}_pt").defaults["weights"]
    assert onnx_weights.filename == f"{YOLO_VARIANTS[name]}.onnx" and pt_weights.filename == f"{YOLO_VARIANTS[name]}.pt"
    assert onnx_weights.homepage.endswith(onnx_weights.filename) and pt_weights.homepage.endswith(pt_weights.filename)


@pytest.mark.parametrize("alias, target", sorted(YOLO_ALIASES.items()))
def test_deepface_names_are_aliases(alias, target):  # type: ignore[no-untyped-def]
    assert DETECTORS.canonical(alias) == target


def test_missing_weights_name_the_file_and_its_source(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="yolov11m-face.onnx.*akanametov/yolo-face"):
        DETECTORS.create("yolov11m")


def test_missing_ultralytics_names_the_extra(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # makes `import ultralytics` raise ImportError
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("yolo"))):
        DETECTORS.create("yolov8n_pt", model_path=__file__)


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """A YOLOv8n pose model with 5 keypoints and one class built from ultralytics' YAML, saved as .pt and exported
    to ONNX with a dynamic batch. Its random weights are rescaled at the head so scores spread over (0.3, 0.9) and
    depend on the image: the decoded faces mean nothing, but both runtimes must find the same ones."""
    ultralytics = pytest.importorskip("ultralytics", reason="the ultralytics runtime needs deepbatch[yolo]")
    import torch
    import yaml

    folder = tmp_path_factory.mktemp("pose")
    config = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-pose.yaml").read_text())
    config.update(nc=1, kpt_shape=[5, 3])
    (folder / "yolov8n-face.yaml").write_text(yaml.safe_dump(config))
    model = ultralytics.YOLO(str(folder / "yolov8n-face.yaml"), task="pose")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.model.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator)
                                   * (2.0 / layer.weight[0].numel()) ** 0.5)
                if layer.bias is not None:
                    layer.bias.zero_()
        head = model.model.model[-1]
        for branch in (head.cv2, head.cv3, head.cv4):
            for stack in branch:
                stack[-1].weight.mul_(30.0)
    model.save(str(folder / "yolov8n-face.pt"))  # stored in float16, as ultralytics stores checkpoints
    exported = ultralytics.YOLO(str(folder / "yolov8n-face.pt")).export(format="onnx", dynamic=True, imgsz=640,
                                                                        simplify=False)
    return {"pt": folder / "yolov8n-face.pt", "onnx": Path(exported)}


def test_ultralytics_and_onnx_runtime_agree_on_one_export(pose_model, square_photos):  # type: ignore[no-untyped-def]
    options = dict(score_threshold=0.8, nms_threshold=0.4)
    by_ultralytics = build_detector("yolov8n_pt", model_path=str(pose_model["pt"]), **options).detect_faces(
        square_photos)
    by_onnx = build_detector("yolov8n", model_path=str(pose_model["onnx"]), **options).detect_faces(square_photos)
    assert sum(len(f) for f in by_onnx) >= 3
    for ours, theirs in zip(by_onnx, by_ultralytics):
        assert len(ours) == len(theirs)
        order, their_order = (np.lexsort((f.boxes[:, 1], f.boxes[:, 0])) for f in (ours, theirs))
        np.testing.assert_allclose(ours.scores[order], theirs.scores[their_order], atol=RUNTIME_SCORE_TOLERANCE)
        np.testing.assert_allclose(ours.boxes[order], theirs.boxes[their_order], atol=RUNTIME_TOLERANCE_PX)
        inside = np.all((ours.landmarks[order] >= 0) & (ours.landmarks[order] <= 640), axis=-1)
        np.testing.assert_allclose(ours.landmarks[order][inside], theirs.landmarks[their_order][inside],
                                   atol=RUNTIME_TOLERANCE_PX)  # ultralytics clips keypoints to the image


def test_ultralytics_runs_a_batch_in_one_predict_call(pose_model, square_photos, monkeypatch):  # type: ignore[no-untyped-def]
    detector = DETECTORS.create("yolov8n_pt", model_path=str(pose_model["pt"]))
    calls = []
    original = detector.model.predict
    monkeypatch.setattr(detector.model, "predict", lambda images, **kw: calls.append(len(images)) or original(
        images, **kw))
    assert len(detector.detect_faces(square_photos * 2, batch_size=4)) == 6
    assert calls == [4, 2]


def test_ultralytics_matches_onnx_runtime_on_photos(derived_export, dataset_dir):  # type: ignore[no-untyped-def]
    pytest.importorskip("ultralytics", reason="the ultralytics runtime needs deepbatch[yolo]")
    photo = cv2.imread(str(dataset_dir / "couple.jpg"))
    by_ultralytics = build_detector("yolov8n_pt", model_path=str(derived_export)).detect_faces([photo])[0]
    by_onnx = build_detector("yolov8n", model_path=str(derived_export)).detect_faces([photo])[0]
    assert len(by_onnx) == len(by_ultralytics) == 2
    order, their_order = np.argsort(by_onnx.boxes[:, 0]), np.argsort(by_ultralytics.boxes[:, 0])
    np.testing.assert_allclose(by_onnx.boxes[order], by_ultralytics.boxes[their_order], atol=LETTERBOX_TOLERANCE_PX)
    np.testing.assert_allclose(by_onnx.landmarks[order], by_ultralytics.landmarks[their_order],
                               atol=LETTERBOX_TOLERANCE_PX)


# Exports as users make them (ultralytics' exporter, dynamic and fixed batch) of detect, pose and NMS-free models.
EXPORT_KINDS = {"detect": "detect", "pose": "pose", "e2e": "end2end"}
EXPORTS = [f"{name}_{shape}" for name in EXPORT_KINDS for shape in ("dynamic", "fixed")]
# Score thresholds that keep a handful of the random-weight candidates per photo (the top ~0.1 % / ~5 %).
EXPORT_THRESHOLDS = {"detect": 0.95, "pose": 0.95, "e2e": 0.7}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    pytest.importorskip("ultralytics", reason="the ultralytics exporter needs deepbatch[yolo]")
    from models import ultralytics_face_exports

    return ultralytics_face_exports(tmp_path_factory.mktemp("exports"), EXPORT_KINDS)


def _sorted(faces):  # type: ignore[no-untyped-def]
    return np.lexsort((faces.boxes[:, 1], faces.boxes[:, 0]))


@pytest.mark.slow
@pytest.mark.parametrize("export", EXPORTS)
def test_exports_give_the_faces_ultralytics_gives(exports, export, square_photos):  # type: ignore[no-untyped-def]
    options = dict(model_path=str(exports[export]), score_threshold=EXPORT_THRESHOLDS[export.split("_")[0]])
    ours = build_detector("yolov8n", **options).detect_faces(square_photos)
    theirs = build_detector("yolov8n_pt", **options).detect_faces(square_photos)
    assert sum(len(f) for f in ours) >= 3
    for mine, reference in zip(ours, theirs):
        assert len(mine) == len(reference)
        order, their_order = _sorted(mine), _sorted(reference)
        np.testing.assert_allclose(mine.boxes[order], reference.boxes[their_order], atol=RUNTIME_TOLERANCE_PX)
        np.testing.assert_allclose(mine.scores[order], reference.scores[their_order], atol=RUNTIME_SCORE_TOLERANCE)
        assert (mine.landmarks is None) == (reference.landmarks is None)


@pytest.mark.slow
@pytest.mark.parametrize("export, mode", [(name, "native" if name.endswith("dynamic") else "repaired")
                                          for name in EXPORTS])
def test_exports_load_in_the_mode_their_batch_axis_needs(exports, export, mode):  # type: ignore[no-untyped-def]
    detector = build_detector("yolov8n", model_path=str(exports[export]))
    assert detector.model.mode == mode
    assert repr(detector).endswith(f"batching={mode!r})")


@pytest.mark.slow
@pytest.mark.parametrize("export", [name for name in EXPORTS if name.endswith("dynamic")])
def test_anchor_grid_of_a_dynamic_export_is_not_rewritten(exports, export):  # type: ignore[no-untyped-def]
    """ultralytics builds its anchor grid with Reshape(arange(w) + 0.5, [1, -1]): that 1 is not a batch axis."""
    from deepbatch.runtime.surgery import make_batch_dynamic

    _, repair = make_batch_dynamic(onnx.load(str(exports[export])), body=True)
    assert repair.reshapes == [] and repair.resizes == []


@pytest.mark.slow
@pytest.mark.parametrize("export, landmarks", [("detect_dynamic", False), ("pose_dynamic", True),
                                               ("e2e_dynamic", False)])
@pytest.mark.parametrize("backend", ["yolov8n", "yolov8n_pt"])
def test_landmarks_follow_the_export_task(exports, export, landmarks, backend):  # type: ignore[no-untyped-def]
    assert build_detector(backend, model_path=str(exports[export])).has_landmarks is landmarks
