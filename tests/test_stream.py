"""The streaming core ``iter_records`` and its face rules, on real photos and real weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from deepbatch.core.stream import FaceRules, iter_records
from deepbatch.detectors.base import OnnxDetector
from deepbatch.errors import ArgumentError, FaceNotDetectedError, ImageNotFoundError
from deepbatch.io.images import load_image
from deepbatch.ops.align import align_faces
from deepbatch.recognition import build_recognizer

GRAY = np.full((240, 320, 3), 128, np.uint8)  # a frame without a face


@pytest.fixture(scope="module")
def photo_paths(dataset_dir: Path) -> List[str]:
    return [str(dataset_dir / name) for name in ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg"]]


@pytest.mark.parametrize("options, message", [
    ({"no_face": "ignore"}, "no_face must be one of"),
    ({"expand_percentage": -1}, "expand_percentage must be a number from 0 to 200"),
    ({"max_faces": 0}, "max_faces must be a positive integer"),
])
def test_face_rules_refuse_bad_values(options: Dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        FaceRules(**options)


@pytest.mark.parametrize("enforce_detection, rule", [(True, "error"), (False, "whole_image"), ("empty", "empty")])
def test_face_rules_read_enforce_detection(enforce_detection: Any, rule: str) -> None:
    assert FaceRules.of(enforce_detection).no_face == rule


@pytest.mark.parametrize("rule, faces, scores", [("whole_image", 1, [0.0]), ("empty", 0, [])])
def test_a_faceless_frame_gets_what_its_rule_says(scrfd_320: OnnxDetector, rule: str, faces: int,
                                                  scores: List[float]) -> None:
    (record,) = iter_records([GRAY], scrfd_320, 1, FaceRules(rule))
    assert record.faces is not None and (len(record.faces), record.faces.scores.tolist()) == (faces, scores)


def test_a_faceless_frame_under_the_error_rule_is_skipped_with_its_error(scrfd_320: OnnxDetector) -> None:
    (record,) = iter_records([GRAY], scrfd_320, 1, FaceRules("error"), on_error="skip")
    assert (type(record.error), record.error.index, record.faces) == (FaceNotDetectedError, 0, None)


def test_max_faces_keeps_the_largest_first(scrfd_320: OnnxDetector, photo_paths: List[str]) -> None:
    (every,) = iter_records(photo_paths[1:2], scrfd_320, 1, FaceRules(max_faces=None))
    (kept,) = iter_records(photo_paths[1:2], scrfd_320, 1, FaceRules(max_faces=2))
    assert every.faces is not None and kept.faces is not None
    np.testing.assert_array_equal(kept.faces.boxes, every.faces.largest(2).boxes)


@pytest.mark.parametrize("workers", [0, 2])
def test_crops_cut_on_the_prefetch_threads_are_those_cut_in_place(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                                  workers: int) -> None:
    rules = FaceRules(expand_percentage=10)
    records = list(iter_records(photo_paths, scrfd_320, 2, rules, crops=True, workers=workers))
    for record in records:
        assert record.image is not None and record.faces is not None and record.crops is not None
        expected = rules.cut(record.image, record.faces).crops
        assert [c.tobytes() for c in record.crops] == [c.tobytes() for c in expected]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_raise_stops_at_the_first_bad_image_in_input_order(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                           tmp_path: Path, batch_size: int) -> None:
    items = [photo_paths[0], str(tmp_path / "missing.jpg"), GRAY, photo_paths[2]]
    seen = []
    with pytest.raises(ImageNotFoundError) as caught:
        for record in iter_records(items, scrfd_320, batch_size, FaceRules("error")):
            seen.append(record.index)
    assert (seen, caught.value.index) == ([0], 1)


def test_embedding_records_carry_one_embedding_per_chosen_face(scrfd_320: OnnxDetector, photo_paths: List[str]) -> None:
    recognizer = build_recognizer("arcface_mbf")
    records = list(iter_records([*photo_paths, GRAY], scrfd_320, 3, FaceRules("empty"), recognizer=recognizer))
    shapes = [None if r.embeddings is None else r.embeddings.shape for r in records]
    size = int(recognizer.embedding_size)
    assert shapes == [(2, size), (6, size), (1, size), (1, size), (0, size)]


def test_embedding_records_drop_their_pixels(scrfd_320: OnnxDetector, photo_paths: List[str]) -> None:
    recognizer = build_recognizer("arcface_mbf")
    (record,) = iter_records(photo_paths[:1], scrfd_320, 1, recognizer=recognizer)
    assert (record.image, len(record.alignments)) == (None, 2)


@pytest.mark.parametrize("align", [True, False])
def test_the_stream_embeds_exactly_what_align_faces_gives_the_model(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                                     align: bool) -> None:
    recognizer = build_recognizer("arcface_mbf")
    rules = FaceRules("error", expand_percentage=10, align=align)
    for path in photo_paths[:2]:  # one image per chunk: the model sees the same faces in the same call either way
        (record,) = iter_records([path], scrfd_320, 1, rules, recognizer=recognizer)
        image = load_image(path)
        aligned = align_faces(image, record.faces.boxes, record.faces.landmarks, recognizer.input_size,
                              use_landmarks=align, expand_percentage=10)
        assert np.array_equal(record.embeddings, recognizer.embed(aligned.pixels))
        assert aligned.points.tolist() == record.points.tolist()


def test_reduced_decoding_cannot_give_crops(scrfd_320: OnnxDetector, photo_paths: List[str]) -> None:
    with pytest.raises(ArgumentError, match="reduced decoding"):
        next(iter_records(photo_paths, scrfd_320, 1, crops=True, reduced=True))
