"""The detector contract, checked for every registered backend: batch results equal single-image results."""

from __future__ import annotations

from typing import Dict, List

import cv2
import numpy as np
import pytest
from conftest import ALL_DETECTORS, make_detector

from deepbatch.detectors import DETECTORS, OnnxDetector, build_detector
from deepbatch.ops.letterbox import letterbox
from deepbatch.structures import Faces

# Backends that batch whole chunks run the same letterboxed pixels through the same graph alone or in a batch; ONNX
# Runtime may order float sums differently per batch size, which moves a box by far less than 1e-3 px (SCRFD
# measures 0.0).
WHOLE_CHUNK_TOLERANCE_PX = 1e-3
# Looped backends run exactly the same computation for an image alone or in a batch.
LOOP_TOLERANCE_PX = 0.0
# Backends whose batched computation legitimately differs from the single-image one, with the reason.
BACKEND_TOLERANCE_PX: Dict[str, float] = {}
# Raw model outputs of frame i alone vs at position 7 of a batch of 16 different frames.
CROSS_FRAME_TOLERANCE = 1e-5

ONNX_DETECTORS = [n for n in ALL_DETECTORS if isinstance(DETECTORS.entry(n).factory, type)
                  and issubclass(DETECTORS.entry(n).factory, OnnxDetector)]


def tolerance_for(detector) -> float:  # type: ignore[no-untyped-def]
    default = WHOLE_CHUNK_TOLERANCE_PX if detector.batches_whole_chunks else LOOP_TOLERANCE_PX
    return BACKEND_TOLERANCE_PX.get(detector.name, default)


def assert_same_faces(batched: Faces, alone: Faces, tolerance: float) -> None:
    assert len(batched) == len(alone)
    np.testing.assert_allclose(batched.boxes, alone.boxes, atol=tolerance, rtol=0)
    np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5, rtol=0)
    assert (batched.landmarks is None) == (alone.landmarks is None)
    if batched.landmarks is not None:
        np.testing.assert_allclose(batched.landmarks, alone.landmarks, atol=tolerance, rtol=0)


def assert_found_faces(results: List[Faces], detector) -> None:  # type: ignore[no-untyped-def]
    """A comparison of empty results proves nothing: the parity photos hold faces every backend finds."""
    assert sum(len(faces) for faces in results) > 0, f"{detector.name} found no face; the comparison would be vacuous"


@pytest.fixture(scope="module")
def same_size_frames(parity_images: List[np.ndarray]) -> np.ndarray:
    return np.stack([cv2.resize(image, (480, 360)) for image in parity_images[:6]])


def test_batch_matches_single_image(detector, parity_images):  # type: ignore[no-untyped-def]
    batched = detector.detect_faces(parity_images, batch_size=len(parity_images))
    assert_found_faces(batched, detector)
    for image, faces in zip(parity_images, batched):
        assert_same_faces(faces, detector.detect_faces([image])[0], tolerance_for(detector))


def test_one_result_per_image_in_input_order(detector, parity_images):  # type: ignore[no-untyped-def]
    forward = detector.detect_faces(parity_images[:4], batch_size=4)
    backward = detector.detect_faces(parity_images[:4][::-1], batch_size=4)
    assert len(forward) == 4
    assert_found_faces(forward, detector)
    for a, b in zip(forward, backward[::-1]):
        assert_same_faces(a, b, tolerance_for(detector))


def test_chunking_does_not_change_results(detector, parity_images):  # type: ignore[no-untyped-def]
    whole = detector.detect_faces(parity_images, batch_size=len(parity_images))
    chunked = detector.detect_faces(parity_images, batch_size=4)
    assert_found_faces(whole, detector)
    for a, b in zip(whole, chunked):
        assert_same_faces(a, b, tolerance_for(detector))


def test_4d_array_matches_list(detector, same_size_frames):  # type: ignore[no-untyped-def]
    from_array = detector.detect_faces(same_size_frames)
    from_list = detector.detect_faces(list(same_size_frames))
    assert_found_faces(from_array, detector)
    for a, b in zip(from_array, from_list):
        assert_same_faces(a, b, 0.0)


def test_empty_list_gives_empty_list(detector):  # type: ignore[no-untyped-def]
    assert detector.detect_faces([]) == []


def test_blank_image_gives_no_face(detector):  # type: ignore[no-untyped-def]
    blank = np.full((240, 320, 3), 127, np.uint8)
    expected = 1 if detector.name == "skip" else 0  # skip reports the whole image as the face
    assert len(detector.detect_faces([blank])[0]) == expected


def test_faces_lie_inside_their_image(detector, parity_images):  # type: ignore[no-untyped-def]
    for image, faces in zip(parity_images, detector.detect_faces(parity_images)):
        height, width = image.shape[:2]
        assert np.all(faces.boxes >= 0)
        assert np.all(faces.boxes[:, [0, 2]] <= width) and np.all(faces.boxes[:, [1, 3]] <= height)
        assert np.all(faces.boxes[:, 2:] > faces.boxes[:, :2])


@pytest.mark.parametrize("name", ONNX_DETECTORS)
def test_model_outputs_do_not_leak_across_frames(name, generated_models, parity_images, dataset_dir):  # type: ignore[no-untyped-def]
    detector = make_detector(name, generated_models)
    frames = [cv2.imread(str(path)) for path in sorted(dataset_dir.glob("*.jpg"))[:16]]
    blob = letterbox(frames, detector.input_spec).blob
    in_batch = detector.model.run(blob)
    alone = detector.model.run(blob[7:8])
    for batched_output, single_output in zip(in_batch, alone):
        assert batched_output.shape[0] == 16
        np.testing.assert_allclose(batched_output[7], single_output[0], atol=CROSS_FRAME_TOLERANCE, rtol=0)


def test_left_eye_is_the_persons_left(detector, dataset_dir):  # type: ignore[no-untyped-def]
    """img1.jpg is a frontal portrait: the person's left eye appears at the larger x (models without landmarks
    report none)."""
    faces = detector.detect_faces([cv2.imread(str(dataset_dir / "img1.jpg"))])[0]
    if not detector.has_landmarks:
        assert faces.landmarks is None or not np.isfinite(faces.landmarks[:, :2]).any()
        return
    eyes = faces.landmarks[:, :2]
    found = eyes[np.all(np.isfinite(eyes), axis=(1, 2))]
    assert len(found) >= 1
    assert np.all(found[:, 0, 0] > found[:, 1, 0])


@pytest.mark.parametrize("name", ONNX_DETECTORS)
def test_score_threshold_above_one_keeps_no_candidate(name, generated_models, parity_images, monkeypatch):  # type: ignore[no-untyped-def]
    """Every ONNX backend's scores go through the base class's one threshold (scores are at most 1)."""
    detector = make_detector(name, generated_models)
    outputs = detector.model.run(letterbox(parity_images[:2], detector.input_spec).blob)
    assert detector.candidates(outputs).scores.size > 0  # there are faces to lose
    monkeypatch.setattr(detector, "score_threshold", 1.01)
    assert detector.candidates(outputs).scores.size == 0


# The chunk protocol: infer_batch(prepare_batch(images)) is detect_batch, split where the detector can.

@pytest.mark.parametrize("name", ["opencv", "scrfd_500m"])
def test_infer_of_prepared_chunk_equals_detect_faces(name, parity_images, weights_dir):  # type: ignore[no-untyped-def]
    detector = build_detector(name)
    images = parity_images[:3]
    expected = detector.detect_faces(images)
    assert_found_faces(expected, detector)
    for mine, theirs in zip(detector.infer_batch(detector.prepare_batch(images)), expected):
        assert_same_faces(mine, theirs, LOOP_TOLERANCE_PX)


def test_looped_detector_prepares_nothing_and_has_no_canvas(parity_images):  # type: ignore[no-untyped-def]
    detector = build_detector("opencv")
    images = parity_images[:2]
    assert detector.prepare_batch(images) is images and detector.canvas is None


def test_onnx_detector_prepares_a_blob_on_its_canvas(parity_images, weights_dir):  # type: ignore[no-untyped-def]
    detector = build_detector("scrfd_500m", input_size=(480, 320))
    prepared = detector.prepare_batch(parity_images[:2])
    assert detector.canvas is detector.input_spec and prepared.blob.shape == (2, 3, 320, 480)


@pytest.mark.parametrize("name", DETECTORS.names(aliases=False))
def test_the_former_name_native_batching_reads_batches_whole_chunks(name: str) -> None:
    factory = DETECTORS.entry(name).factory
    if not isinstance(factory, type):
        pytest.skip(f"{name} is registered by a function, not a class")
    with pytest.warns(DeprecationWarning, match="native_batching is deprecated: use batches_whole_chunks"):
        former = factory.native_batching
    assert former is factory.batches_whole_chunks


def test_a_backend_setting_native_batching_batches_whole_chunks() -> None:
    from deepbatch.detectors import Detector

    with pytest.warns(DeprecationWarning, match="native_batching is deprecated: set batches_whole_chunks"):
        class Former(Detector):
            native_batching = True

            def detect_batch(self, images):  # type: ignore[no-untyped-def]
                return [Faces.empty() for _ in images]

    assert Former.batches_whole_chunks is True and Former.designed_batching() == "one call per chunk"
    assert "native_batching" not in vars(Former)


@pytest.mark.parametrize("name, designed", [
    ("opencv", "loop (one image per call by design)"), ("skip", "loop (one image per call by design)"),
    ("ssd", "one call per chunk"), ("mtcnn", "one call per image size in a chunk"),
    ("fastmtcnn", "one call per image size in a chunk"), ("scrfd", None),
])
def test_how_a_backend_batches_by_design(name: str, designed: object) -> None:
    assert DETECTORS.entry(name).factory.designed_batching() == designed
