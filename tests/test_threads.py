"""Several threads calling one detector (and one recognizer) at once get exactly what a serial run gets.

Each test runs ``THREADS`` threads x ``CALLS`` calls (``REPRESENT_CALLS`` for ``represent``) on mixed batches
(paths and arrays of different sizes, a grayscale frame, a faceless frame and a missing file, with
``on_error="skip"``) through shared, cached model instances, and compares every call's result with the serial result
of the same batch.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.detectors import DETECTORS

THREADS = 8
CALLS = 50
REPRESENT_CALLS = 10  # per thread: the embedding model makes a represent call several times dearer
PHOTOS = ["img1.jpg", "couple.jpg", "img3.jpg", "img12.jpg", "img25.jpg", "selfie-many-people.jpg"]
PHOTO_SIDE = 160  # photos are shrunk to this longer side: small enough for 400 calls, faces still found
DETECTOR_OPTIONS = {"scrfd_500m": {"input_size": 160}, "opencv": {}}  # a 160 canvas fits the shrunk photos


def shrink(image: np.ndarray) -> np.ndarray:
    scale = PHOTO_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> List[List[Any]]:
    """Ten batches of one to five inputs mixing paths, BGR arrays, a grayscale array, a faceless frame and a
    missing file."""
    folder = tmp_path_factory.mktemp("threads")
    arrays = [shrink(cv2.imread(str(dataset_dir / name))) for name in PHOTOS]
    paths = []
    for name, image in zip(PHOTOS, arrays):
        cv2.imwrite(str(folder / name), image)
        paths.append(str(folder / name))
    gray = cv2.cvtColor(arrays[2], cv2.COLOR_BGR2GRAY)
    faceless = np.full((90, 120, 3), 200, np.uint8)
    missing = str(folder / "missing.jpg")
    return [
        [paths[0]],
        [arrays[1], paths[2]],
        [paths[3], missing, arrays[4]],
        [gray, arrays[5], faceless],
        [arrays[0], arrays[1], arrays[2], arrays[3]],
        [paths[5], paths[4], gray, missing, arrays[0]],
        [faceless],
        [arrays[3], paths[1]],
        [paths[2], arrays[5], paths[0]],
        [missing, arrays[4]],
    ]


def summary(result: Any) -> Tuple:
    """Everything a caller sees in a batch result, in a comparable form (face crops as bytes)."""
    entries = tuple(
        tuple((repr(sorted(face["facial_area"].items())), face.get("confidence", face.get("face_confidence")),
               face["face"].tobytes() if "face" in face else tuple(face["embedding"])) for face in entry)
        for entry in result
    )
    return entries, tuple(sorted((index, type(error).__name__) for index, error in result.errors.items()))


def detected_faces(serial: List[Tuple]) -> int:
    """Faces with a detector score above 0 in the serial results (so the comparison is not between empty lists)."""
    return sum(1 for entries, _ in serial for entry in entries for face in entry if face[1] > 0)


def run_concurrently(call: Callable[[List[Any]], Any], batches: List[List[Any]],
                     calls: int = CALLS) -> Dict[int, List[Tuple]]:
    """``THREADS`` threads, each making ``calls`` calls, released together by a barrier so the calls overlap;
    returns the result summaries per batch number."""
    barrier = threading.Barrier(THREADS)

    def worker(thread: int) -> List[Tuple[int, Tuple]]:
        barrier.wait()
        out = []
        for call_number in range(calls):
            which = (thread * calls + call_number) % len(batches)
            out.append((which, summary(call(batches[which]))))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, thread) for thread in range(THREADS)]
        results = [future.result() for future in futures]
    seen: Dict[int, List[Tuple]] = {}
    for which, found in (pair for thread_results in results for pair in thread_results):
        seen.setdefault(which, []).append(found)
    return seen


@pytest.mark.parametrize("name", sorted(DETECTOR_OPTIONS))
def test_extract_faces_from_threads_matches_serial_run(name: str, batches: List[List[Any]]) -> None:
    detector = deepbatch.build_detector(name, **DETECTOR_OPTIONS[name])

    def call(batch: List[Any]) -> Any:
        return deepbatch.extract_faces(batch, detector_backend=detector, on_error="skip", enforce_detection=False)

    serial = [summary(call(batch)) for batch in batches]
    concurrent = run_concurrently(call, batches)
    assert detected_faces(serial) >= len(PHOTOS)
    assert sum(len(found) for found in concurrent.values()) == THREADS * CALLS
    assert all(found == serial[which] for which, results in concurrent.items() for found in results)


def test_represent_from_threads_matches_serial_run(batches: List[List[Any]]) -> None:
    detector = deepbatch.build_detector("scrfd_500m", **DETECTOR_OPTIONS["scrfd_500m"])

    def call(batch: List[Any]) -> Any:
        return deepbatch.represent(batch, detector_backend=detector, on_error="skip", enforce_detection=False)

    serial = [summary(call(batch)) for batch in batches]
    concurrent = run_concurrently(call, batches, REPRESENT_CALLS)
    assert detected_faces(serial) >= len(PHOTOS)
    assert all(found == serial[which] for which, results in concurrent.items() for found in results)


def test_registry_builds_one_instance_for_simultaneous_first_calls(weights_dir: Path) -> None:
    options = {"input_size": 288, "score_threshold": 0.4375}  # arguments no other test builds with
    barrier = threading.Barrier(THREADS)

    def build(_: int) -> Any:
        barrier.wait()
        return DETECTORS.build("scrfd_500m", **options)

    with ThreadPoolExecutor(THREADS) as pool:
        built = list(pool.map(build, range(THREADS)))
    assert len({id(detector) for detector in built}) == 1


def test_model_call_counter_counts_every_concurrent_call(batches: List[List[Any]]) -> None:
    detector = deepbatch.build_detector("scrfd_500m", **DETECTOR_OPTIONS["scrfd_500m"])
    image = batches[4][0]
    before = detector.model.run_calls
    barrier = threading.Barrier(THREADS)

    def worker(_: int) -> None:
        barrier.wait()
        for _call in range(CALLS):
            detector.detect_faces([image])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    assert detector.model.run_calls - before == THREADS * CALLS
