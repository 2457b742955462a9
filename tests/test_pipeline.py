"""The pipelined chunk runner, buffer reuse in letterboxing, and the streaming API ``iter_extract_faces``."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.api.extract import ImageFaces, iter_detections, iter_extract_faces
from deepbatch.core.stream import chunks_held
from deepbatch.core.workers import DEFAULT_PREFETCH, detector_stages, numbered_chunks, parallel_workers, prefetch_map
from deepbatch.detectors.base import OnnxDetector, build_detector
from deepbatch.errors import FaceNotDetectedError, ImageNotFoundError
from deepbatch.ops.letterbox import BufferPool, InputSpec, letterbox, normalize, shrink, shrink_factor
from deepbatch.runtime.session import requested_run_threads, threads_per_run, usable_cpus
from deepbatch.source_tree import load_benchmark

# The same chunks through the same session give bit-identical outputs whether or not they were prefetched.
EXACT = 0.0


@pytest.fixture(scope="module")
def photo_paths(dataset_dir: Path) -> List[str]:
    names = ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img25.jpg", "img45.jpg", "img6.jpg"]
    return [str(dataset_dir / name) for name in names]


class CountingStream:
    """An iterator that records how many items have been pulled from it."""

    def __init__(self, items: List[object]):
        self.items = items
        self.pulled = 0

    def __iter__(self) -> Iterator[object]:
        for item in self.items:
            self.pulled += 1
            yield item


def _slow_square(value: int) -> int:
    time.sleep(0.02 if value % 3 == 0 else 0.001)  # uneven work, so later items often finish first
    return value * value


def _fail_on_five(value: int) -> int:
    if value == 5:
        raise RuntimeError("item 5 is broken")
    return value


def _prefetch_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("deepbatch-prefetch")]


# prefetch_map -----------------------------------------------------------------------------------------------------


def test_prefetch_map_keeps_input_order_with_uneven_work():
    assert list(prefetch_map(_slow_square, range(20), workers=3, prefetch=4)) == [v * v for v in range(20)]


@pytest.mark.parametrize("prefetch", [1, 2, 4])
def test_prefetch_map_reads_at_most_prefetch_plus_one_items_ahead(prefetch: int):
    stream = CountingStream(list(range(50)))
    results = prefetch_map(_slow_square, stream, workers=2, prefetch=prefetch)
    next(results)
    assert stream.pulled <= prefetch + 1
    results.close()


def test_prefetch_map_reraises_a_worker_error_at_its_turn():
    seen = []
    with pytest.raises(RuntimeError, match="item 5 is broken"):
        for value in prefetch_map(_fail_on_five, range(10), workers=2, prefetch=3):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_map_closed_early_leaves_no_threads():
    results = prefetch_map(_slow_square, range(100), workers=2, prefetch=3)
    next(results)
    results.close()
    assert _prefetch_threads() == []


def test_prefetch_map_without_workers_runs_in_the_calling_thread():
    names = list(prefetch_map(lambda _: threading.current_thread().name, range(3), workers=0))
    assert names == [threading.current_thread().name] * 3


def test_prefetch_map_rejects_negative_settings():
    with pytest.raises(ValueError, match="workers and prefetch must be >= 0"):
        list(prefetch_map(_slow_square, range(3), workers=-1))


def test_numbered_chunks_give_start_offsets_and_a_short_last_chunk():
    assert list(numbered_chunks(iter(range(7)), 3)) == [(0, [0, 1, 2]), (3, [3, 4, 5]), (6, [6])]


# letterbox buffers ------------------------------------------------------------------------------------------------

LETTERBOX_SPECS = [
    InputSpec(size=(320, 320), mean=127.5, std=128.0, rgb=True),
    InputSpec(size=(320, 256), mean=(104.0, 117.0, 123.0), std=1.0, rgb=False),
    InputSpec(size=(256, 320), mean=0.0, std=255.0, rgb=True, center=True, pad_value=114),
    InputSpec(size=(320, 240), mean=127.0, std=128.0, rgb=True, keep_ratio=False),
]


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrinking written the plain way: pad by repeating the edges to whole blocks, average each block, round."""
    h, w = -(-image.shape[0] // factor), -(-image.shape[1] // factor)
    padded = np.pad(image, ((0, h * factor - image.shape[0]), (0, w * factor - image.shape[1]), (0, 0)), mode="edge")
    return np.floor(padded.reshape(h, factor, w, factor, 3).mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def canvas_reference(images: List[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Letterboxing written the plain way: average a large image down, paint a full uint8 canvas per image, then
    normalise all of it."""
    canvas = np.full((len(images), spec.height, spec.width, 3), spec.pad_value, np.uint8)
    for i, image in enumerate(images):
        factor = shrink_factor(image.shape[0], image.shape[1], spec.size, spec.keep_ratio)
        image = block_mean(image, factor)
        h, w = image.shape[:2]
        if not spec.keep_ratio:
            new_w, new_h = spec.width, spec.height
        elif h / w > spec.height / spec.width:
            new_w, new_h = max(1, int(spec.height * w / h)), spec.height
        else:
            new_w, new_h = spec.width, max(1, int(spec.width * h / w))
        top = (spec.height - new_h) // 2 if spec.center else 0
        left = (spec.width - new_w) // 2 if spec.center else 0
        canvas[i, top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h))
    return normalize(canvas, spec)


@pytest.mark.parametrize("spec", LETTERBOX_SPECS, ids=lambda s: f"{s.width}x{s.height}-rgb{s.rgb}-c{s.center}")
def test_letterbox_equals_the_full_canvas_reference(parity_images: List[np.ndarray], spec: InputSpec):
    images = parity_images[:5]
    np.testing.assert_array_equal(letterbox(images, spec, BufferPool()).blob, canvas_reference(images, spec))


@pytest.mark.parametrize(("height", "width", "factor"), [(17, 23, 4), (16, 16, 2), (9, 30, 8), (3, 5, 8), (700, 9, 2)])
def test_shrink_is_the_block_mean(height: int, width: int, factor: int):
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), np.uint8)
    np.testing.assert_allclose(shrink(image, factor), block_mean(image, factor), atol=1)


@pytest.mark.parametrize(("height", "width", "canvas", "keep_ratio", "expected"), [
    (640, 640, (640, 640), True, 1),
    (1280, 900, (640, 640), True, 2),
    (1279, 900, (640, 640), True, 2),  # halved with sides rounded up, as libjpeg does: 640x450 still covers
    (1278, 900, (640, 640), True, 1),
    (12000, 9000, (640, 640), True, 16),
    (4600, 3061, (640, 480), True, 4),  # an eighth, 575x383, covers 640x480 only if not turned a quarter
    (1000, 2000, (320, 240), False, 2),
])
def test_shrink_factor(height: int, width: int, canvas: tuple, keep_ratio: bool, expected: int):
    assert shrink_factor(height, width, canvas, keep_ratio) == expected
    assert shrink_factor(width, height, canvas, keep_ratio) == expected


def test_shrinking_twice_is_shrinking_once_by_the_product():
    for side in range(1200, 5200, 7):
        total = shrink_factor(side, side * 3 // 4, (640, 640))
        first = min(total, 8)
        again = shrink_factor(-(-side // first), -(-(side * 3 // 4) // first), (640, 640))
        assert first * again == total, side


def test_buffer_pool_reuses_a_returned_buffer():
    pool = BufferPool()
    first = pool.take(4, (3, 32, 32))
    pool.give(first)
    assert pool.take(3, (3, 32, 32)) is first


def test_buffer_pool_gives_concurrent_takers_distinct_buffers():
    pool = BufferPool()
    held = [pool.take(2, (3, 32, 32)) for _ in range(3)]
    assert len({id(buffer) for buffer in held}) == 3


def test_buffer_pool_keeps_at_most_keep_idle_buffers():
    pool = BufferPool(keep=2)
    held = [pool.take(2, (3, 16, 16)) for _ in range(4)]
    for buffer in held:
        pool.give(buffer)
    taken = [pool.take(2, (3, 16, 16)) for _ in range(3)]
    assert sum(any(t is h for h in held) for t in taken) == 2


def test_letterbox_into_a_pooled_buffer_is_a_view_of_it(parity_images: List[np.ndarray]):
    pool = BufferPool()
    batch = letterbox(parity_images[:3], LETTERBOX_SPECS[0], pool)
    assert batch.buffer is not None and np.shares_memory(batch.blob, batch.buffer)


# detectors through the pipeline -----------------------------------------------------------------------------------


def test_onnx_detectors_split_into_letterbox_and_model_stages(scrfd_320: OnnxDetector):
    prepare, infer = detector_stages(scrfd_320)
    assert (prepare, infer) == (scrfd_320.prepare_batch, scrfd_320.infer_batch)


def test_other_detectors_run_whole_in_the_model_stage():
    detector = build_detector("skip")
    prepare, infer = detector_stages(detector)
    images = [np.zeros((8, 8, 3), np.uint8)]
    assert prepare(images) is images and infer == detector.infer_batch


def test_threads_sharing_one_detector_get_their_own_results(scrfd_320: OnnxDetector, parity_images: List[np.ndarray]):
    images = parity_images[:6]
    expected = scrfd_320.detect_faces(images, batch_size=3)
    found: dict = {}

    def work(key: int) -> None:
        order = images if key % 2 == 0 else images[::-1]
        result = scrfd_320.detect_faces(order, batch_size=3)
        found[key] = result if key % 2 == 0 else result[::-1]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in found.values():
        assert [len(f) for f in result] == [len(f) for f in expected]
        for a, b in zip(result, expected):
            np.testing.assert_array_equal(a.boxes, b.boxes)


def _intra_op_threads(session) -> int:  # type: ignore[no-untyped-def]
    return session.get_session_options().intra_op_num_threads


def test_a_run_asked_for_fewer_threads_gives_the_same_outputs(scrfd_320: OnnxDetector,
                                                               parity_images: List[np.ndarray]):
    blob = scrfd_320.prepare_batch(parity_images[:2]).blob.copy()
    model = scrfd_320.model
    default = model.run(blob)
    with threads_per_run(1):
        narrow = model.run(blob)
    assert _intra_op_threads(model._sessions_by_threads[1]) == 1
    for a, b in zip(default, narrow):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_a_model_given_threads_keeps_its_count(weights_dir: Path, parity_images: List[np.ndarray]):
    detector = build_detector("scrfd", input_size=320, threads=2)
    with threads_per_run(1):
        detector.detect_faces(parity_images[:1])
    assert detector.model._sessions_by_threads == {} and _intra_op_threads(detector.model.session) == 2


def test_parallel_chunks_run_on_their_share_of_the_cores(scrfd_320: OnnxDetector, photo_paths: List[str]):
    list(iter_detections(photo_paths, scrfd_320, batch_size=1, workers=2))
    share = max(1, usable_cpus() // 2)
    assert share in scrfd_320.model._sessions_by_threads
    assert _intra_op_threads(scrfd_320.model._sessions_by_threads[share]) == share


@pytest.mark.parametrize("single", [True, False])
def test_an_input_of_one_chunk_runs_inline_on_every_core(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                         monkeypatch: pytest.MonkeyPatch, single: bool):
    runs: List[Tuple[str, Optional[int]]] = []
    infer = scrfd_320.infer_batch

    def recorded(prepared: Any) -> Any:
        runs.append((threading.current_thread().name, requested_run_threads()))
        return infer(prepared)

    monkeypatch.setattr(scrfd_320, "infer_batch", recorded)
    lone = list(iter_detections(photo_paths[:1], scrfd_320, batch_size=1, single=single))
    assert len(lone) == 1 and lone[0].faces is not None and len(lone[0].faces) > 0
    assert runs == [(threading.current_thread().name, None)]  # this thread, no share of the cores asked
    runs.clear()
    list(iter_detections(photo_paths[:2], scrfd_320, batch_size=1, workers=2))
    assert all(name != threading.current_thread().name and threads is not None for name, threads in runs)


def test_pipelined_detection_equals_inline_detection(scrfd_320: OnnxDetector, photo_paths: List[str]):
    pipelined = list(iter_detections(photo_paths, scrfd_320, batch_size=3, workers=2, prefetch=2))
    inline = list(iter_detections(photo_paths, scrfd_320, batch_size=3, workers=0))
    assert [r.index for r in pipelined] == list(range(len(photo_paths)))
    for a, b in zip(pipelined, inline):
        assert a.faces is not None and b.faces is not None
        np.testing.assert_allclose(a.faces.boxes, b.faces.boxes, atol=EXACT, rtol=0)
        np.testing.assert_allclose(a.faces.landmarks, b.faces.landmarks, atol=EXACT, rtol=0)


def test_pipelined_detection_equals_detect_faces(scrfd_320: OnnxDetector, photo_paths: List[str]):
    records = list(iter_detections(photo_paths, scrfd_320, batch_size=4, workers=1))
    direct = scrfd_320.detect_faces([r.image for r in records], batch_size=4)
    for record, faces in zip(records, direct):
        assert record.faces is not None
        np.testing.assert_allclose(record.faces.boxes, faces.boxes, atol=EXACT, rtol=0)


def test_iter_detections_reads_a_generator_lazily(scrfd_320: OnnxDetector, parity_images: List[np.ndarray]):
    batch_size = 2
    stream = CountingStream([parity_images[i % len(parity_images)] for i in range(40)])
    records = iter_detections(stream, scrfd_320, batch_size=batch_size, workers=1, prefetch=DEFAULT_PREFETCH)
    next(records)
    assert stream.pulled <= (DEFAULT_PREFETCH + 1) * batch_size
    records.close()


# iter_extract_faces -----------------------------------------------------------------------------------------------


def test_iter_extract_faces_is_exported():
    assert deepbatch.iter_extract_faces is iter_extract_faces


def test_iter_extract_faces_yields_one_result_per_input_in_order(scrfd_320: OnnxDetector, photo_paths: List[str]):
    results = list(iter_extract_faces(photo_paths, detector_backend=scrfd_320, batch_size=3))
    assert [(r.image_index, r.source) for r in results] == list(enumerate(photo_paths))


def test_iter_extract_faces_matches_extract_faces(scrfd_320: OnnxDetector, photo_paths: List[str]):
    streamed = list(iter_extract_faces(photo_paths, detector_backend=scrfd_320, batch_size=3))
    batched = deepbatch.extract_faces(photo_paths, detector_backend=scrfd_320, batch_size=3)
    assert [[f["facial_area"] for f in faces] for faces in streamed] == [[f["facial_area"] for f in faces]
                                                                          for faces in batched]


def test_iter_extract_faces_crops_equal_extract_faces(scrfd_320: OnnxDetector, photo_paths: List[str]):
    streamed = next(iter_extract_faces(photo_paths[:1], detector_backend=scrfd_320))
    batched = deepbatch.extract_faces(photo_paths[0], detector_backend=scrfd_320)
    np.testing.assert_array_equal(streamed[0]["face"], batched[0]["face"])


def test_iter_extract_faces_finds_the_faces_of_the_group_photos(scrfd_320: OnnxDetector, photo_paths: List[str]):
    couple, selfie = list(iter_extract_faces(photo_paths[:2], detector_backend=scrfd_320, batch_size=2))
    assert (len(couple), len(selfie)) == (2, 6)


def test_iter_extract_faces_takes_a_generator_of_frames(scrfd_320: OnnxDetector, parity_images: List[np.ndarray]):
    frames = (image.copy() for image in parity_images[:5])
    results = list(iter_extract_faces(frames, detector_backend=scrfd_320, batch_size=2, enforce_detection=False))
    assert [r.image_index for r in results] == [0, 1, 2, 3, 4]


def test_iter_extract_faces_reads_a_frame_stream_a_few_chunks_ahead(scrfd_320: OnnxDetector,
                                                                    parity_images: List[np.ndarray]):
    batch_size = 2
    stream = CountingStream([parity_images[i % 3] for i in range(60)])
    results = iter_extract_faces(stream, detector_backend=scrfd_320, batch_size=batch_size, enforce_detection=False)
    next(results)
    # on the CPU each core detects a chunk of its own; one more chunk is detected while crops are cut
    ahead = max(DEFAULT_PREFETCH, parallel_workers() + 1) if scrfd_320.parallel_chunks else DEFAULT_PREFETCH
    assert chunks_held(scrfd_320, None, DEFAULT_PREFETCH) == ahead + 2
    assert stream.pulled <= (ahead + 2) * batch_size
    results.close()


def test_iter_extract_faces_takes_a_four_dimensional_array(scrfd_320: OnnxDetector, parity_images: List[np.ndarray]):
    frames = np.stack([cv2.resize(image, (320, 240)) for image in parity_images[:3]])
    assert len(list(iter_extract_faces(frames, detector_backend=scrfd_320, enforce_detection=False))) == 3


def test_iter_extract_faces_treats_one_path_as_a_stream_of_one(scrfd_320: OnnxDetector, photo_paths: List[str]):
    (only,) = list(iter_extract_faces(photo_paths[0], detector_backend=scrfd_320))
    assert isinstance(only, ImageFaces) and len(only) == 2


def test_iter_extract_faces_skip_yields_the_error_in_place(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                          tmp_path: Path):
    missing = str(tmp_path / "missing.jpg")
    results = list(iter_extract_faces([photo_paths[0], missing, photo_paths[2]], detector_backend=scrfd_320,
                                      on_error="skip"))
    assert [len(r) for r in results] == [2, 0, 1]
    assert isinstance(results[1].error, ImageNotFoundError) and results[1].error.index == 1


def test_iter_extract_faces_raise_stops_at_the_bad_image(scrfd_320: OnnxDetector, photo_paths: List[str],
                                                         tmp_path: Path):
    seen = []
    with pytest.raises(ImageNotFoundError, match="image 1"):
        for faces in iter_extract_faces([photo_paths[0], str(tmp_path / "missing.jpg")], detector_backend=scrfd_320):
            seen.append(faces)
    assert len(seen) == 1


def test_iter_extract_faces_enforces_detection(scrfd_320: OnnxDetector):
    blank = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(FaceNotDetectedError):
        list(iter_extract_faces([blank], detector_backend=scrfd_320))


# the benchmark command ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("1,8,16,32", [1, 8, 16, 32]), ("4", [4]), ("2, 3", [2, 3])])
def test_bench_batch_sizes_parse(text: str, expected: List[int]):
    _batch_sizes = load_benchmark("bench_detector")._batch_sizes
    assert _batch_sizes(text) == expected


@pytest.mark.parametrize("text", ["", "0,8", "a,b"])
def test_bench_batch_sizes_refuse_bad_lists(text: str):
    import argparse

    _batch_sizes = load_benchmark("bench_detector")._batch_sizes
    with pytest.raises(argparse.ArgumentTypeError):
        _batch_sizes(text)


def _run_bench(arguments: List[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What ``deepbatch bench`` with ``arguments`` prints (it must succeed)."""
    import argparse

    bench = load_benchmark("bench_detector")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(arguments)) == 0
    return capsys.readouterr().out


def test_bench_prints_one_row_per_batch_size(dataset_dir: Path, weights_dir: Path,
                                             capsys: pytest.CaptureFixture[str]):
    out = _run_bench(["--batch-sizes", "1,2", "--input-size", "160", "--images", "4", "--skip-extract",
                      "--data", str(dataset_dir)], capsys)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["batch"])
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["1", "2"]


def test_bench_runs_a_backend_on_its_own_canvas(dataset_dir: Path, weights_dir: Path,
                                                capsys: pytest.CaptureFixture[str]):
    out = _run_bench(["--backend", "ultralight_320", "--batch-sizes", "1", "--images", "2", "--skip-extract",
                      "--data", str(dataset_dir)], capsys)
    assert "at 320x240 on" in out


def test_detector_stages_batch_size_is_deprecated():
    detector = build_detector("skip")
    with pytest.warns(DeprecationWarning, match="ignores batch_size"):
        assert detector_stages(detector, 8) == (detector.prepare_batch, detector.infer_batch)
