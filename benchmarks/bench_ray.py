"""Images/s of ``deepbatch.ray.extract_faces`` with 1, 2, ... workers on a local Ray, against one local process.

Each run reads the photos with ``ray.data.read_binary_files`` (decoding happens on the workers) and is timed end to
end, actor start-up and model loading included; ``--repeat`` feeds the photo list several times so that start-up
weighs less. The local line loads and detects the same files in this process (decoding included). Usage::

    python benchmarks/bench_ray.py [--photos DIR] [--workers 1,2] [--repeat 1] [--backend scrfd] [--cpus N]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import List

from deepbatch.io.images import list_image_files

logger = logging.getLogger("bench_ray")
ROOT = Path(__file__).resolve().parent.parent


def local_rate(files: List[str], backend: str, batch_size: int) -> float:
    from deepbatch.api.extract import iter_detections
    from deepbatch.detectors import build_detector

    detector = build_detector(backend)
    start = time.perf_counter()
    count = sum(1 for _ in iter_detections(files, detector, batch_size, on_error="skip"))
    return count / (time.perf_counter() - start)


def ray_rate(ray, files: List[str], backend: str, batch_size: int, workers: int) -> float:  # type: ignore[no-untyped-def]
    import deepbatch.ray as dray

    start = time.perf_counter()
    ds = ray.data.read_binary_files(files, include_paths=True)
    count = dray.extract_faces(ds, detector_backend=backend, batch_size=batch_size, num_workers=workers).count()
    return count / (time.perf_counter() - start)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset")))
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to time")
    parser.add_argument("--repeat", type=int, default=1, help="feed the photo list this many times")
    parser.add_argument("--backend", default="scrfd")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    args = parser.parse_args()

    import ray

    files = [str(p) for p in list_image_files(args.photos)] * args.repeat
    env = {"PYTHONPATH": str(ROOT), "DEEPBATCH_WEIGHTS": os.environ.get("DEEPBATCH_WEIGHTS", "")}
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": env})
    ray.data.DataContext.get_current().enable_progress_bars = False
    logger.info("%d images (%s), %s, %d CPUs", len(files), args.photos, args.backend, args.cpus)
    logger.info("local, one process: %.1f images/s", local_rate(files, args.backend, args.batch_size))
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            rate = ray_rate(ray, files, args.backend, args.batch_size, workers)
            logger.info("ray, %d worker(s): %.1f images/s (end to end, start-up included)", workers, rate)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
