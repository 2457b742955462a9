"""Per-backend table for docs/detectors.md: faces found in two group photos, and images/s at batch 1 vs batch 32.

Every registered detector whose weights are found is measured on photos decoded beforehand (so JPEG decoding is
not counted), in one process, one after the other. Usage::

    python benchmarks/backend_table.py [--photos DIR] [--images 32] [--output table.md] [--detectors a,b]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from deepbatch.detectors import DETECTORS, build_detector
from deepbatch.errors import DeepbatchError
from deepbatch.io.images import list_image_files

logger = logging.getLogger("backend_table")


def images_per_second(detector, images: List[np.ndarray], batch_size: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` timed passes (the machine may be shared: the best pass is the least disturbed one)."""
    detector.detect_faces(images[:batch_size], batch_size=batch_size)  # warm-up: session allocation, caches
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        detector.detect_faces(images, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def row(name: str, photos: Path, images: List[np.ndarray], repeat: int) -> Optional[str]:
    try:
        detector = build_detector(name)
    except (DeepbatchError, ImportError) as exc:
        logger.warning("%s: not measured (%s)", name, type(exc).__name__)
        return None
    couple = len(detector.detect_faces([cv2.imread(str(photos / "couple.jpg"))])[0])
    selfie = len(detector.detect_faces([cv2.imread(str(photos / "selfie-many-people.jpg"))])[0])
    single = images_per_second(detector, images, 1, repeat)
    batched = images_per_second(detector, images, 32, repeat)
    mode = "one call per chunk" if detector.batches_whole_chunks else "loop"
    return f"| `{name}` | {mode} | {couple} | {selfie} | {single:.1f} | {batched:.1f} | {batched / single:.2f} |"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset")))
    parser.add_argument("--images", type=int, default=32, help="photos timed per batch size")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per cell; the best is kept")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--detectors", help="comma-separated detector names to measure (default: every one)")
    args = parser.parse_args()
    images = [cv2.imread(str(p)) for p in list_image_files(args.photos)[: args.images]]
    lines = [
        f"{len(images)} photos of {min(i.shape[1] for i in images)}-{max(i.shape[1] for i in images)} px wide, "
        f"decoded beforehand; {os.cpu_count()} CPU cores; best of {args.repeat} passes.",
        "",
        "| detector | batching | faces in couple.jpg (2) | faces in selfie-many-people.jpg (6) | images/s batch 1 "
        "| images/s batch 32 | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    names = args.detectors.split(",") if args.detectors else DETECTORS.names(aliases=False)
    for name in names:
        line = row(name, args.photos, images, args.repeat)
        if line:
            lines.append(line)
            logger.info(line)
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
