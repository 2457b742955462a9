"""``extract_faces``: DeepFace's arguments and result shape over single images and batches."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.errors import FaceNotDetectedError
from deepbatch.ops.align import ALIGNED_SIDE_MAX, ALIGNED_SIDE_MIN, ARCFACE_TEMPLATE, face_crops

FACIAL_AREA_KEYS = {"x", "y", "w", "h", "left_eye", "right_eye"}
FIVE_POINT_KEYS = FACIAL_AREA_KEYS | {"nose", "mouth_left", "mouth_right"}


@pytest.fixture(scope="module")
def couple(dataset_dir: Path) -> str:
    return str(dataset_dir / "couple.jpg")


@pytest.fixture(scope="module")
def blank() -> np.ndarray:
    return np.full((200, 300, 3), 90, np.uint8)


def test_single_image_gives_a_list_of_face_dicts(couple):  # type: ignore[no-untyped-def]
    faces = deepbatch.extract_faces(couple)
    assert len(faces) == 2
    assert set(faces[0]) == {"face", "facial_area", "confidence"}
    assert set(faces[0]["facial_area"]) == FIVE_POINT_KEYS
    assert all(isinstance(faces[0]["facial_area"][k], int) for k in ("x", "y", "w", "h"))
    assert isinstance(faces[0]["confidence"], float) and 0 < faces[0]["confidence"] <= 1


def test_batch_gives_one_list_per_image_in_order(couple, dataset_dir):  # type: ignore[no-untyped-def]
    selfie = str(dataset_dir / "selfie-many-people.jpg")
    results = deepbatch.extract_faces([couple, selfie, couple])
    assert [len(r) for r in results] == [2, 6, 2]
    assert results[0][0]["facial_area"] == results[2][0]["facial_area"]


def test_empty_list_gives_empty_list():  # type: ignore[no-untyped-def]
    assert deepbatch.extract_faces([]) == []


def test_4d_array_is_a_batch(couple):  # type: ignore[no-untyped-def]
    image = cv2.resize(cv2.imread(couple), (640, 448))
    results = deepbatch.extract_faces(np.stack([image, image]))
    assert [len(r) for r in results] == [2, 2]


@pytest.mark.parametrize("as_input", [
    lambda p: p,
    lambda p: Path(p),
    lambda p: cv2.imread(p),
    lambda p: Path(p).read_bytes(),
    lambda p: open(p, "rb"),
    lambda p: "data:image/jpeg;base64," + base64.b64encode(Path(p).read_bytes()).decode(),
], ids=["str", "pathlib", "array", "bytes", "file", "base64"])
def test_every_input_form_gives_the_same_faces(as_input, couple):  # type: ignore[no-untyped-def]
    expected = [f["facial_area"] for f in deepbatch.extract_faces(couple)]
    assert [f["facial_area"] for f in deepbatch.extract_faces(as_input(couple))] == expected


def test_no_face_with_enforce_detection_names_the_image(couple, blank):  # type: ignore[no-untyped-def]
    with pytest.raises(FaceNotDetectedError, match="image 1") as info:
        deepbatch.extract_faces([couple, blank, couple])
    assert info.value.index == 1 and isinstance(info.value, ValueError)


def test_no_face_without_enforce_detection_gives_the_whole_image(blank, weights_dir):  # type: ignore[no-untyped-def]
    faces = deepbatch.extract_faces(blank, enforce_detection=False)
    assert len(faces) == 1 and faces[0]["confidence"] == 0
    # DeepFace clamps the area inside the image: x + w < width, y + h < height.
    assert faces[0]["facial_area"] == {"x": 0, "y": 0, "w": 299, "h": 199, "left_eye": None, "right_eye": None}
    assert faces[0]["face"].shape == (200, 300, 3)


def test_skip_backend_returns_the_whole_image(couple):  # type: ignore[no-untyped-def]
    height, width = cv2.imread(couple).shape[:2]
    faces = deepbatch.extract_faces(couple, detector_backend="skip")
    assert len(faces) == 1 and faces[0]["confidence"] == 0
    assert (faces[0]["facial_area"]["w"], faces[0]["facial_area"]["h"]) == (width - 1, height - 1)


def test_max_faces_keeps_the_largest(dataset_dir):  # type: ignore[no-untyped-def]
    selfie = str(dataset_dir / "selfie-many-people.jpg")
    every = deepbatch.extract_faces(selfie)
    areas = sorted((f["facial_area"]["w"] * f["facial_area"]["h"] for f in every), reverse=True)
    kept = deepbatch.extract_faces(selfie, max_faces=2)
    assert [f["facial_area"]["w"] * f["facial_area"]["h"] for f in kept] == areas[:2]


def test_expand_percentage_grows_the_box(couple):  # type: ignore[no-untyped-def]
    plain = deepbatch.extract_faces(couple)[1]["facial_area"]
    grown = deepbatch.extract_faces(couple, expand_percentage=20)[1]["facial_area"]
    assert grown["w"] == pytest.approx(plain["w"] * 1.2, abs=2) and grown["h"] == pytest.approx(plain["h"] * 1.2, abs=2)
    assert grown["x"] < plain["x"] and grown["y"] < plain["y"]


@pytest.mark.parametrize("color_face, normalize_face, ndim, dtype, top", [
    ("rgb", True, 3, np.float32, 1.0), ("bgr", False, 3, np.uint8, 255), ("gray", True, 2, np.float32, 1.0),
])
def test_face_colour_and_scale(couple, color_face, normalize_face, ndim, dtype, top):  # type: ignore[no-untyped-def]
    face = deepbatch.extract_faces(couple, color_face=color_face, normalize_face=normalize_face)[0]["face"]
    assert face.ndim == ndim and face.dtype == dtype and face.max() <= top


def test_rgb_is_bgr_reversed(couple):  # type: ignore[no-untyped-def]
    rgb = deepbatch.extract_faces(couple, color_face="rgb", normalize_face=False)[0]["face"]
    bgr = deepbatch.extract_faces(couple, color_face="bgr", normalize_face=False)[0]["face"]
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])


def test_unaligned_face_is_the_box_crop(couple):  # type: ignore[no-untyped-def]
    face = deepbatch.extract_faces(couple, align=False, color_face="bgr", normalize_face=False)[0]
    area = face["facial_area"]
    crop = cv2.imread(couple)[area["y"] : area["y"] + area["h"], area["x"] : area["x"] + area["w"]]
    np.testing.assert_array_equal(face["face"], crop)


def test_alignment_levels_the_eyes(couple):  # type: ignore[no-untyped-def]
    image = cv2.imread(couple)
    faces = deepbatch.build_detector("scrfd").detect_faces([image])[0]
    cut = face_crops(image, faces.boxes, faces.landmarks)
    eyes = np.einsum("nij,nkj->nki", cut.matrices[:, :, :2], faces.landmarks[:, :2]) + cut.matrices[:, None, :, 2]
    sides = np.array([c.shape[0] for c in cut.crops], float)
    tilt = np.degrees(np.arctan2(*(faces.landmarks[:, 0] - faces.landmarks[:, 1])[:, ::-1].T))
    assert np.abs(tilt).max() > 1  # the photo's eyes are tilted, so alignment has work to do
    # Each eye lands on its template point (the five-point fit leaves a residual of a few per cent of the side).
    np.testing.assert_allclose(eyes / sides[:, None, None], np.broadcast_to(ARCFACE_TEMPLATE[:2] / 112, eyes.shape),
                               atol=0.03)


def test_aligned_face_is_a_square_at_the_face_resolution(couple):  # type: ignore[no-untyped-def]
    for face in deepbatch.extract_faces(couple):
        side = face["face"].shape[0]
        assert face["face"].shape == (side, side, 3) and ALIGNED_SIDE_MIN <= side <= ALIGNED_SIDE_MAX
        assert side == pytest.approx(face["facial_area"]["w"], rel=0.5)  # the face's own scale, not a fixed size


def test_detector_instance_can_be_passed(couple):  # type: ignore[no-untyped-def]
    detector = deepbatch.build_detector("scrfd_2.5g")
    assert len(deepbatch.extract_faces(couple, detector_backend=detector)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"on_error": "ignore"}, "on_error"), ({"batch_size": 0}, "batch_size"), ({"expand_percentage": -5}, "expand"),
    ({"color_face": "hsv"}, "color_face"), ({"anti_spoofing": True}, "anti_spoofing"),
])
def test_bad_arguments_are_named(couple, kwargs, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        deepbatch.extract_faces(couple, **kwargs)
