"""Every real detector file in the weights folder through deepbatch: batching mode, photos whose face count equals
``tests/dataset/expected_faces.csv``, batch-vs-single parity, and the prepared graph against the original file.

    python benchmarks/corpus_table.py [--weights ../shared/weights] [--photos ../shared/dataset]

Prints a Markdown table; ``tests/test_corpus.py`` asserts the same quantities.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np

from deepbatch.detectors import build_detector
from deepbatch.runtime.session import create_session

ROOT = Path(__file__).resolve().parent.parent
# Real detector files kept in the shared weights folder -> (registered detector, extra build arguments).
CORPUS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "scrfd_500m_kps.onnx": ("scrfd_500m", {}),
    "scrfd_2.5g_kps.onnx": ("scrfd_2.5g", {}),
    "scrfd_2.5g_fixed640_resize.onnx": ("scrfd_2.5g", {}),
    "face_detection_yunet_2026may.onnx": ("yunet", {}),
    "retinaface_mnet025.onnx": ("retinaface", {}),
    "ultralight_rfb_320.onnx": ("ultralight_320", {}),
    "ultralight_rfb_640.onnx": ("ultralight_640", {}),
    "yolov8_lite_t_face_rawheads.onnx": ("yolov8n", {}),
}
PARITY_PHOTOS = ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img25.jpg", "img54.jpg"]


def expected_faces() -> Dict[str, int]:
    with open(ROOT / "tests" / "dataset" / "expected_faces.csv") as table:
        return {row["file"]: int(row["faces"]) for row in csv.DictReader(table)}


def build(weights: Path, filename: str) -> Any:
    name, extra = CORPUS[filename]
    return build_detector(name, model_path=str(weights / filename), providers="cpu", **extra)


def matching_photos(detector: Any, photos: Path, expected: Dict[str, int]) -> int:
    images = [cv2.imread(str(photos / name)) for name in sorted(expected)]
    found = detector.detect_faces(images, batch_size=16)
    return sum(len(f) == expected[name] for f, name in zip(found, sorted(expected)))


def batch_vs_single_px(detector: Any, images: List[np.ndarray]) -> float:
    """Largest box or landmark difference (pixels) between each image alone and inside one batch; inf when the
    face counts differ."""
    together = detector.detect_faces(images, batch_size=len(images))
    worst = 0.0
    for image, mine in zip(images, together):
        alone = detector.detect_faces([image])[0]
        if len(alone) != len(mine):
            return float("inf")
        if len(alone):
            worst = max(worst, float(np.abs(alone.boxes - mine.boxes).max()))
            if alone.landmarks is not None:
                worst = max(worst, float(np.abs(alone.landmarks - mine.landmarks).max()))
    return worst


def prepared_vs_original(detector: Any, images: List[np.ndarray]) -> float:
    """Largest raw-output difference between the graph deepbatch runs and the unmodified file, one image at a time
    (the file's own batch 1), on real letterboxed photos."""
    session = create_session(str(detector.model.path), "cpu")
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    worst = 0.0
    for image in images:
        blob = detector.prepare_batch([image]).blob.copy()
        ours = detector.model.run(blob)
        theirs = session.run(names, {input_name: blob})
        for mine, reference in zip(ours, theirs):
            worst = max(worst, float(np.abs(mine.reshape(reference.shape) - reference).max()))
    return worst


def calls_per_chunk(detector: Any, images: List[np.ndarray]) -> int:
    before = detector.model.run_calls
    detector.detect_faces(images, batch_size=len(images))
    return detector.model.run_calls - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("DEEPBATCH_WEIGHTS", ROOT.parent /
                                                                                  "shared" / "weights")))
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "dataset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    expected = expected_faces()
    parity = [cv2.imread(str(args.photos / name)) for name in PARITY_PHOTOS]
    rows = ["| file | detector | mode | photos with the expected count (of 64) | batch vs single (px) | "
            "prepared vs original, batch 1 | session calls for a chunk of 6 |", "|---|---|---|---|---|---|---|"]
    for filename in CORPUS:
        if not (args.weights / filename).is_file():
            continue
        detector = build(args.weights, filename)
        rows.append(f"| {filename} | {CORPUS[filename][0]} | {detector.model.mode} | "
                    f"{matching_photos(detector, args.photos, expected)} | "
                    f"{batch_vs_single_px(detector, parity):.3g} | {prepared_vs_original(detector, parity):.3g} | "
                    f"{calls_per_chunk(detector, parity)} |")
    print("\n".join(rows))  # noqa: T201 (a command-line report)


if __name__ == "__main__":
    main()
