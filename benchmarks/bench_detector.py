"""``deepbatch bench``: a detector's raw batched throughput against end-to-end extraction on real photos.

For each batch size the table gives images/s and ms/image of

* **raw**: ``session.run`` alone, on a ready float32 batch (real photos, already letterboxed), as many images as
  the end-to-end runs: the model's own batched throughput, the limit to approach;
* **detect**: files (or decoded frames) in, :class:`~deepbatch.structures.Faces` out, through the pipelined
  :func:`~deepbatch.api.extract.iter_detections` (read, decode, letterbox, run, decode, NMS, map back);
* **extract**: :func:`deepbatch.extract_faces` on the same inputs: detection plus the aligned crops and
  DeepFace-style dicts;

and the ratios *detect / raw* and *extract / raw*. ``--reference insightface`` adds InsightFace's own per-image
loop (``insightface.model_zoo.scrfd.SCRFD.detect`` after ``cv2.imread``) on the same weights and providers, and the
ratio of deepbatch's batched detection to it. ``--breakdown`` times every stage of one image at a time, without
overlap, to show where end-to-end time goes. Speed is measured here, never asserted in tests.

Run ``deepbatch bench --help`` (from a checkout of the repository) or ``python benchmarks/bench_detector.py --help``;
``make bench`` runs it on ``../shared``. ``--record docs/measurements/NAME.json`` records the table with its command
line, date, machine and load (the format of ``tools/docs_tables.py``), which ``make docs-tables`` then shows in the
docs page that names it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from deepbatch.errors import DeepbatchError, MissingDependencyError

logger = logging.getLogger(__name__)

SOURCES = ("files", "frames")
REFERENCES = ("none", "insightface")
EXTRACT_APIS = ("extract_faces", "iter_extract_faces")


@dataclass
class Timing:
    """``images`` processed in ``wall`` seconds, using ``cpu`` seconds of this process's CPU time (all threads)."""

    images: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        """Images per second of wall-clock time."""
        return self.images / self.wall if self.wall > 0 else float("inf")

    @property
    def cpu_ms(self) -> float:
        """Milliseconds of CPU time per image: the work done, which other load on the machine hardly changes."""
        return self.cpu / self.images * 1e3


class _Clock:
    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def timing(self, images: int) -> Timing:
        return Timing(images, self.wall, self.cpu)


@dataclass
class Row:
    """Throughput at one batch size, in images per second (``None`` where not measured), and CPU ms per image."""

    batch_size: int
    raw: float
    detect: Optional[float] = None
    extract: Optional[float] = None
    raw_cpu_ms: Optional[float] = None
    detect_cpu_ms: Optional[float] = None
    extract_cpu_ms: Optional[float] = None

    def add(self, column: str, timing: Timing) -> None:
        """Keep the best of several attempts: the highest rate and the lowest CPU time per image."""
        setattr(self, column, max(getattr(self, column) or 0.0, timing.rate))
        cpu = getattr(self, f"{column}_cpu_ms")
        setattr(self, f"{column}_cpu_ms", timing.cpu_ms if cpu is None else min(cpu, timing.cpu_ms))

    @property
    def detect_ratio(self) -> Optional[float]:
        return None if self.detect is None else self.detect / self.raw

    @property
    def extract_ratio(self) -> Optional[float]:
        return None if self.extract is None else self.extract / self.raw


@dataclass
class Report:
    """Everything one ``deepbatch bench`` run measured."""

    backend: str
    model: str
    input_size: Tuple[int, int]  # the canvas, (width, height)
    provider: str
    threads: Optional[int]
    workers: Optional[int]
    images: int
    photos: int
    source: str
    extract_api: str = "extract_faces"
    repeat: int = 1
    rows: List[Row] = field(default_factory=list)
    reference: Optional[float] = None
    breakdown: Dict[str, float] = field(default_factory=dict)


def _batch_sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch-sizes takes comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--batch-sizes takes positive integers, got {text!r}")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``deepbatch bench``."""
    parser.add_argument("--backend", default="scrfd", help="registered detector name (default: scrfd)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 8, 16, 32], metavar="1,8,16,32",
                        help="comma-separated batch sizes (default: 1,8,16,32)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="square canvas side in pixels (default: the backend's own canvas, 640 for scrfd)")
    parser.add_argument("--images", type=int, default=500,
                        help="images per measurement; the photos are cycled to reach it (default: 500)")
    parser.add_argument("--data", default=os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset"),
                        help="folder of photos (default: $DEEPBATCH_TEST_DATA, else ../shared/dataset)")
    parser.add_argument("--source", choices=SOURCES, default="files",
                        help="end-to-end input: image files (read and decoded every time) or frames decoded once "
                             "beforehand, as from a video decoder (default: files)")
    parser.add_argument("--providers", default="auto", help="auto, cpu, cuda, tensorrt (default: auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads (default: one per usable core)")
    parser.add_argument("--workers", type=int, default=None,
                        help="prefetch threads (default: one per two cores, 1 to 4; 0 = no pipelining)")
    parser.add_argument("--skip-extract", action="store_true", help="time detection only, without the crops")
    parser.add_argument("--extract-api", choices=EXTRACT_APIS, default="extract_faces",
                        help="what the extract columns time: extract_faces (a list of every result) or "
                             "iter_extract_faces (the streaming form, crops cut on the prefetch threads)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure every column this many times, alternating, and keep the best (default: 1)")
    parser.add_argument("--reference", choices=REFERENCES, default="none",
                        help="also time InsightFace's per-image SCRFD loop on the same weights")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage of one image at a time")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    parser.add_argument("--record", default=None, metavar="docs/measurements/NAME.json",
                        help="also record the table for the docs: command line, date, machine, load and rows")


def photo_paths(folder: Path) -> List[Path]:
    from deepbatch.io.images import list_image_files

    paths = list_image_files(folder)
    if not paths:
        raise DeepbatchError(f"no photos found in {folder}: pass --data FOLDER or set DEEPBATCH_TEST_DATA")
    return paths


def time_raw(detector: Any, photos: Sequence[np.ndarray], batch_size: int, images: int) -> Timing:
    """``session.run`` alone on one ready batch of letterboxed photos, run until ``images`` are done."""
    from deepbatch.ops.letterbox import letterbox

    blob = letterbox(list(islice(cycle(photos), batch_size)), detector.input_spec).blob
    detector.model.run(blob)  # warm-up: first-run allocations and kernel selection
    runs = max(1, -(-images // batch_size))
    with _Clock() as clock:
        for _ in range(runs):
            detector.model.run(blob)
    return clock.timing(runs * batch_size)


def time_detect(detector: Any, inputs: Sequence[Any], batch_size: int, workers: Optional[int]) -> Timing:
    """Pipelined detection over ``inputs`` (paths or frames)."""
    from deepbatch.api.extract import iter_detections

    with _Clock() as clock:
        count = sum(1 for _ in iter_detections(inputs, detector, batch_size, workers=workers))
    return clock.timing(count)


def time_extract(detector: Any, inputs: Sequence[Any], batch_size: int, api: str = "extract_faces",
                 workers: Optional[int] = None) -> Timing:
    """:func:`deepbatch.extract_faces` (or its streaming form) over ``inputs``."""
    from deepbatch.api.extract import extract_faces, iter_extract_faces

    with _Clock() as clock:
        if api == "iter_extract_faces":
            count = sum(1 for _ in iter_extract_faces(inputs, detector_backend=detector, batch_size=batch_size,
                                                      enforce_detection=False, workers=workers))
        else:
            count = len(extract_faces(list(inputs), detector_backend=detector, batch_size=batch_size,
                                      enforce_detection=False))
    return clock.timing(count)


def time_insightface(model_path: Path, paths: Sequence[Path], input_size: Tuple[int, int], providers: Any) -> float:
    """Images/s of InsightFace's reference loop: ``cv2.imread`` then ``SCRFD.detect``, one image at a time."""
    import cv2

    try:
        from insightface.model_zoo.scrfd import SCRFD
    except ImportError as exc:
        raise MissingDependencyError("insightface", "bench", "the InsightFace reference benchmark") from exc
    from deepbatch.runtime.session import CPU, resolve_providers

    reference = SCRFD(model_file=str(model_path))  # InsightFace's own session, as its users run it
    on_cpu = resolve_providers(providers)[0][0] == CPU
    reference.prepare(-1 if on_cpu else 0, input_size=input_size, det_thresh=0.5)
    reference.detect(cv2.imread(str(paths[0])), input_size=input_size)
    with _Clock() as clock:
        for path in paths:
            reference.detect(cv2.imread(str(path)), input_size=input_size)
    return clock.timing(len(paths)).rate


def time_stages(detector: Any, paths: Sequence[Path], repeat: int = 1) -> Dict[str, float]:
    """Milliseconds per image of each stage, run one image at a time with nothing overlapped."""
    from deepbatch.api.extract import record_dicts
    from deepbatch.core.stream import FaceRules
    from deepbatch.io.images import load_image
    from deepbatch.records import ImageRecord

    rules = FaceRules("whole_image")

    totals = {"read + decode": 0.0, "letterbox": 0.0, "session.run": 0.0, "decode + nms": 0.0, "crops + dicts": 0.0}
    count = 0
    for path in list(paths) * repeat:
        t0 = time.perf_counter()
        image = load_image(path)
        t1 = time.perf_counter()
        batch = detector.prepare_batch([image])
        t2 = time.perf_counter()
        outputs = detector.model.run(batch.blob)
        t3 = time.perf_counter()
        faces = detector.faces(outputs, batch)[0]
        t4 = time.perf_counter()
        chosen = rules.select(faces, image.shape)
        record_dicts(ImageRecord(0, None, shape=image.shape, faces=chosen, crops=rules.cut(image, chosen).crops),
                     "rgb", True)
        t5 = time.perf_counter()
        detector._buffers.give(batch.buffer)
        for key, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[key] += seconds
        count += 1
    return {key: seconds / count * 1e3 for key, seconds in totals.items()}


def measure(args: argparse.Namespace, progress: Callable[[str], None] = logger.info) -> Report:
    """Run the benchmark that ``args`` describes (see :func:`add_arguments`)."""
    from deepbatch.detectors.base import OnnxDetector, build_detector
    from deepbatch.io.images import load_image

    paths = photo_paths(Path(args.data))
    detector = build_detector(args.backend, input_size=args.input_size, providers=args.providers,
                              threads=args.threads)
    if not isinstance(detector, OnnxDetector):
        raise DeepbatchError(f"deepbatch bench times ONNX detectors; {args.backend!r} does not run a model session")
    photos = [load_image(p) for p in paths]
    stream: List[Any] = list(islice(cycle(paths if args.source == "files" else photos), args.images))
    report = Report(args.backend, detector.model.path.name, detector.input_spec.size, detector.model.providers[0],
                    args.threads, args.workers, len(stream), len(paths), args.source, args.extract_api, args.repeat)
    for size in args.batch_sizes:
        row = Row(size, 0.0)
        for attempt in range(1, args.repeat + 1):  # best of the attempts: the run least disturbed by other load
            progress(f"batch {size}, attempt {attempt}/{args.repeat}: raw model")
            row.add("raw", time_raw(detector, photos, size, len(stream)))
            progress(f"batch {size}, attempt {attempt}/{args.repeat}: detection")
            row.add("detect", time_detect(detector, stream, size, args.workers))
            if not args.skip_extract:
                progress(f"batch {size}, attempt {attempt}/{args.repeat}: {args.extract_api}")
                row.add("extract", time_extract(detector, stream, size, args.extract_api, args.workers))
        report.rows.append(row)
    if args.reference == "insightface":
        progress("InsightFace reference loop")
        report.reference = max(time_insightface(detector.model.path, list(islice(cycle(paths), len(stream))),
                                                report.input_size, args.providers) for _ in range(args.repeat))
    if args.breakdown:
        progress("per-stage breakdown")
        report.breakdown = time_stages(detector, paths, args.repeat)
    return report


def _cell(value: Optional[float], pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return None if numerator is None or not denominator else numerator / denominator


def format_report(report: Report) -> str:
    """The table ``deepbatch bench`` prints."""
    lines = [
        f"backend {report.backend} ({report.model}) at {report.input_size[0]}x{report.input_size[1]} "
        f"on {report.provider}, "
        f"intra-op threads {report.threads or 'default'}, prefetch workers "
        f"{'default' if report.workers is None else report.workers}",
        f"{report.images} images ({report.photos} photos cycled), end-to-end input: {report.source}; "
        f"extract = {report.extract_api}; best of {report.repeat} alternating run(s) per cell",
        "",
        f"{'batch':>5}  {'raw img/s':>9}  {'raw ms/img':>10}  {'detect img/s':>12}  {'detect ms/img':>13}  "
        f"{'extract img/s':>13}  {'extract ms/img':>14}  {'detect/raw':>10}  {'extract/raw':>11}",
    ]
    for row in report.rows:
        lines.append(
            f"{row.batch_size:>5}  {row.raw:>9.1f}  {1e3 / row.raw:>10.2f}  {_cell(row.detect):>12}  "
            f"{_cell(None if row.detect is None else 1e3 / row.detect, '{:.2f}'):>13}  {_cell(row.extract):>13}  "
            f"{_cell(None if row.extract is None else 1e3 / row.extract, '{:.2f}'):>14}  "
            f"{_cell(row.detect_ratio, '{:.2f}'):>10}  {_cell(row.extract_ratio, '{:.2f}'):>11}"
        )
    lines += ["", "CPU time per image, all threads (ms; the work done, hardly changed by other load on the machine):",
              f"{'batch':>5}  {'raw':>8}  {'detect':>8}  {'extract':>8}  {'raw/detect':>10}  {'raw/extract':>11}"]
    for row in report.rows:
        cells = [row.raw_cpu_ms, row.detect_cpu_ms, row.extract_cpu_ms]
        ratios = [_ratio(row.raw_cpu_ms, row.detect_cpu_ms), _ratio(row.raw_cpu_ms, row.extract_cpu_ms)]
        lines.append(f"{row.batch_size:>5}  " + "  ".join(f"{_cell(v, '{:.2f}'):>8}" for v in cells) + "  "
                     + f"{_cell(ratios[0], '{:.2f}'):>10}  {_cell(ratios[1], '{:.2f}'):>11}")
    if report.reference is not None:
        best = max((row.detect for row in report.rows if row.detect is not None), default=None)
        lines += ["", f"InsightFace per-image loop (imread + SCRFD.detect): {report.reference:.1f} img/s, "
                      f"{1e3 / report.reference:.2f} ms/img"]
        if best is not None:
            lines.append(f"deepbatch batched detection (best batch size) / InsightFace loop: "
                         f"{best / report.reference:.2f}x")
    if report.breakdown:
        lines += ["", "one image at a time, no overlap (ms/image):"]
        lines += [f"  {stage:<14} {ms:8.2f}" for stage, ms in report.breakdown.items()]
        lines.append(f"  {'total':<14} {sum(report.breakdown.values()):8.2f}")
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """The ``deepbatch bench`` command that measures what ``args`` asks (the photos folder and outputs left out)."""
    words = ["deepbatch bench", f"--backend {args.backend}", f"--batch-sizes {','.join(map(str, args.batch_sizes))}"]
    words += [f"--input-size {args.input_size}"] if args.input_size else []
    words += [f"--images {args.images}", f"--source {args.source}", f"--providers {args.providers}"]
    words += [f"--{name} {getattr(args, name)}" for name in ("threads", "workers") if getattr(args, name) is not None]
    words += ["--skip-extract"] if args.skip_extract else [f"--extract-api {args.extract_api}"]
    words += [f"--repeat {args.repeat}"]
    words += [f"--reference {args.reference}"] if args.reference != "none" else []
    words += ["--breakdown"] if args.breakdown else []
    return " ".join(words)


def load_averages() -> Optional[str]:
    """The 1-, 5- and 15-minute load averages, or None where the system has none."""
    try:
        return " / ".join(f"{value:.1f}" for value in os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine() -> str:
    """The CPU, its usable cores and the ONNX Runtime build, in words."""
    import onnxruntime

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
    except OSError:
        pass
    from deepbatch.runtime.session import usable_cpus

    return f"{model}, {usable_cpus()} usable cores, {platform.system()}, onnxruntime {onnxruntime.__version__}"


def measurement(report: Report, args: argparse.Namespace, load: Tuple[Optional[str], Optional[str]]) -> Dict[str, Any]:
    """The run as a measurement of the docs (``tools/docs_tables.py``): one row per batch size."""
    api = "extract" if args.skip_extract else f"`{report.extract_api}`"
    columns = ["batch", "raw img/s", "detect img/s", f"{api} img/s", "detect / raw", "extract / raw",
               "raw CPU ms/image", "detect CPU ms/image", "extract CPU ms/image"]
    rows = [[str(row.batch_size), _cell(row.raw), _cell(row.detect), _cell(row.extract),
             _cell(row.detect_ratio, "{:.2f}"), _cell(row.extract_ratio, "{:.2f}"),
             _cell(row.raw_cpu_ms), _cell(row.detect_cpu_ms), _cell(row.extract_cpu_ms)] for row in report.rows]
    start, end = load
    return {
        "title": f"{report.backend} ({report.model}) at {report.input_size[0]}x{report.input_size[1]} on "
                 f"{report.provider}: {report.images} images ({report.photos} photos cycled) from {report.source}, "
                 f"best of {report.repeat} alternating run(s)",
        "command": command_line(args),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "machine": machine(),
        "load": None if start is None else f"1/5/15-min load averages {start} at the start, {end} at the end",
        "columns": columns,
        "rows": rows,
    }


def record(path: Path, data: Dict[str, Any]) -> None:
    """Write ``data`` to ``path`` in the docs' measurement format (``tools/docs_tables.py`` of this checkout)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    try:
        import docs_tables
    finally:
        sys.path.pop(0)
    docs_tables.write_measurement(path, data)


def run(args: argparse.Namespace) -> int:
    """``deepbatch bench``: measure, print the table, optionally write JSON and record it for the docs. Returns the
    exit code."""
    if args.images < 1 or args.repeat < 1:
        raise DeepbatchError(f"--images and --repeat must be positive integers, got {args.images} and {args.repeat}")
    load_at_start = load_averages()
    report = measure(args)
    sys.stdout.write(format_report(report) + "\n")
    if args.record:
        record(Path(args.record), measurement(report, args, (load_at_start, load_averages())))
    if args.json_path:
        data = asdict(report)
        for row, out in zip(report.rows, data["rows"]):
            out.update(detect_ratio=row.detect_ratio, extract_ratio=row.extract_ratio)
        Path(args.json_path).write_text(json.dumps(data, indent=2))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="deepbatch bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
