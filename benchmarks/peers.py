"""deepbatch side by side with InsightFace's loop and DeepFace, in one process, on the same photos.

Every contestant processes the same photos once per round; the rounds are interleaved (round 1 runs every
contestant, then round 2, ...), so load from other processes on a shared machine falls on all of them alike, and
each contestant's images/s is the median over the rounds. Ratios are taken between those medians. Usage::

    python benchmarks/peers.py [--photos DIR] [--rounds 5] [--deepface yunet,opencv,mtcnn] [--slow-images 16]
                               [--batch-sizes 1,2,4,8,16,32] [--only PREFIX,...] [--json peers.json]

Contestants (SCRFD-500M at 640 unless named otherwise; all from files unless "frames"):

* ``insightface loop``: ``cv2.imread`` then InsightFace's ``SCRFD.detect``, one image at a time (boxes only);
* ``detect``: :func:`deepbatch.detect` (reduced JPEG decoding), at ``batch_size="auto"`` and at each fixed size;
* ``detect, full decode``: the same detection with every photo decoded at full size;
* ``extract_faces``: :func:`deepbatch.extract_faces` (crops included), ``"auto"`` and each fixed size;
* ``extract_faces, frames``: the same on photos decoded beforehand;
* ``raw model``: ``session.run`` on a ready letterboxed batch of 1;
* ``imread`` / ``imread reduced 2``: ``cv2.imread`` alone, full and with ``IMREAD_REDUCED_COLOR_2``;
* ``DeepFace <backend>`` / ``deepbatch <backend>``: ``extract_faces`` of both libraries with the same detector
  (``enforce_detection=False``, aligned); opencv and mtcnn are slow in both, so they run on ``--slow-images``
  photos; ``deepbatch opencv, max_pixels=None`` is the Haar backend without its scan budget, every scale searched.

InsightFace comes from ``make install-bench`` (installed without its dependencies) and DeepFace likewise; a
contestant whose package is missing is left out with a log line. DeepFace's YuNet is given the YuNet file found in
``$DEEPBATCH_WEIGHTS`` (through a temporary ``DEEPFACE_HOME``), so both libraries run the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2

import deepbatch
from deepbatch.core.workers import resolve_batch_size
from deepbatch.detectors import build_detector
from deepbatch.io.images import list_image_files, load_image
from deepbatch.ops.letterbox import letterbox
from deepbatch.weights import resolve_weights

logger = logging.getLogger("peers")

Contestant = Tuple[str, int, Callable[[], Any]]  # name, images per run, the run


def insightface_loop(paths: List[str], model_path: Path) -> Optional[Callable[[], Any]]:
    try:
        from insightface.model_zoo.scrfd import SCRFD
    except ImportError as exc:
        logger.warning("InsightFace loop left out (%s); run `make install-bench`", exc)
        return None
    reference = SCRFD(model_file=str(model_path))
    reference.prepare(-1, input_size=(640, 640), det_thresh=0.5)

    def run() -> None:
        for path in paths:
            reference.detect(cv2.imread(path), input_size=(640, 640))

    return run


def deepface_runner(backend: str, paths: List[str], yunet_file: Optional[Path]) -> Optional[Callable[[], Any]]:
    if backend == "yunet" and yunet_file is not None and "DEEPFACE_HOME" not in os.environ:
        home = Path(tempfile.mkdtemp(prefix="deepface-home-"))
        (home / ".deepface" / "weights").mkdir(parents=True)
        (home / ".deepface" / "weights" / "face_detection_yunet_2023mar.onnx").symlink_to(yunet_file)
        os.environ["DEEPFACE_HOME"] = str(home)
    try:
        from deepface import DeepFace
    except (ImportError, ValueError) as exc:
        logger.warning("DeepFace left out (%s); run `make install-bench`", exc)
        return None

    def run() -> None:
        for path in paths:
            DeepFace.extract_faces(path, detector_backend=backend, enforce_detection=False, align=True)

    return run


def rounds(contestants: List[Contestant], count: int) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Images/s and CPU ms per image (this process, all threads) of every contestant in every round, the rounds
    interleaved; one untimed warm-up run each."""
    for name, _, run in contestants:
        logger.info("warm-up: %s", name)
        run()
    rates: Dict[str, List[float]] = {name: [] for name, _, _ in contestants}
    cpu: Dict[str, List[float]] = {name: [] for name, _, _ in contestants}
    for number in range(1, count + 1):
        logger.info("round %d/%d", number, count)
        for name, images, run in contestants:
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            rates[name].append(images / (time.perf_counter() - start))
            cpu[name].append((time.process_time() - start_cpu) / images * 1e3)
    return rates, cpu


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset")))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32", help="fixed sizes compared with 'auto'")
    parser.add_argument("--deepface", default="yunet,opencv,mtcnn", help="backends compared with DeepFace ('' = none)")
    parser.add_argument("--slow-images", type=int, default=16, help="photos for the slow opencv and mtcnn backends")
    parser.add_argument("--only", default="", help="comma-separated name prefixes of the contestants to run")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the medians to this file")
    args = parser.parse_args()

    paths = [str(p) for p in list_image_files(args.photos)]
    frames = [load_image(p) for p in paths]
    detector = build_detector("scrfd")
    auto = resolve_batch_size("auto", detector)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    n = len(paths)
    blob = letterbox(frames[:1], detector.input_spec).blob

    def detect(size: Any) -> Callable[[], Any]:
        return lambda: deepbatch.detect(paths, detector, batch_size=size)

    def detect_full(size: Any) -> Callable[[], Any]:
        return lambda: sum(1 for _ in deepbatch.iter_detect(paths, detector, batch_size=size, full_resolution=True))

    def extract(inputs: List[Any], size: Any, backend: Any = detector) -> Callable[[], Any]:
        return lambda: deepbatch.extract_faces(inputs, detector_backend=backend, enforce_detection=False,
                                               batch_size=size)

    contestants: List[Contestant] = []
    loop = insightface_loop(paths, detector.model.path)
    if loop is not None:
        contestants.append(("insightface loop", n, loop))
    contestants += [("detect, auto", n, detect("auto")), ("detect, full decode, auto", n, detect_full("auto")),
                    ("extract_faces, auto", n, extract(paths, "auto")),
                    ("extract_faces, frames, auto", n, extract(frames, "auto"))]
    contestants += [(f"detect, batch {s}", n, detect(s)) for s in sizes]
    contestants += [(f"extract_faces, batch {s}", n, extract(paths, s)) for s in sizes]
    contestants += [
        ("raw model, batch 1", n, lambda: [detector.model.run(blob) for _ in range(n)]),
        ("imread", n, lambda: [cv2.imread(p) for p in paths]),
        ("imread reduced 2", n, lambda: [cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_2) for p in paths]),
    ]
    yunet_file = resolve_weights(build_detector("yunet").weights) if "yunet" in args.deepface else None
    for backend in [b for b in args.deepface.split(",") if b]:
        subset = paths if backend == "yunet" else paths[: args.slow_images]
        runner = deepface_runner(backend, subset, yunet_file)
        if runner is not None:
            contestants.append((f"DeepFace {backend}", len(subset), runner))
            contestants.append((f"deepbatch {backend}", len(subset), extract(subset, "auto", backend)))
            if backend == "opencv":
                unbounded = extract(subset, "auto", build_detector("opencv", max_pixels=None))
                contestants.append(("deepbatch opencv, max_pixels=None", len(subset), unbounded))

    if args.only:
        contestants = [c for c in contestants if c[0].startswith(tuple(args.only.split(",")))]
    rates, cpu = rounds(contestants, args.rounds)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu_ms = {name: statistics.median(values) for name, values in cpu.items()}
    print(report(medians, rates, cpu_ms, auto, sizes, args, n))
    if args.json_path:
        args.json_path.write_text(json.dumps({"median_images_per_s": medians, "median_cpu_ms_per_image": cpu_ms,
                                              "rounds": rates, "auto_batch": auto, "photos": n,
                                              "cpus": os.cpu_count()}, indent=2))


def report(medians: Dict[str, float], rates: Dict[str, List[float]], cpu_ms: Dict[str, float], auto: int,
           sizes: List[int], args: argparse.Namespace, photos: int) -> str:
    reference = medians.get("insightface loop")
    lines = [f"{photos} photos from {args.photos}, SCRFD-500M at 640 unless named, {args.rounds} interleaved rounds, "
             f"median images/s; batch_size='auto' is {auto} here", "",
             "| what | images/s (median) | range over rounds | CPU ms/image | vs InsightFace loop |",
             "|---|---|---|---|---|"]
    for name, median in medians.items():
        ratio = f"{median / reference:.2f}" if reference and not name.startswith(("DeepFace", "deepbatch ")) else ""
        low, high = min(rates[name]), max(rates[name])
        lines.append(f"| {name} | {median:.1f} | {low:.1f}-{high:.1f} | {cpu_ms[name]:.1f} | {ratio} |")
    for kind in ("detect", "extract_faces"):
        if f"{kind}, auto" not in medians or any(f"{kind}, batch {s}" not in medians for s in sizes):
            continue
        fixed = {s: medians[f"{kind}, batch {s}"] for s in sizes}
        best = max(fixed, key=fixed.__getitem__)
        lines.append(f"\n{kind}: auto ({auto}) {medians[f'{kind}, auto']:.1f} img/s, best fixed size {best} "
                     f"{fixed[best]:.1f} img/s: auto is {100 * (medians[f'{kind}, auto'] / fixed[best] - 1):+.1f}%")
        if auto in fixed:  # two rows of one configuration: how far apart they are is this run's noise
            lines.append(f"  (auto and batch {auto} run the same configuration; they differ by "
                         f"{100 * (medians[f'{kind}, auto'] / fixed[auto] - 1):+.1f}% in this run)")
    for name in [n for n in medians if n.startswith("DeepFace ")]:
        backend = name.split(" ", 1)[1]
        lines.append(f"{backend}: deepbatch extract_faces / DeepFace extract_faces = "
                     f"{medians['deepbatch ' + backend] / medians[name]:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
