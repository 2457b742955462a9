"""Dynamic batching across requests: the images of concurrent requests share model calls, stage by stage.

The event loop never runs a model. A *detection* thread (one per core on a CPU, one on a GPU) takes the images
waiting in a bounded queue, up to ``max_batch`` of them, waiting at most ``max_wait_s`` for more while other
requests are still being read and decoded (a lone request is never held back), runs each detector once over its
share (one ``prepare_batch`` + ``infer_batch``, as the library's chunks do), applies each request's face rules and
cuts the faces. The *embedding* thread takes every face cut so far and runs each recognizer once over them (in chunks of
the recognizer's ``batch_size``). On a CPU the stages share the cores while they work side by side; a call with nothing
beside it takes every core. A lone request (nothing else queued, arriving, in detection or in embedding) skips the
queue: the thread that decoded it runs both stages there and then (:meth:`Batcher.claim`), as the library runs a single
image, which saves the hand-offs and keeps its pixels in one core's caches. Each image then gets the
:class:`~deepbatch.records.ImageRecord` the library's :func:`~deepbatch.stream.iter_records` gives for it, through
its own ``Future``.

Faults stay local: an image without a face fails its own future; a model call that raises fails the futures of the
images in that call (:class:`ModelRunError`) and the threads go on with the next batch. Triton's dynamic batcher is
the model for the two knobs: ``max_batch`` is its preferred batch size, ``max_wait_s`` its
``max_queue_delay_microseconds``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from ..api.extract import resolve_detector
from ..core.workers import parallel_workers
from ..detectors.base import Detector
from ..errors import FaceNotDetectedError, ModelRunError, OverloadedError
from ..ops.align import model_input
from ..ops.letterbox import InputSpec
from ..recognition.base import Recognizer, resolve_recognizer
from ..records import ImageRecord
from ..runtime.session import GPU_PROVIDERS, threads_per_run, usable_cpus
from .jobs import Job, Ticket
from .metrics import Metrics

logger = logging.getLogger(__name__)

# On a CPU the models cost the same per image at any batch size, and so do requests batched together (the serve
# and batch1 rows of docs/measurements/serve_rows.json, from benchmarks/serve_load.py). On a GPU each call has a
# fixed cost that a batch spreads (the library's "auto" batch there is 32); 16 takes most of that gain while the
# last image of a batch waits for 16 images, not 32. The wait is far below one detector call, and it is only spent
# while other requests are still being decoded.
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_WAIT_S = 0.005
DEFAULT_QUEUE_LIMIT = 64


class Batcher:
    """Gathers :class:`Job` s from any thread into batched model calls on two worker threads.

    ``detectors`` / ``recognizers`` map names to instances that take precedence over the registered models (a
    served model built with other options); other names are built on first use, in the worker thread.
    """

    def __init__(self, max_batch: int = DEFAULT_MAX_BATCH, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT, metrics: Optional[Metrics] = None,
                 detectors: Optional[Dict[str, Detector]] = None,
                 recognizers: Optional[Dict[str, Recognizer]] = None):
        if max_batch < 1 or queue_limit < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch and queue_limit must be >= 1 and max_wait_s >= 0, got {max_batch}, "
                             f"{queue_limit}, {max_wait_s}")
        self.max_batch = int(max_batch)
        self._take_limit = self.max_batch  # images per batch of one detection thread
        self.max_wait_s = float(max_wait_s)
        self.queue_limit = int(queue_limit)
        self.metrics = metrics or Metrics()
        self._detectors = dict(detectors or {})
        self._recognizers = dict(recognizers or {})
        self._queue: Deque[Job] = deque()
        self._faces: Deque[List[Job]] = deque()
        self._lock = threading.Condition()
        self._face_lock = threading.Condition()
        self._arriving = 0  # requests admitted whose images are still being read and decoded
        self._running = False
        self._threads_per_stage: Optional[int] = None
        self._detect_threads: Optional[int] = None
        self._detecting = 0  # detection threads still running
        self._busy = 0  # detection threads running a batch now
        self._embedding = False  # the embedding thread is running a batch now
        self._threads: List[threading.Thread] = []

    # -- admission, from the event loop ------------------------------------------------------------------------------

    def admit(self, images: int) -> None:
        """Reserve room for a request of ``images`` images before decoding it; raises :class:`OverloadedError` when
        the queue (images waiting for detection plus images being decoded) would exceed ``queue_limit``."""
        with self._lock:
            if self.queued + self._arriving + images > self.queue_limit:
                self.metrics.rejected.inc()
                raise OverloadedError(f"the service is at its queue limit of {self.queue_limit} images; retry later")
            self._arriving += images

    def release(self, images: int) -> None:
        """Give back the room of :meth:`admit` for images that will not be submitted (a request that failed)."""
        with self._lock:
            self._arriving = max(0, self._arriving - images)
            self._lock.notify_all()

    def give_back(self, ticket: Ticket) -> None:
        """:meth:`release` the ticket's images unless they were claimed, submitted or released already."""
        with self._lock:
            if ticket.state != "admitted":
                return
            ticket.state = "released"
        self.release(ticket.images)

    def claim(self, ticket: Ticket) -> bool:
        """Whether a request's decoded images may run now on the thread that decoded them (:meth:`run_claimed`),
        every core for its model calls: worker threads run, nothing is queued, in detection or embedding, and no
        other request is arriving. A lone request then skips the queue and the two hand-offs to the worker threads;
        its run counts as a batch in detection, so requests that come meanwhile queue for the worker threads and
        take their share of the cores."""
        with self._lock:
            if (ticket.state != "admitted" or not self._threads or not self._running or self._queue or self._busy
                    or self._embedding or self._arriving != ticket.images):
                return False
            ticket.state = "claimed"
            self._arriving -= ticket.images
            self._busy += 1
            return True

    def run_claimed(self, jobs: List[Job]) -> None:
        """Detect and embed the jobs of a :meth:`claim` in the calling thread, resolving their futures."""
        try:
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            for _ in live:
                self.metrics.queue_wait.observe(0.0)
            embed = self._detect(live) if live else []
            if embed:
                self._embed(embed)
        finally:
            self._batch_done()

    def submit(self, jobs: List[Job], ticket: Optional[Ticket] = None) -> List[Future]:
        """Queue admitted jobs for detection; their futures resolve to :class:`ImageRecord` s or raise."""
        now = time.perf_counter()
        with self._lock:
            if ticket is not None:
                ticket.state = "submitted"
            if not self._running:
                for job in jobs:
                    job.future.set_exception(OverloadedError("the service is shutting down"))
            else:
                for job in jobs:
                    job.queued_at = now
                    self._queue.append(job)
            self._arriving = max(0, self._arriving - len(jobs))
            self.metrics.queue_depth.set(len(self._queue))
            self._lock.notify_all()
        return [job.future for job in jobs]

    # -- life cycle --------------------------------------------------------------------------------------------------

    def start(self, warm: Tuple[Tuple[str, Optional[str]], ...] = (), workers: bool = True) -> None:
        """Start the worker threads (``workers=False``: none, batches come through :meth:`run_batch`); ``warm``
        holds ``(detector, recognizer)`` names to load before serving.

        On a CPU, as the library's parallel chunks do, one detection thread per core (:func:`parallel_workers`)
        takes batches from the queue, each running the detector on one intra-op thread, and the embedding thread's
        models run on half the cores: the stages work side by side instead of spreading every operator over all
        cores, and a core is never idle while a batch waits. A model call with nothing beside it (nothing else
        queued, arriving or running: a lone request) runs on every core instead, as the library's own single-image
        call does. Models on a GPU keep their sessions as they are, and one detection thread forms the batches
        (where a batch is cheaper per image than two halves)."""
        on_gpu, parallel = False, True
        for detector, recognizer in warm:
            built = self.detector_for(detector)
            providers = getattr(getattr(built, "model", None), "providers", None) or [""]
            on_gpu = on_gpu or providers[0] in GPU_PROVIDERS
            parallel = parallel and bool(getattr(built, "parallel_chunks", False))
            if recognizer is not None:
                self.recognizer_for(recognizer)
        detectors = 1 if on_gpu or not parallel or not warm else parallel_workers()
        self._threads_per_stage = None if on_gpu else max(1, usable_cpus() // 2)
        self._detect_threads = None if on_gpu else max(1, usable_cpus() // detectors)
        for detector, recognizer in warm:
            self._warm(detector, recognizer)
        self._running = True
        if not workers:
            return
        self._detecting = detectors
        # Several detection threads split the batch size between them: the images in detection at once (and the
        # model's working memory for them) stay those of one batch of max_batch, and on a CPU, where these threads
        # run, a batch costs the same per image at any size.
        self._take_limit = max(1, -(-self.max_batch // detectors))
        self._threads = [threading.Thread(target=self._detect_loop, name=f"deepbatch-serve-detect-{i}", daemon=True)
                         for i in range(detectors)]
        self._threads.append(threading.Thread(target=self._embed_loop, name="deepbatch-serve-embed", daemon=True))
        for thread in self._threads:
            thread.start()

    def _warm(self, detector: str, recognizer: Optional[str]) -> None:
        """Run the models once on blank pixels with every thread count the stages use (every core, and each stage's
        share), so that no request waits while ONNX Runtime opens a session for its share of the cores."""
        blank = np.zeros((160, 160, 3), np.uint8)
        try:
            for threads in {None, self._detect_threads}:
                with self._stage_threads(threads, alone=threads is None):
                    built = self.detector_for(detector)
                    built.infer_batch(built.prepare_batch([blank]))
            if recognizer is not None:
                model = self.recognizer_for(recognizer)
                side = int(model.input_size)
                for alone in (True, False):
                    with self._stage_threads(alone=alone):
                        model.embed(np.zeros((1, side, side, 3), np.uint8))
        except Exception:  # noqa: BLE001 (a model that cannot run on blank pixels is warmed by its first request)
            logger.warning("warming %s and %s on blank pixels failed", detector, recognizer, exc_info=True)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued job, then stop the threads."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        with self._face_lock:
            self._face_lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- models ------------------------------------------------------------------------------------------------------

    def detector_for(self, name: str) -> Detector:
        """The detector served as ``name``: one given at construction, else the registered one (built once)."""
        found = self._detectors.get(name)
        return found if found is not None else resolve_detector(name)

    def recognizer_for(self, name: str) -> Recognizer:
        """The recognizer served as ``name``: one given at construction, else the registered one (built once)."""
        found = self._recognizers.get(name)
        return found if found is not None else resolve_recognizer(name)

    # -- detection stage ---------------------------------------------------------------------------------------------

    def _take(self) -> Optional[Tuple[List[Job], bool]]:
        """The next batch: up to ``max_batch`` images; waits up to ``max_wait_s`` after the first for images of
        requests still being decoded (a lone request waits for nothing). With it, whether the batch is *alone*:
        nothing else queued, arriving, in detection or in embedding, so its model call may take every core. None
        once stopped and drained; the caller hands the batch back with :meth:`_batch_done`."""
        with self._lock:
            while not self._queue:
                if not self._running:
                    return None
                self._lock.wait(0.5)
            deadline = time.perf_counter() + self.max_wait_s
            while len(self._queue) < self._take_limit and self._arriving > 0:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch = [self._queue.popleft() for _ in range(self._share())]
            alone = self.idle and not self._embedding
            self._busy += 1
            self.metrics.queue_depth.set(len(self._queue))
        now = time.perf_counter()
        live = []
        for job in batch:
            if job.future.set_running_or_notify_cancel():  # a request that timed out is not computed
                self.metrics.queue_wait.observe(now - job.queued_at)
                live.append(job)
        return live, alone

    def _share(self) -> int:
        """The images one detection thread takes now: an even share of those queued between the detection threads
        not running a batch (this one included), at most its batch limit. On a CPU, where a batch costs the same
        per image at any size, eight images queued at once become two batches of four on two cores, not one batch
        of eight on one core while the other waits. Called with the lock held."""
        free = max(1, self._detecting - self._busy)
        return min(self._take_limit, -(-len(self._queue) // free))

    def _batch_done(self) -> None:
        """A detection thread has finished the batch :meth:`_take` gave it."""
        with self._lock:
            self._busy -= 1

    @property
    def idle(self) -> bool:
        """Nothing queued, arriving or in detection."""
        return not self._queue and not self._arriving and not self._busy

    def _stage_threads(self, threads: Optional[int] = None, alone: bool = False) -> Any:
        """The intra-op threads of a stage's model calls on a CPU: its share of the cores while the stages work
        side by side, every core (the model's own session) for a call that runs *alone*. At concurrency 1 that
        makes a request's model calls as fast as the library's own (on 2 cores, SCRFD-500M takes 22 ms on both
        and 38 on one; ArcFace-MBF 21 and 30)."""
        threads = threads or self._threads_per_stage
        return threads_per_run(threads) if threads and not alone else contextlib.nullcontext()

    def _detect_loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                with self._face_lock:
                    self._detecting -= 1
                    if self._detecting <= 0:
                        self._faces.append([])  # the last detection thread tells the embedding thread: no more
                    self._face_lock.notify_all()
                return
            batch, alone = taken
            try:
                with self._stage_threads(self._detect_threads, alone):
                    embed = self._detect(batch) if batch else []
            finally:
                self._batch_done()
            if embed:
                with self._face_lock:
                    self._faces.append(embed)
                    self._face_lock.notify_all()

    def run_batch(self, jobs: List[Job]) -> None:
        """Detect and embed ``jobs`` as one batch, in the calling thread, resolving their futures (for engines
        that form the batches themselves, such as Ray Serve's ``@serve.batch``)."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        with self._stage_threads():
            embed = self._detect(live) if live else []
            if embed:
                self._embed(embed)

    def _detect(self, batch: List[Job]) -> List[Job]:
        """Detect and cut ``batch``; resolves the jobs that need no embedding and returns the others."""
        self.metrics.batch_size.observe(len(batch), stage="detect")
        groups: Dict[str, List[Job]] = {}
        for job in batch:
            groups.setdefault(job.detector, []).append(job)
        ready: List[Job] = []
        for name, jobs in groups.items():
            started = time.perf_counter()
            try:
                detector = self.detector_for(name)
                found = detector.infer_batch(detector.prepare_batch([job.image for job in jobs]))
                if len(found) != len(jobs):
                    raise RuntimeError(f"{name} returned {len(found)} results for {len(jobs)} images")
            except Exception as exc:  # noqa: BLE001 (any failure of the model fails this call's images only)
                logger.exception("detector %s failed on a batch of %d images", name, len(jobs))
                self.metrics.model_errors.inc(stage="detect")
                error = ModelRunError(f"the detector {name!r} failed on a batch of {len(jobs)} images: {exc}")
                for job in jobs:
                    job.future.set_exception(error)
                continue
            self.metrics.stage_time.observe(time.perf_counter() - started, stage="detect")
            for job, faces in zip(jobs, found):
                if self._cut(job, faces):
                    ready.append(job)
        for job in ready:
            if job.recognizer is None:
                job.future.set_result(job.record)
        return [job for job in ready if job.recognizer is not None]

    def _cut(self, job: Job, faces: Any) -> bool:
        """Apply the job's face rules and cut its faces, as :func:`~deepbatch.stream.iter_records` does; False
        when the job failed here."""
        image = job.image
        record = ImageRecord(0, job.source, shape=(image.shape[0], image.shape[1]))
        try:
            record.faces = job.rules.select(faces, record.shape or image.shape, None, job.source)
            if job.crops or job.recognizer is not None:
                cut = job.rules.cut(image, record.faces)
                record.points = cut.points
                record.crops = cut.crops if job.crops else None
                if job.recognizer is not None:
                    job.pixels = model_input(cut, int(self.recognizer_for(job.recognizer).input_size))
        except FaceNotDetectedError as exc:
            job.future.set_exception(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (a failure while cutting one image fails that image only)
            logger.exception("cutting the faces of %s failed", job.source or "an image")
            job.future.set_exception(ModelRunError(f"cutting the faces failed: {exc}"))
            return False
        job.record = record
        job.image = np.empty((0, 0, 3), np.uint8)  # the pixels are not needed any more
        return True

    # -- embedding stage ---------------------------------------------------------------------------------------------

    def _embed_loop(self) -> None:
        while True:
            with self._face_lock:
                while not self._faces:
                    self._face_lock.wait(0.5)
                jobs: List[Job] = []
                done = False
                while self._faces:
                    part = self._faces.popleft()
                    if not part:
                        done = True
                        break
                    jobs.extend(part)
            if jobs:
                self._embedding = True
                try:
                    with self._stage_threads(alone=self.idle):
                        self._embed(jobs)
                finally:
                    self._embedding = False
            if done:
                return

    def _embed(self, jobs: List[Job]) -> None:
        groups: Dict[Tuple[str, str], List[Job]] = {}
        for job in jobs:
            groups.setdefault((str(job.recognizer), job.normalization), []).append(job)
        for (name, normalization), members in groups.items():
            started = time.perf_counter()
            try:
                recognizer = self.recognizer_for(name)
                spec: InputSpec = recognizer.spec_for(normalization)
                pixels = [job.pixels for job in members if job.pixels is not None and len(job.pixels)]
                count = sum(len(p) for p in pixels)
                embeddings = recognizer.embed(np.concatenate(pixels), spec=spec) if pixels else None
            except Exception as exc:  # noqa: BLE001 (any failure of the model fails this call's images only)
                logger.exception("recognizer %s failed on a batch of %d images", name, len(members))
                self.metrics.model_errors.inc(stage="embed")
                error = ModelRunError(f"the recognizer {name!r} failed on a batch of {len(members)} images: {exc}")
                for job in members:
                    job.future.set_exception(error)
                continue
            self.metrics.stage_time.observe(time.perf_counter() - started, stage="embed")
            self.metrics.batch_size.observe(count, stage="embed")
            start = 0
            for job in members:
                record = job.record
                assert record is not None
                size = 0 if job.pixels is None else len(job.pixels)
                if size and embeddings is not None:
                    record.embeddings = embeddings[start : start + size]
                    start += size
                else:
                    record.embeddings = np.zeros((0, int(recognizer.embedding_size)), np.float32)
                job.pixels = None
                if not job.future.done():
                    job.future.set_result(record)
