"""``on_error`` on batches: "raise" names the first bad image; "skip" keeps one entry per input and loses nothing.

Both batch APIs, ``extract_faces`` and ``represent``, are held to the same contract (parametrised as ``api``), on
real photos through the real SCRFD detector (and MobileFaceNet for ``represent``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, List

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.errors import (
    DeepbatchError,
    FaceNotDetectedError,
    ImageDecodeError,
    ImageFormatError,
    ImageNotFoundError,
)

PHOTOS = ["img1.jpg", "couple.jpg", "img3.jpg", "img12.jpg"]
PHOTO_SIDE = 320  # photos are shrunk so the longer side is this many pixels: faces stay large, tests stay fast

API: Dict[str, Callable[..., Any]] = {"extract_faces": deepbatch.extract_faces, "represent": deepbatch.represent}


def shrink(image: np.ndarray) -> np.ndarray:
    scale = PHOTO_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photo_paths(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> List[str]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        path = folder / name
        cv2.imwrite(str(path), shrink(cv2.imread(str(dataset_dir / name))))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, photo_paths: List[str]) -> Dict[str, str]:
    folder = tmp_path_factory.mktemp("bad")
    data = Path(photo_paths[0]).read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return {"missing": str(folder / "missing.jpg"), "truncated": str(folder / "truncated.jpg")}


@pytest.fixture(scope="module")
def mixed(photo_paths: List[str], bad_files: Dict[str, str]) -> List[Any]:
    """Good photos (paths and an array) with a missing file at 1, a truncated JPEG at 3, None at 5 and a faceless
    image at 6."""
    return [photo_paths[0], bad_files["missing"], photo_paths[1], bad_files["truncated"], cv2.imread(photo_paths[2]),
            None, np.full((120, 160, 3), 90, np.uint8), photo_paths[3]]


BAD = {1: ImageNotFoundError, 3: ImageDecodeError, 5: ImageFormatError, 6: FaceNotDetectedError}


def boxes(entry: List[Dict[str, Any]]) -> List[tuple]:
    return [tuple(face["facial_area"][k] for k in ("x", "y", "w", "h")) for face in entry]


@pytest.mark.parametrize("api", API)
def test_raise_names_first_bad_image_index_and_path(api: str, mixed: List[Any], bad_files: Dict[str, str]) -> None:
    with pytest.raises(ImageNotFoundError) as caught:
        API[api](mixed)
    assert caught.value.index == 1 and caught.value.source == bad_files["missing"]
    assert str(caught.value).startswith(f"image 1 ({bad_files['missing']})")


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("api", API)
def test_raise_reports_first_bad_image_in_input_order_whatever_the_batch_size(
    api: str, batch_size: int, photo_paths: List[str], bad_files: Dict[str, str]
) -> None:
    faceless = np.full((120, 160, 3), 90, np.uint8)
    with pytest.raises(FaceNotDetectedError) as caught:
        API[api]([photo_paths[0], faceless, bad_files["missing"]], batch_size=batch_size)
    assert caught.value.index == 1


@pytest.mark.parametrize("api", API)
def test_skip_keeps_one_entry_per_input(api: str, mixed: List[Any]) -> None:
    assert len(API[api](mixed, on_error="skip")) == len(mixed)


@pytest.mark.parametrize("api", API)
def test_skip_leaves_bad_entries_empty(api: str, mixed: List[Any]) -> None:
    result = API[api](mixed, on_error="skip")
    assert [index for index, entry in enumerate(result) if entry == []] == sorted(BAD)


@pytest.mark.parametrize("api", API)
def test_skip_records_each_error_under_its_index(api: str, mixed: List[Any]) -> None:
    errors = API[api](mixed, on_error="skip").errors
    assert {index: type(error) for index, error in errors.items()} == BAD
    assert all(error.index == index for index, error in errors.items())


@pytest.mark.parametrize("api", API)
def test_skip_returns_the_other_images_faces_in_order(api: str, mixed: List[Any]) -> None:
    result = API[api](mixed, on_error="skip")
    good = [item for index, item in enumerate(mixed) if index not in BAD]
    alone = API[api](good)
    assert [boxes(entry) for index, entry in enumerate(result) if index not in BAD] == [boxes(e) for e in alone]


@pytest.mark.parametrize("api", API)
def test_skip_logs_each_skipped_image(api: str, mixed: List[Any], bad_files: Dict[str, str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        API[api](mixed, on_error="skip")
    assert bad_files["missing"] in caplog.text and bad_files["truncated"] in caplog.text
    assert "image 6" in caplog.text


@pytest.mark.parametrize("api", API)
def test_skip_gives_the_same_result_for_any_batch_size(api: str, mixed: List[Any]) -> None:
    whole = API[api](mixed, on_error="skip", batch_size=32)
    pieces = API[api](mixed, on_error="skip", batch_size=3)
    assert [boxes(e) for e in pieces] == [boxes(e) for e in whole] and set(pieces.errors) == set(whole.errors)


@pytest.mark.parametrize("api", API)
def test_skip_with_detection_not_enforced_keeps_faceless_image(api: str, mixed: List[Any]) -> None:
    result = API[api](mixed, on_error="skip", enforce_detection=False)
    assert 6 not in result.errors and len(result[6]) == 1


@pytest.mark.parametrize("api", API)
def test_skip_still_raises_for_a_single_image(api: str, bad_files: Dict[str, str]) -> None:
    with pytest.raises(ImageNotFoundError):
        API[api](bad_files["missing"], on_error="skip")


@pytest.mark.parametrize("api", API)
def test_skip_reports_a_bad_frame_of_a_4d_array(api: str, photo_paths: List[str]) -> None:
    frame = cv2.resize(cv2.imread(photo_paths[0]), (PHOTO_SIDE, PHOTO_SIDE)).astype(np.float32)
    frames = np.stack([frame, np.full_like(frame, np.nan), frame])
    result = API[api](frames, on_error="skip")
    assert list(result.errors) == [1] and isinstance(result.errors[1], ImageFormatError)
    assert boxes(result[0]) == boxes(result[2]) != []


@pytest.mark.parametrize("api", API)
def test_skipped_errors_are_deepbatch_value_errors(api: str, mixed: List[Any]) -> None:
    errors = API[api](mixed, on_error="skip").errors.values()
    assert all(isinstance(error, DeepbatchError) and isinstance(error, ValueError) for error in errors)


@pytest.mark.parametrize("api", API)
def test_unknown_on_error_value_is_refused(api: str, photo_paths: List[str]) -> None:
    with pytest.raises(ValueError, match="on_error must be one of"):
        API[api](photo_paths, on_error="ignore")
