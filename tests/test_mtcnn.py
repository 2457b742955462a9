"""MTCNN backend (the ``mtcnn`` package): faces on real photos, landmark convention, batching per image size."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from deepbatch.detectors import DETECTORS
from deepbatch.errors import MissingDependencyError
from deepbatch.optional import install_command

# Frames of one size go through the package in one stacked tensor: TensorFlow's convolutions may sum in another
# order for a stack than for one image, which moves a point by ~3e-5 px (measured).
STACKED_TOLERANCE_PX = 1e-3


def skip_without_mtcnn() -> None:
    """Skip without importing the package: the backend imports it itself, after triton (see import_mtcnn)."""
    if importlib.util.find_spec("mtcnn") is None:
        pytest.skip("the MTCNN backend needs deepbatch[mtcnn]")


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    skip_without_mtcnn()
    return DETECTORS.create("mtcnn")


def photo(dataset_dir: Path, name: str, width: int = 800) -> np.ndarray:
    """A test photo scaled to ``width`` pixels (MTCNN's pyramid on a full 2,000-pixel photo takes seconds)."""
    image = cv2.imread(str(dataset_dir / name))
    return cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])))


@pytest.fixture(scope="module")
def unpadded():  # type: ignore[no-untyped-def]
    skip_without_mtcnn()
    return DETECTORS.create("mtcnn", border=0.0)


@pytest.fixture(scope="module")
def frames(dataset_dir: Path) -> List[np.ndarray]:
    return [cv2.resize(cv2.imread(str(dataset_dir / n)), (480, 360)) for n in ("couple.jpg", "img1.jpg", "img3.jpg")]


@pytest.mark.parametrize("name, expected", [("couple.jpg", 2), ("img1.jpg", 1)])
def test_finds_the_faces_of_a_photo(detector, dataset_dir, name, expected):  # type: ignore[no-untyped-def]
    assert len(detector.detect_faces([photo(dataset_dir, name)])[0]) == expected


def test_landmarks_are_the_packages_keypoints_seen_from_the_person(unpadded, dataset_dir):  # type: ignore[no-untyped-def]
    """The package names keypoints from the observer's side: its ``right_eye`` is the person's left eye."""
    image = photo(dataset_dir, "img1.jpg")
    own = unpadded.model.detect_faces(np.ascontiguousarray(image[..., ::-1]))[0]["keypoints"]
    landmarks = unpadded.detect_faces([image])[0].landmarks[0]
    person_order = [own[k] for k in ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")]
    np.testing.assert_allclose(landmarks, person_order, atol=0.5)  # the package's JSON rounds to whole pixels
    assert landmarks[0, 0] > landmarks[1, 0]  # the person's left eye appears on the right of the picture


def test_frames_of_one_size_run_in_one_call_and_match_single_calls(detector, frames, monkeypatch):  # type: ignore[no-untyped-def]
    calls = []
    original = detector.model.detect_faces
    monkeypatch.setattr(detector.model, "detect_faces", lambda images, **kw: calls.append(len(images)) or original(
        images, **kw))
    batched = detector.detect_faces(frames, batch_size=len(frames))
    assert calls == [len(frames)]
    for image, faces in zip(frames, batched):
        alone = detector.detect_faces([image])[0]
        assert len(faces) == len(alone)
        np.testing.assert_allclose(faces.boxes, alone.boxes, atol=STACKED_TOLERANCE_PX)
        np.testing.assert_allclose(faces.landmarks, alone.landmarks, atol=STACKED_TOLERANCE_PX)


def test_a_chunk_runs_one_call_per_image_size(detector, frames, monkeypatch):  # type: ignore[no-untyped-def]
    calls = []
    original = detector.model.detect_faces
    monkeypatch.setattr(detector.model, "detect_faces", lambda images, **kw: calls.append(len(images)) or original(
        images, **kw))
    small = cv2.resize(frames[0], (240, 180))
    results = detector.detect_faces([frames[0], small, frames[1], small], batch_size=4)
    assert sorted(calls) == [2, 2] and len(results) == 4
    assert len(results[0]) == 2 and len(results[2]) == 1


@pytest.mark.parametrize("border, expected", [(0.5, 5), (0.0, 4)])
def test_border_finds_the_face_cut_by_the_edge(detector, unpadded, dataset_dir, border, expected):  # type: ignore[no-untyped-def]
    """DeepFace's border test photo: with DeepFace's black border MTCNN also finds the face cut by the right edge."""
    image = cv2.imread(str(dataset_dir / "selfie-many-people.jpg"))
    faces = (detector if border else unpadded).detect_faces([image])[0]
    assert len(faces) == expected
    height, width = image.shape[:2]
    assert faces.boxes[:, :2].min() >= 0 and faces.boxes[:, 2].max() <= width and faces.boxes[:, 3].max() <= height


def test_padded_and_unpadded_find_the_same_face_in_the_same_place(detector, unpadded, dataset_dir):  # type: ignore[no-untyped-def]
    image = photo(dataset_dir, "img1.jpg")
    padded, plain = detector.detect_faces([image])[0], unpadded.detect_faces([image])[0]
    assert len(padded) == len(plain) == 1
    # The border shifts MTCNN's image pyramid, which moves each point by up to ~2% of the face's width (measured).
    width = float(plain.boxes[0, 2] - plain.boxes[0, 0])
    np.testing.assert_allclose(padded.landmarks, plain.landmarks, atol=0.03 * width)


def test_wrong_number_of_thresholds_is_refused(detector):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="three scores"):
        DETECTORS.create("mtcnn", thresholds=(0.6, 0.7))


def test_missing_package_names_the_extra(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # makes `import mtcnn` raise ImportError
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("mtcnn"))):
        DETECTORS.create("mtcnn")


@pytest.mark.parametrize("height, width", [(1200, 1600), (6000, 8000), (9000, 12000)])
def test_large_images_start_the_pyramid_whole_steps_down_within_the_budget(height: int, width: int) -> None:
    from deepbatch.detectors.mtcnn import DEFAULT_MAX_PIXELS, _pyramid_start

    shrunk = _pyramid_start(height, width, 0.709, DEFAULT_MAX_PIXELS)
    assert shrunk[0] * shrunk[1] <= DEFAULT_MAX_PIXELS
    steps = np.log(shrunk[0] / height) / np.log(0.709)
    assert abs(steps - round(steps)) < 0.01 and (round(steps) == 0) == (height * width <= DEFAULT_MAX_PIXELS)
    assert _pyramid_start(height, width, 0.709, None) == (height, width)


def test_the_pixel_budget_keeps_the_faces_of_the_largest_photo(detector, dataset_dir):  # type: ignore[no-untyped-def]
    """img40 (14 megapixels, 56 with the border) runs 5 pyramid steps down; its faces stay where they were."""
    image = cv2.imread(str(dataset_dir / "img40.jpg"))
    bounded = detector.detect_faces([image])[0]
    whole = DETECTORS.create("mtcnn", max_pixels=None).detect_faces([image])[0]
    assert len(bounded) == len(whole) > 0
    for box in whole.boxes:
        x1, y1 = np.maximum(box[:2], bounded.boxes[:, :2]).T
        x2, y2 = np.minimum(box[2:], bounded.boxes[:, 2:]).T
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        areas = np.prod(bounded.boxes[:, 2:] - bounded.boxes[:, :2], axis=1)
        assert (inter / (areas + np.prod(box[2:] - box[:2]) - inter)).max() >= 0.75
