"""The detection-only API: ``detect`` / ``iter_detect``, reduced JPEG decoding, and ``batch_size="auto"``."""

from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
from test_inputs import jpeg, png, with_exif

import deepbatch
from deepbatch.api.extract import iter_detections
from deepbatch.core.workers import CPU_AUTO_BATCH, resolve_batch_size
from deepbatch.detectors import build_detector
from deepbatch.errors import ArgumentError, ImageDecodeError, ImageNotFoundError
from deepbatch.io.headers import declared_size
from deepbatch.io.images import ImageLimits, decode_for_canvas, list_image_files, load_image, reduction_factor
from deepbatch.structures import Faces

# A photo decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's scaled IDCT) and the same photo decoded in full, then
# averaged down by the same factor in letterboxing, differ by a fraction of a grey level: on the 64 photos (29 of
# them reduce) boxes differ by at most 1.15 px and landmarks by 0.92 px in original pixels.
REDUCED_TOLERANCE_PX = 2.0


@pytest.fixture(scope="module")
def photo_paths(dataset_dir: Path) -> List[Path]:
    return list_image_files(dataset_dir)


@pytest.fixture(scope="module")
def scrfd(weights_dir: Path):  # type: ignore[no-untyped-def]
    return build_detector("scrfd")


@pytest.mark.parametrize(("height", "width", "canvas", "keep_ratio", "expected"), [
    (480, 640, (640, 640), True, 1),
    (1300, 1000, (640, 640), True, 2),  # fits at 640x492: half size 650x500 still covers it
    (1200, 1000, (640, 640), True, 1),  # half size 600 would be below the 640 fit
    (2600, 2000, (640, 640), True, 4),
    (6000, 4000, (640, 640), True, 8),
    (2000, 1000, (640, 480), True, 2),  # as stored it would allow 4; turned a quarter (EXIF) it fits at 640x320
    (1000, 2000, (320, 240), False, 2),  # stretched: each side must cover its canvas side in either orientation
    (12000, 9000, (640, 640), True, 8),  # libjpeg reduces by 8 at most; letterboxing averages the rest down
])
def test_reduction_factor(height: int, width: int, canvas: tuple, keep_ratio: bool, expected: int) -> None:
    assert reduction_factor(height, width, canvas, keep_ratio) == expected


def test_jpeg_over_the_pixel_limit_is_refused_before_reduced_decoding() -> None:
    data = jpeg(np.zeros((1600, 2400, 3), np.uint8))
    assert declared_size(data) == (2400, 1600)
    with pytest.raises(ImageDecodeError, match="decoding limit"):
        decode_for_canvas(data, (640, 640), limits=ImageLimits(max_pixels=1_000_000))


def test_png_is_decoded_in_full() -> None:
    image = np.full((1400, 1400, 3), 90, np.uint8)
    assert decode_for_canvas(png(image), (640, 640)).factor == 1


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_reduced_decode_applies_exif_orientation(orientation: int) -> None:
    stored = cv2.resize(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8), (2000, 1500),
                        interpolation=cv2.INTER_NEAREST)
    data = with_exif(jpeg(stored), orientation)
    full = load_image(data)
    reduced = decode_for_canvas(data, (640, 640))
    assert reduced.factor == 2
    assert reduced.shape == full.shape[:2]
    expected = cv2.resize(full, (reduced.image.shape[1], reduced.image.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.image.astype(int) - expected).mean() < 3.0


def test_reduced_detection_matches_full_decode_on_every_photo(photo_paths: List[Path], scrfd) -> None:  # type: ignore[no-untyped-def]
    full = [r.faces for r in iter_detections(photo_paths, scrfd, 4)]
    records = list(iter_detections(photo_paths, scrfd, 4, reduced=True))
    assert sum(r.factor > 1 for r in records) >= 20  # the check is only worth something if many photos reduce
    for record, expected in zip(records, full):
        assert record.faces is not None and expected is not None
        assert len(record.faces) == len(expected), record.source
        np.testing.assert_allclose(record.faces.boxes, expected.boxes, atol=REDUCED_TOLERANCE_PX, err_msg=record.source)
        np.testing.assert_allclose(record.faces.landmarks, expected.landmarks, atol=REDUCED_TOLERANCE_PX,
                                   err_msg=record.source)


def test_detect_gives_one_faces_per_input_of_every_kind(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    path = dataset_dir / "couple.jpg"
    frame = cv2.imread(str(path))
    results = deepbatch.detect([str(path), path, frame, path.read_bytes()], scrfd)
    assert [len(faces) for faces in results] == [2, 2, 2, 2]


def test_detect_single_input_gives_faces(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    faces = deepbatch.detect(str(dataset_dir / "couple.jpg"), scrfd)
    assert isinstance(faces, Faces) and len(faces) == 2


def test_detect_skip_keeps_one_entry_per_input(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    results = deepbatch.detect([str(dataset_dir / "img1.jpg"), "missing.jpg"], scrfd, on_error="skip")
    assert [len(faces) for faces in results] == [1, 0]
    assert isinstance(results.errors[1], ImageNotFoundError)


def test_detect_max_faces_keeps_the_largest(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    every = deepbatch.detect(str(dataset_dir / "selfie-many-people.jpg"), scrfd)
    two = deepbatch.detect(str(dataset_dir / "selfie-many-people.jpg"), scrfd, max_faces=2)
    np.testing.assert_array_equal(two.boxes, every.largest(2).boxes)


def test_iter_detect_streams_frames_with_full_resolution_images(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    frame = cv2.imread(str(dataset_dir / "couple.jpg"))
    records = list(deepbatch.iter_detect((frame for _ in range(3)), scrfd, batch_size=2))
    assert [(r.index, len(r.faces)) for r in records] == [(0, 2), (1, 2), (2, 2)]
    assert all(r.image is not None and r.image.shape == frame.shape for r in records)


def test_iter_detect_full_resolution_keeps_file_pixels(dataset_dir: Path, scrfd) -> None:  # type: ignore[no-untyped-def]
    path = dataset_dir / "img40.jpg"  # 3061x4600: decoded at a quarter of its size unless asked otherwise
    reduced, full = (next(iter(deepbatch.iter_detect(path, scrfd, full_resolution=flag))) for flag in (False, True))
    assert reduced.factor == 4 and full.factor == 1
    assert full.image is not None and full.image.shape[:2] == full.shape == reduced.shape


@pytest.mark.parametrize(("value", "expected"), [("auto", CPU_AUTO_BATCH), (1, 1), (64, 64)])
def test_batch_size_resolves(value: object, expected: int, scrfd) -> None:  # type: ignore[no-untyped-def]
    assert resolve_batch_size(value, scrfd) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -3, "big", 2.5, True, None])
def test_bad_batch_size_raises(value: object) -> None:
    with pytest.raises(ArgumentError, match="batch_size"):
        resolve_batch_size(value)  # type: ignore[arg-type]
