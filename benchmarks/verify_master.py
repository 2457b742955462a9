"""Face verification on DeepFace's labelled pairs (``master.csv``): accuracy at the documented thresholds, and
pairs per second batched versus one pair at a time.

    python benchmarks/verify_master.py                       # ArcFace MobileFaceNet + SCRFD, every metric
    python benchmarks/verify_master.py --calibrate           # derive thresholds from the pairs (the table source)
    python benchmarks/verify_master.py --model mobilefacenet_b1 --detector scrfd_2.5g

The photos come from ``--data`` (default ``$DEEPBATCH_TEST_DATA``, else ``../shared/dataset``), weights from
``$DEEPBATCH_WEIGHTS`` (default ``../shared/weights``). Three ways of running the same pairs are timed, after one
warm-up pass that builds the models:

* ``one pair at a time``: ``deepbatch.verify`` per pair, as a DeepFace loop does (each image detected and embedded
  every time it appears);
* ``batched, every image``: ``deepbatch.represent`` over the 2N images of the pairs in batches, then distances;
* ``batched, distinct images``: ``deepbatch.verify_pairs``, which embeds each distinct image once.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("DEEPBATCH_WEIGHTS", str(ROOT.parent / "shared" / "weights"))
os.environ.setdefault("DEEPBATCH_TEST_DATA", str(ROOT.parent / "shared" / "dataset"))

import deepbatch  # noqa: E402
from deepbatch.recognition.calibration import (  # noqa: E402
    accuracy_at,
    calibrate_threshold,
    cross_validated_accuracy,
    fit_confidence,
)
from deepbatch.recognition.distance import METRICS, pair_distances  # noqa: E402

logger = logging.getLogger("verify_master")


def read_pairs(folder: Path) -> Tuple[List[Tuple[str, str]], np.ndarray]:
    """``(pairs of paths, same-person labels)`` from ``folder/master.csv`` (``file_x,file_y,Decision``)."""
    with open(folder / "master.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    pairs = [(str(folder / r["file_x"]), str(folder / r["file_y"])) for r in rows]
    return pairs, np.array([r["Decision"].strip().lower() == "yes" for r in rows])


def distances(pairs: List[Tuple[str, str]], model: str, detector: str, metric: str, batch_size: int) -> np.ndarray:
    """``(N,)`` distances of the pairs (threshold-free: every pair is measured, none is decided)."""
    results = deepbatch.verify_pairs(pairs, model_name=model, detector_backend=detector, distance_metric=metric,
                                     threshold=0.0, batch_size=batch_size)
    return np.array([r["distance"] for r in results])


def calibrate(pairs: List[Tuple[str, str]], same: np.ndarray, args: argparse.Namespace) -> None:
    print(f"Thresholds calibrated on {len(pairs)} pairs ({int(same.sum())} same person), model {args.model}, "
          f"detector {args.detector}")
    print("| metric | threshold | accuracy at threshold | 10-fold accuracy | same max | different min | margin |")
    print("|---|---|---|---|---|---|---|")
    fits = {}
    for metric in METRICS:
        d = distances(pairs, args.model, args.detector, metric, args.batch_size)
        c = calibrate_threshold(d, same, metric)
        cv = cross_validated_accuracy(d, same, metric)
        fits[metric] = fit_confidence(d, same, c.threshold)
        print(f"| {metric} | {c.threshold:.4f} | {c.accuracy:.2%} | {cv:.2%} | {c.same_max:.4f} | "
              f"{c.different_min:.4f} | {c.margin:.4f} |")
    print("\nConfidence mappings (deepbatch.recognition.calibration.ConfidenceModel):")
    for metric, fit in fits.items():
        print(f'    "{metric}": ConfidenceModel({fit.w:.4f}, {fit.b:.4f}, {fit.normalizer:.4f}, '
              f"({fit.true_range[0]:.2f}, {fit.true_range[1]:.2f}), "
              f"({fit.false_range[0]:.2f}, {fit.false_range[1]:.2f})),")
    images = sorted(str(p) for p in args.data.glob("*.jpg"))
    found = deepbatch.represent(images, model_name=args.model, detector_backend=args.detector,
                                batch_size=args.batch_size, return_numpy=True)
    values = np.concatenate([face["embedding"] for faces in found for face in faces])
    print(f"\nEmbedding value range over the {len(images)} photos' faces (minmax_normalize): "
          f"({values.min():.4f}, {values.max():.4f})")


def evaluate(pairs: List[Tuple[str, str]], same: np.ndarray, args: argparse.Namespace) -> None:
    recognizer = deepbatch.build_recognizer(args.model)
    print(f"{len(pairs)} pairs ({int(same.sum())} same person), model {args.model}, detector {args.detector}")
    print("| metric | threshold | accuracy | 10-fold accuracy (threshold refitted per fold) |")
    print("|---|---|---|---|")
    for metric in METRICS:
        d = distances(pairs, args.model, args.detector, metric, args.batch_size)
        threshold = recognizer.threshold(metric)
        print(f"| {metric} | {threshold:.4f} | {accuracy_at(d, same, threshold):.2%} | "
              f"{cross_validated_accuracy(d, same, metric):.2%} |")


def timed(label: str, count: int, run) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"| {label} | {seconds:.2f} | {count / seconds:.1f} |")
    return seconds


def throughput(pairs: List[Tuple[str, str]], args: argparse.Namespace) -> None:
    model, detector, batch = args.model, args.detector, args.batch_size
    deepbatch.verify(pairs[0][0], pairs[0][1], model_name=model, detector_backend=detector)  # build and warm up
    images = [path for pair in pairs for path in pair]
    print(f"\nThroughput on {len(pairs)} pairs ({len(set(images))} distinct images), batch size {batch}, "
          f"{os.cpu_count()} CPU cores")
    print("| mode | seconds | pairs/s |")
    print("|---|---|---|")

    def one_at_a_time() -> None:
        for a, b in pairs:
            deepbatch.verify(a, b, model_name=model, detector_backend=detector)

    def every_image() -> None:
        found = deepbatch.represent(images, model_name=model, detector_backend=detector, batch_size=batch,
                                    max_faces=1, return_numpy=True)
        embeddings = np.stack([faces[0]["embedding"] for faces in found])
        pair_distances(embeddings[0::2], embeddings[1::2], "cosine")

    def distinct() -> None:
        deepbatch.verify_pairs(pairs, model_name=model, detector_backend=detector, batch_size=batch)

    single = timed("one pair at a time (verify)", len(pairs), one_at_a_time)
    timed("batched, every image (represent)", len(pairs), every_image)
    batched = timed("batched, distinct images once (verify_pairs)", len(pairs), distinct)
    print(f"\nverify_pairs is {single / batched:.1f}x faster than one pair at a time")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ["DEEPBATCH_TEST_DATA"]))
    parser.add_argument("--model", default="arcface_mbf")
    parser.add_argument("--detector", default="scrfd")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibrate", action="store_true", help="derive thresholds from the pairs and stop")
    parser.add_argument("--skip-timing", action="store_true", help="accuracy only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pairs, same = read_pairs(args.data)
    if args.calibrate:
        calibrate(pairs, same, args)
        return 0
    evaluate(pairs, same, args)
    if not args.skip_timing:
        throughput(pairs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
