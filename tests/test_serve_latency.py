"""``deepbatch serve`` at low load: a lone request is neither held for ``max_wait_s`` nor confined to a share of the
cores, and runs on the thread that decoded it; a batch formed beside other work keeps its share.

The batcher runs the real SCRFD and ArcFace-MBF models on test photos; the detector and recognizer are the real ones,
subclassed only to note the intra-op threads each call asked for (:func:`requested_run_threads`: None is the
model's own session, on every core).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import pytest

from deepbatch.core.stream import FaceRules
from deepbatch.core.workers import parallel_workers
from deepbatch.detectors import DETECTORS
from deepbatch.recognition.base import RECOGNIZERS
from deepbatch.runtime.session import requested_run_threads, usable_cpus
from deepbatch.serve.batcher import Batcher
from deepbatch.serve.jobs import Job, Ticket

# Far longer than the two model calls of one photo (about 0.1 s here, a few seconds on a loaded machine): a lone
# request answered well within it was not held for it.
LONG_WAIT_S = 30.0


def _noting(kind: type, method: str, calls: List[Optional[int]]) -> type:
    """A subclass of the real model class ``kind`` whose ``method`` notes the threads asked for, then runs."""

    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(requested_run_threads())
        return getattr(super(subclass, self), method)(*args, **kwargs)

    subclass = type(f"Noting{kind.__name__}", (kind,), {method: noted})
    return subclass


@pytest.fixture()
def noted(weights_dir: Path) -> Iterator[Tuple[Batcher, List[Optional[int]], List[Optional[int]]]]:
    """A started batcher on the real SCRFD and ArcFace-MBF, with the threads each call asked for."""
    detections: List[Optional[int]] = []
    embeddings: List[Optional[int]] = []
    detector = _noting(type(DETECTORS.build("scrfd")), "infer_batch", detections)()
    recognizer = _noting(type(RECOGNIZERS.build("arcface_mbf")), "embed", embeddings)()
    batcher = Batcher(max_wait_s=LONG_WAIT_S, detectors={"scrfd": detector}, recognizers={"arcface_mbf": recognizer})
    batcher.start((("scrfd", "arcface_mbf"),))
    batcher.warmed = (list(detections), list(embeddings))  # type: ignore[attr-defined]
    del detections[:], embeddings[:]
    if batcher._threads_per_stage is None:
        batcher.stop()
        pytest.skip("the models run on a GPU here: their sessions keep their own threads")
    try:
        yield batcher, detections, embeddings
    finally:
        batcher.stop()


def _job(dataset_dir: Path, name: str = "img1.jpg") -> Job:
    image = cv2.imread(str(dataset_dir / name))
    assert image is not None
    return Job(image, "scrfd", FaceRules.of(True, None, 0, True), "arcface_mbf")


def test_start_runs_the_models_at_every_thread_count_a_request_may_use(noted: Any) -> None:
    """Every core (None) and each stage's share: no request waits while a session is opened for it."""
    batcher, _, _ = noted
    detections, embeddings = batcher.warmed
    assert sorted(detections, key=str) == sorted([None, max(1, usable_cpus() // parallel_workers())], key=str)
    assert sorted(embeddings, key=str) == sorted([None, max(1, usable_cpus() // 2)], key=str)


def test_lone_request_is_not_held_for_max_wait(noted: Any, dataset_dir: Path) -> None:
    batcher, _, _ = noted
    batcher.admit(1)
    started = time.perf_counter()
    (future,) = batcher.submit([_job(dataset_dir)])
    record = future.result(timeout=LONG_WAIT_S / 2)
    assert time.perf_counter() - started < LONG_WAIT_S / 2
    assert record.embeddings is not None and record.embeddings.shape == (1, 512)


def test_lone_request_runs_its_models_on_every_core(noted: Any, dataset_dir: Path) -> None:
    batcher, detections, embeddings = noted
    batcher.admit(1)
    (future,) = batcher.submit([_job(dataset_dir)])
    future.result(timeout=LONG_WAIT_S)
    assert detections == [None] and embeddings == [None]


def test_batch_beside_an_arriving_request_keeps_its_share_of_the_cores(noted: Any, dataset_dir: Path) -> None:
    """While another request is still being decoded, a batch waits up to ``max_wait_s`` for it, then runs on its
    detection thread's share of the cores (one detection thread per core)."""
    batcher, detections, _ = noted
    batcher.max_wait_s = 0.3
    batcher.admit(2)  # two requests admitted: one submitted, one still being read
    started = time.perf_counter()
    (future,) = batcher.submit([_job(dataset_dir)])
    try:
        future.result(timeout=LONG_WAIT_S)
        waited = time.perf_counter() - started
    finally:
        batcher.release(1)
    assert waited >= batcher.max_wait_s
    assert detections == [max(1, usable_cpus() // parallel_workers())]


def test_answers_at_every_core_equal_answers_on_a_share(noted: Any, dataset_dir: Path) -> None:
    """The same photo alone (every core) and beside an arriving request (a share of them): the same faces and
    embeddings, within the library's batch tolerance of 1e-4 (tests/test_serve.py)."""
    batcher, detections, _ = noted
    batcher.max_wait_s = 0.05
    batcher.admit(1)
    alone = batcher.submit([_job(dataset_dir, "couple.jpg")])[0].result(timeout=LONG_WAIT_S)
    batcher.admit(2)
    try:
        shared = batcher.submit([_job(dataset_dir, "couple.jpg")])[0].result(timeout=LONG_WAIT_S)
    finally:
        batcher.release(1)
    assert detections[0] is None and detections[1] is not None
    assert alone.faces is not None and shared.faces is not None and len(alone.faces) == len(shared.faces) == 2
    np.testing.assert_allclose(alone.faces.boxes, shared.faces.boxes, atol=1e-3)
    np.testing.assert_allclose(alone.embeddings, shared.embeddings, atol=1e-4)


def test_images_queued_at_once_are_shared_between_the_detection_threads(noted: Any, dataset_dir: Path) -> None:
    """Eight images queued at once, every detection thread free: each takes its share (on a CPU a batch costs the
    same per image at any size, so one thread taking all eight would leave the other cores idle)."""
    batcher, detections, _ = noted
    images = 8
    batcher.admit(images)
    futures = batcher.submit([_job(dataset_dir, "couple.jpg") for _ in range(images)])
    for future in futures:
        future.result(timeout=LONG_WAIT_S)
    batches, detected = batcher.metrics.batch_size.summary(stage="detect")
    assert detected == images
    assert batches == min(parallel_workers(), images) == len(detections)


def test_a_claimed_request_runs_on_the_thread_that_claimed_it_on_every_core(noted: Any, dataset_dir: Path) -> None:
    batcher, detections, embeddings = noted
    batcher.admit(1)
    ticket = Ticket(1)
    assert batcher.claim(ticket) and ticket.state == "claimed"
    job = _job(dataset_dir)
    batcher.run_claimed([job])
    assert job.future.done()  # answered before run_claimed returned: in this thread, not on a worker thread
    record = job.future.result()
    assert record.embeddings is not None and record.embeddings.shape == (1, 512)
    assert detections == [None] and embeddings == [None]
    assert batcher.idle and batcher._arriving == 0


def test_no_claim_beside_other_work_and_work_beside_a_claim_keeps_its_share(noted: Any, dataset_dir: Path) -> None:
    """A request may not claim while another is arriving or a claimed run is going on; a request queued beside a
    claimed run runs on its detection thread's share of the cores."""
    batcher, detections, _ = noted
    batcher.admit(2)  # this request and another one still being decoded
    beside = Ticket(1)
    assert not batcher.claim(beside) and beside.state == "admitted"
    batcher.give_back(beside)
    first = Ticket(1)
    assert batcher.claim(first)
    batcher.admit(1)
    second = Ticket(1)
    assert not batcher.claim(second)
    (queued,) = batcher.submit([_job(dataset_dir, "couple.jpg")], second)
    assert second.state == "submitted"
    queued.result(timeout=LONG_WAIT_S)
    job = _job(dataset_dir)
    batcher.run_claimed([job])
    assert detections == [max(1, usable_cpus() // parallel_workers()), None]
    assert batcher.idle and batcher._arriving == 0


def test_a_ticket_is_settled_once(noted: Any) -> None:
    batcher, _, _ = noted
    batcher.admit(1)
    given_back = Ticket(1)
    batcher.give_back(given_back)
    assert given_back.state == "released" and batcher._arriving == 0
    assert not batcher.claim(given_back)  # a request abandoned while decoding is not run
    batcher.give_back(given_back)
    assert batcher._arriving == 0
    batcher.admit(1)
    claimed = Ticket(1)
    assert batcher.claim(claimed)
    batcher.give_back(claimed)  # the claimed images are no longer arriving: nothing to give back
    assert claimed.state == "claimed" and batcher._arriving == 0
    batcher.run_claimed([])
    assert batcher.idle
