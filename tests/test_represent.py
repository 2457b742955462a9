"""``represent``: DeepFace's embeddings over one image or a batch, on real photos and real weights."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.core.on_error import BatchResult
from deepbatch.errors import FaceNotDetectedError, ImageNotFoundError
from deepbatch.recognition import build_recognizer
from deepbatch.recognition.base import UnsupportedNormalizationError

# A face embedded with its own image alone and inside a batch of many images must agree to this cosine: detection
# and embedding run other kernel blockings in a batch, so float32 sums are ordered differently (~1e-7 relative).
PARITY_COSINE = 0.9999
# A unit-length embedding, in float32.
UNIT_NORM_ATOL = 1e-5

DICT_KEYS = {"embedding", "facial_area", "face_confidence", "alignment"}
BATCH_IMAGES = ["couple.jpg", "img12.jpg", "selfie-many-people.jpg", "img25.jpg", "img62.jpg", "img5.jpg",
                "img16.jpg", "img50.jpg"]


EXPECTED_FACES = Path(__file__).parent / "dataset" / "expected_faces.csv"


def expected_counts() -> Dict[str, int]:
    with open(EXPECTED_FACES, newline="") as f:
        return {row[0]: int(row[1]) for row in csv.reader(f) if row and row[0] != "file"}


@pytest.fixture(scope="module")
def paths(dataset_dir: Path, weights_dir: Path) -> List[str]:
    return [str(dataset_dir / name) for name in BATCH_IMAGES]


@pytest.fixture(scope="module")
def batch(paths: List[str]) -> BatchResult:
    return deepbatch.represent(paths)


def cosine(a, b) -> float:  # type: ignore[no-untyped-def]
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_one_image_gives_a_list_of_face_dicts(paths: List[str]) -> None:
    faces = deepbatch.represent(paths[0])
    assert isinstance(faces, list) and not isinstance(faces, BatchResult)
    assert len(faces) == 2 and all(set(face) == DICT_KEYS for face in faces)


def test_embedding_is_a_list_of_floats_of_the_model_size(paths: List[str]) -> None:
    embedding = deepbatch.represent(paths[1])[0]["embedding"]
    assert isinstance(embedding, list) and len(embedding) == 512 and all(isinstance(v, float) for v in embedding)


def test_face_dict_carries_area_confidence_and_alignment(paths: List[str]) -> None:
    face = deepbatch.represent(paths[1])[0]
    area = face["facial_area"]
    assert area["w"] > 0 and area["h"] > 0 and area["left_eye"][0] > area["right_eye"][0]  # person-relative eyes
    assert 0.5 <= face["face_confidence"] <= 1.0
    assert face["alignment"] == "five_point"


def test_batch_gives_one_list_per_image_in_order(batch: BatchResult) -> None:
    assert isinstance(batch, BatchResult) and not batch.errors
    counts = expected_counts()
    assert [len(faces) for faces in batch] == [counts[name] for name in BATCH_IMAGES]


def test_face_alone_matches_face_in_a_batch(paths: List[str], batch: BatchResult) -> None:
    alone = deepbatch.represent(paths[2])
    similarities = [cosine(a["embedding"], b["embedding"]) for a, b in zip(alone, batch[2])]
    assert len(similarities) == 6 and min(similarities) >= PARITY_COSINE


def test_array_batch_gives_one_list_per_frame(paths: List[str]) -> None:
    frame = cv2.imread(paths[1])
    frames = np.stack([frame, frame[:, ::-1], frame])
    result = deepbatch.represent(frames)
    assert [len(faces) for faces in result] == [1, 1, 1]
    assert cosine(result[0][0]["embedding"], result[2][0]["embedding"]) >= PARITY_COSINE


def test_all_faces_of_a_chunk_go_through_the_model_together(paths: List[str]) -> None:
    recognizer = build_recognizer("MobileFaceNet")
    before = recognizer.model.run_calls  # type: ignore[attr-defined]
    result = deepbatch.represent(paths[:3], model_name=recognizer, batch_size=3)
    assert sum(len(faces) for faces in result) == 9
    assert recognizer.model.run_calls - before == 1  # type: ignore[attr-defined]


def test_return_numpy_gives_float32_arrays(paths: List[str]) -> None:
    embedding = deepbatch.represent(paths[1], return_numpy=True)[0]["embedding"]
    assert isinstance(embedding, np.ndarray) and embedding.dtype == np.float32 and embedding.shape == (512,)


def test_l2_normalize_gives_unit_embeddings(paths: List[str]) -> None:
    embedding = deepbatch.represent(paths[1], l2_normalize=True, return_numpy=True)[0]["embedding"]
    assert abs(float(np.linalg.norm(embedding)) - 1.0) <= UNIT_NORM_ATOL


def test_skip_embeds_the_whole_image(paths: List[str]) -> None:
    faces = deepbatch.represent(paths[1], detector_backend="skip")
    height, width = cv2.imread(paths[1]).shape[:2]
    assert len(faces) == 1 and faces[0]["alignment"] == "box_crop" and faces[0]["face_confidence"] == 0
    assert (faces[0]["facial_area"]["w"], faces[0]["facial_area"]["h"]) == (width - 1, height - 1)


def test_align_false_embeds_box_crops(paths: List[str]) -> None:
    faces = deepbatch.represent(paths[0], align=False)
    assert [face["alignment"] for face in faces] == ["box_crop", "box_crop"]


def test_box_crop_and_five_point_embeddings_are_of_the_same_person(paths: List[str]) -> None:
    aligned = deepbatch.represent(paths[1])[0]["embedding"]
    cropped = deepbatch.represent(paths[1], align=False)[0]["embedding"]
    other = deepbatch.represent(paths[3])[0]["embedding"]
    assert cosine(aligned, cropped) > cosine(aligned, other)


def test_max_faces_keeps_the_largest(paths: List[str], batch: BatchResult) -> None:
    faces = deepbatch.represent(paths[2], max_faces=2)
    largest = sorted(batch[2], key=lambda f: -f["facial_area"]["w"] * f["facial_area"]["h"])[:2]
    assert [f["facial_area"] for f in faces] == [f["facial_area"] for f in largest]


def test_expand_percentage_grows_the_reported_area(paths: List[str]) -> None:
    plain = deepbatch.represent(paths[1])[0]["facial_area"]
    grown = deepbatch.represent(paths[1], expand_percentage=20)[0]["facial_area"]
    assert grown["w"] > plain["w"] and grown["h"] > plain["h"]


def test_no_face_raises_naming_the_image_index(paths: List[str]) -> None:
    blank = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(FaceNotDetectedError, match="image 1"):
        deepbatch.represent([paths[1], blank])


def test_no_face_without_enforcement_embeds_the_whole_image(weights_dir: Path) -> None:
    blank = np.full((240, 320, 3), 127, np.uint8)
    faces = deepbatch.represent(blank, enforce_detection=False)
    assert len(faces) == 1 and faces[0]["face_confidence"] == 0 and faces[0]["alignment"] == "box_crop"


def test_skip_on_error_keeps_going_and_records_the_error(paths: List[str], tmp_path: Path) -> None:
    result = deepbatch.represent([paths[1], str(tmp_path / "missing.jpg"), paths[3]], on_error="skip")
    assert [len(faces) for faces in result] == [1, 0, 1]
    assert list(result.errors) == [1] and isinstance(result.errors[1], ImageNotFoundError)


def test_arcface_normalization_stays_close_to_the_model_own(paths: List[str]) -> None:
    base = deepbatch.represent(paths[1])[0]["embedding"]
    arcface = deepbatch.represent(paths[1], normalization="ArcFace")[0]["embedding"]
    assert cosine(base, arcface) > 0.95  # (x - 127.5) / 128 differs from / 127.5 by 0.4% in scale


def test_unsupported_normalization_names_the_choices(paths: List[str]) -> None:
    with pytest.raises(UnsupportedNormalizationError, match="VGGFace2"):
        deepbatch.represent(paths[1], normalization="Facenet512")
