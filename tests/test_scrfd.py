"""SCRFD on the real shared weights: face counts, real batches, other input sizes, stock and keypoint-less exports."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT

import deepbatch
from deepbatch.detectors import build_detector

with open(ROOT / "tests" / "dataset" / "expected_faces.csv") as table:
    EXPECTED = {row["file"]: int(row["faces"]) for row in csv.DictReader(table)}
SAME_GRAPH_TOLERANCE_PX = 1e-3  # the same weights in another graph layout: only float summation order may differ


@pytest.fixture(scope="module")
def all_photos(dataset_dir: Path) -> list:
    return [str(dataset_dir / name) for name in sorted(EXPECTED)]


def test_faces_per_photo_in_one_batched_call(all_photos):  # type: ignore[no-untyped-def]
    results = deepbatch.extract_faces(all_photos, detector_backend="scrfd_500m", batch_size=32)
    found = {Path(p).name: len(faces) for p, faces in zip(all_photos, results)}
    assert found == EXPECTED


@pytest.mark.parametrize("name", ["scrfd_500m", "scrfd_2.5g"])
@pytest.mark.parametrize("photo, count", [("couple.jpg", 2), ("selfie-many-people.jpg", 6), ("img1.jpg", 1)])
def test_shared_weights_find_the_known_faces(name, photo, count, dataset_dir):  # type: ignore[no-untyped-def]
    image = cv2.imread(str(dataset_dir / photo))
    assert len(build_detector(name).detect_faces([image])[0]) == count


def test_batch_one_export_runs_a_batch_of_32_in_one_call(dataset_dir):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_500m")
    assert detector.model.input_shape[0] != 1  # declared [1, 3, 640, 640] in the file, dynamic once loaded
    images = [cv2.imread(str(p)) for p in sorted(dataset_dir.glob("img*.jpg"))[:32]]
    calls = detector.model.run_calls
    detector.detect_faces(images, batch_size=32)
    assert detector.model.run_calls - calls == 1
    assert detector.model.last_batch_size == 32


def test_chunks_of_batch_size_are_one_call_each(dataset_dir):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_500m")
    images = [cv2.imread(str(p)) for p in sorted(dataset_dir.glob("img*.jpg"))[:10]]
    calls = detector.model.run_calls
    detector.detect_faces(images, batch_size=4)
    assert detector.model.run_calls - calls == 3


@pytest.mark.parametrize("size", [320, 480, (640, 480)])
def test_other_input_sizes(size, dataset_dir):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_500m", input_size=size)
    faces = detector.detect_faces([cv2.imread(str(dataset_dir / "couple.jpg"))])[0]
    assert len(faces) == 2
    assert detector.model.last_batch_size == 1


def test_input_size_must_be_a_multiple_of_32():  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="multiples of 32"):
        build_detector("scrfd_500m", input_size=300)


def test_stock_flattening_export_is_repaired_not_mixed(generated_models, parity_images):  # type: ignore[no-untyped-def]
    stock = build_detector("scrfd_10g", **generated_models["scrfd_10g"])
    assert stock.model.layout == "flattened"
    assert stock.model.mode == "repaired" and "Reshape" in stock.model.repair_description
    reference = build_detector("scrfd_500m")
    for ours, theirs in zip(stock.detect_faces(parity_images), reference.detect_faces(parity_images)):
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=SAME_GRAPH_TOLERANCE_PX)
        np.testing.assert_allclose(ours.landmarks, theirs.landmarks, atol=SAME_GRAPH_TOLERANCE_PX)


def test_export_without_keypoints_gives_boxes_only(generated_models, dataset_dir):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_34g", **generated_models["scrfd_34g"])
    faces = detector.detect_faces([cv2.imread(str(dataset_dir / "couple.jpg"))])[0]
    assert len(faces) == 2 and faces.landmarks is None and not detector.has_landmarks
    area = deepbatch.extract_faces(str(dataset_dir / "couple.jpg"), detector_backend=detector)[0]["facial_area"]
    assert area["left_eye"] is None and "nose" not in area


# InsightFace's own decoder (insightface.model_zoo.scrfd.SCRFD.forward) and deepbatch's on the same canvas: float32
# arithmetic in another order.
INSIGHTFACE_DECODE_PX = 1e-3
# Whole detections on the original photos: InsightFace truncates the resized size and maps both axes back with the
# height's scale, deepbatch uses each axis' own scale and clips to the image, and InsightFace's NMS measures overlap
# with its +1 pixel convention: up to ~1.5 canvas pixels on the 64 photos.
INSIGHTFACE_DETECT_CANVAS_PX = 2.0


@pytest.fixture(scope="module")
def insightface_scrfd():  # type: ignore[no-untyped-def]
    module = pytest.importorskip("insightface.model_zoo.scrfd", reason="insightface is not installed (make "
                                 "install-test installs it)")
    return module.SCRFD


def _on_canvas(image: np.ndarray, side: int = 640) -> np.ndarray:
    """The photo fitted into a side x side canvas at its top-left corner, zero padded: the canvas InsightFace's
    detect builds, so both decoders see the same pixels."""
    scale = side / max(image.shape[:2])
    fitted = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                        interpolation=cv2.INTER_AREA)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[: fitted.shape[0], : fitted.shape[1]] = fitted
    return canvas


@pytest.mark.parametrize("name", ["scrfd_500m", pytest.param("scrfd_2.5g", marks=pytest.mark.slow)])
def test_candidates_are_those_of_insightfaces_own_decoder(insightface_scrfd, all_photos, name):  # type: ignore[no-untyped-def]
    """Every candidate above 0.5 of each of the 64 photos, before NMS: scores, boxes and keypoints as InsightFace's
    ``SCRFD.forward`` decodes them from the same file."""
    ours = build_detector(name)
    reference = insightface_scrfd(str(ours.model.path))
    reference.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    total = 0
    for path in all_photos:
        canvas = _on_canvas(cv2.imread(path))
        scores, boxes, points = (np.concatenate(part) for part in reference.forward(canvas, 0.5))
        prepared = ours.prepare_batch([canvas])
        found = ours.candidates(ours.model.run(prepared.blob))
        order, their_order = np.argsort(-found.scores, kind="stable"), np.argsort(-scores[:, 0], kind="stable")
        assert len(order) == len(their_order), path
        np.testing.assert_allclose(found.scores[order], scores[their_order, 0], atol=1e-6)
        np.testing.assert_allclose(found.boxes[order], boxes[their_order], atol=INSIGHTFACE_DECODE_PX)
        person_to_observer = found.landmarks[:, [1, 0, 2, 4, 3]]  # InsightFace keeps the observer's order
        np.testing.assert_allclose(person_to_observer[order], points[their_order], atol=INSIGHTFACE_DECODE_PX)
        total += len(order)
    assert total > 74  # every face of the 64 photos has at least one candidate


def test_detections_match_insightfaces_detect_on_the_photos(insightface_scrfd, all_photos):  # type: ignore[no-untyped-def]
    """Whole detections on the 64 original photos: the same faces, boxes within a few canvas pixels."""
    ours = build_detector("scrfd_500m")
    reference = insightface_scrfd(str(ours.model.path))
    reference.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    for path in all_photos:
        image = cv2.imread(path)
        boxes, _ = reference.detect(image, input_size=(640, 640))
        faces = ours.detect_faces([image])[0]
        assert len(faces) == len(boxes), path
        if not len(faces):
            continue
        height, width = image.shape[:2]
        clipped = np.clip(boxes[:, :4], 0, [width, height, width, height])  # InsightFace does not clip
        gap = np.abs(faces.boxes[:, None, :] - clipped[None]).max(axis=2)
        nearest = gap.argmin(axis=1)
        assert len(set(nearest.tolist())) == len(nearest), path  # one reference face per face
        canvas_px = gap[np.arange(len(nearest)), nearest].max() * 640 / max(image.shape[:2])
        assert canvas_px <= INSIGHTFACE_DETECT_CANVAS_PX, path


def test_unverifiable_batch_repair_falls_back_to_per_image(tmp_path, caplog):  # type: ignore[no-untyped-def]
    """A batch-1 graph that subtracts the batch mean mixes frames once batched: the load-time check catches it."""
    import onnx
    from onnx import TensorProto, helper

    from deepbatch.runtime.model import OnnxModel

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[0], keepdims=1),
         helper.make_node("Sub", ["x", "mean"], ["y"])],
        "batch_mean", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    path = tmp_path / "mixing.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    with caplog.at_level(logging.WARNING):
        model = OnnxModel(path, providers="cpu", probe_shape=(3, 4, 4))
    assert model.per_image and "one image per call" in caplog.text
    frames = np.random.default_rng(0).normal(size=(3, 3, 4, 4)).astype(np.float32)
    batched = model.run(frames)[0]
    for i in range(3):
        np.testing.assert_array_equal(batched[i], model.run(frames[i : i + 1])[0][0])


def test_raw_nchw_heads_give_the_faces_of_the_original(generated_models, parity_images, tmp_path):  # type: ignore[no-untyped-def]
    from models import scrfd_nchw_heads

    weights = Path(build_detector("scrfd_500m").model.path)
    heads = build_detector("scrfd_500m", model_path=str(scrfd_nchw_heads(weights, tmp_path / "nchw.onnx")))
    assert heads.has_landmarks
    for ours, theirs in zip(heads.detect_faces(parity_images), build_detector("scrfd_500m").detect_faces(
            parity_images)):
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=SAME_GRAPH_TOLERANCE_PX)
        np.testing.assert_allclose(ours.landmarks, theirs.landmarks, atol=SAME_GRAPH_TOLERANCE_PX)


@pytest.mark.parametrize("path, mode", [(None, "repaired"), ("scrfd_2.5g_fixed640_resize.onnx", "repaired")])
def test_repr_shows_the_batching_mode(weights_dir, path, mode):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_2.5g", **({"model_path": str(weights_dir / path)} if path else {}))
    assert f"batching={mode!r}" in repr(detector) and detector.batching.startswith(f"{mode} (")
