"""Peak memory of a streaming run does not grow with the length of the stream.

``iter_extract_faces`` is fed a generator of frames made by cycling the photos of ``--data`` (each frame a fresh
copy, as a video decoder hands them out) and every result is dropped once counted. The script reports the process's
resident-set high-water mark (``resource.getrusage``), and its growth over the baseline taken after the photos are
decoded and the detector is built.

    python benchmarks/bench_streaming.py --images 10000           # one run
    python benchmarks/bench_streaming.py --compare 500,10000      # each length in a fresh process, side by side

A high-water mark only rises within a process, so ``--compare`` runs every length in its own subprocess.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np

logger = logging.getLogger("bench_streaming")


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def frames(photos: List[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """``count`` frames cycling through ``photos``, each a new array."""
    for photo in islice(cycle(photos), count):
        yield photo.copy()


def one_run(args: argparse.Namespace) -> Dict[str, float]:
    from bench_detector import photo_paths

    from deepbatch.api.extract import iter_extract_faces
    from deepbatch.detectors.base import build_detector
    from deepbatch.io.images import load_image

    photos = [load_image(p) for p in photo_paths(Path(args.data))]
    detector = build_detector(args.backend, input_size=args.input_size)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    images = faces = 0
    for result in iter_extract_faces(frames(photos, args.images), detector_backend=detector,
                                     batch_size=args.batch_size, enforce_detection=False):
        images += 1
        faces += len(result)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"images": images, "faces": faces, "seconds": seconds, "images_per_s": images / seconds,
            "baseline_mb": baseline, "peak_mb": peak, "growth_mb": peak - baseline}


def compare(args: argparse.Namespace) -> List[Dict[str, float]]:
    rows = []
    for count in (int(part) for part in args.compare.split(",")):
        command = [sys.executable, __file__, "--images", str(count), "--json", "--data", args.data,
                   "--backend", args.backend, "--input-size", str(args.input_size),
                   "--batch-size", str(args.batch_size)]
        logger.info("streaming %d images in a fresh process", count)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    return rows


def table(rows: List[Dict[str, float]], args: argparse.Namespace) -> str:
    lines = [f"iter_extract_faces, {args.backend} at {args.input_size}, batch size {args.batch_size}, frames from "
             f"{args.data} cycled (fresh copies)", "",
             f"{'images':>7}  {'faces':>7}  {'seconds':>8}  {'img/s':>6}  {'baseline MiB':>12}  {'peak MiB':>9}  "
             f"{'growth MiB':>10}"]
    for row in rows:
        lines.append(f"{row['images']:>7.0f}  {row['faces']:>7.0f}  {row['seconds']:>8.1f}  "
                     f"{row['images_per_s']:>6.1f}  {row['baseline_mb']:>12.0f}  {row['peak_mb']:>9.0f}  "
                     f"{row['growth_mb']:>10.0f}")
    if len(rows) > 1:
        lines += ["", f"peak of the longest run / peak of the shortest: {rows[-1]['peak_mb'] / rows[0]['peak_mb']:.3f}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=500, help="frames to stream (default: 500)")
    parser.add_argument("--compare", default=None, help="comma-separated lengths, each run in a fresh process")
    parser.add_argument("--data", default=os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset"))
    parser.add_argument("--backend", default="scrfd")
    parser.add_argument("--input-size", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    rows = compare(args) if args.compare else [one_run(args)]
    sys.stdout.write((json.dumps(rows[0]) if args.json else table(rows, args)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
