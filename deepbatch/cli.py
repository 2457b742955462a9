"""The ``deepbatch`` command line.

::

    deepbatch detect PATH... [--backend scrfd] [--batch-size 32] [--output faces.jsonl] [--save-crops DIR] [--draw DIR]
    deepbatch represent PATH... [--model MobileFaceNet] [--backend scrfd] [--output embeddings.npy|.jsonl]
    deepbatch batchify IN.onnx OUT.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--dynamic-spatial]
    deepbatch check-batch MODEL.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--tolerance 1e-4]
    deepbatch bench --backend NAME --batch-sizes 1,8,16,32 [--input-size 640]
    deepbatch models
    deepbatch --version

``PATH`` is an image file, a folder (searched recursively for image files) or a video file (every frame, or every
``--frame-step``-th, with its frame index and timestamp). Results are JSON lines on stdout or in ``--output``; the
progress bar, warnings and the summary go to stderr.

Exit codes: 0 everything went through; 1 some inputs could not be read (they are reported and skipped), the batch
check failed, or ``batchify`` refused to write an unsafe graph; 2 bad usage or setup (unknown option or model name,
missing weights or package, a file that cannot be read or written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from ._version import __version__
from .errors import DeepbatchError, FaceNotDetectedError, ImageError

logger = logging.getLogger("deepbatch.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C
_WRITABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ----------------------------------------------------------------------------------------------------------------
# Inputs: files, folders and videos as one stream of work items


@dataclass(frozen=True)
class Source:
    """One path to process: an image file, or a video whose frames are read in turn. ``name`` is the path relative to
    the folder it was found in (or its file name), used to name annotated copies and crops."""

    path: Path
    name: Path
    video: bool = False


@dataclass
class WorkItem:
    """One image or video frame to process, in run order (``number``). ``payload`` is what the detector loads (the
    path, or the decoded frame); ``error`` is set when the source could not be read at all."""

    number: int
    source: Source
    payload: Any = None
    frame: Optional[int] = None
    timestamp: Optional[float] = None
    error: Optional[Exception] = None

    def record(self) -> Dict[str, Any]:
        """The JSON fields that say which image or frame this is."""
        out: Dict[str, Any] = {"index": self.number, "path": str(self.source.path)}
        if self.source.video:
            out["frame"] = self.frame
            out["timestamp"] = None if self.timestamp is None else round(self.timestamp, 6)
        return out

    def output_name(self) -> Path:
        """Relative file name for an annotated copy of this image or frame."""
        if self.source.video:
            return self.source.name.with_suffix("") / f"frame_{self.frame or 0:06d}.jpg"
        suffix = self.source.name.suffix.lower()
        return self.source.name if suffix in _WRITABLE_SUFFIXES else self.source.name.with_suffix(".jpg")


def plan_sources(paths: Sequence[str]) -> List[Source]:
    """Expand command-line paths: folders into their image files (recursive, sorted), video files by extension;
    any other path is taken as an image (a missing or unreadable one is reported when it is loaded)."""
    from .io.images import list_image_files
    from .io.video import is_video

    sources: List[Source] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            found = list_image_files(path)
            if not found:
                logger.warning("no image files under %s", path)
            sources.extend(Source(p, p.relative_to(path)) for p in found)
        else:
            sources.append(Source(path, Path(path.name), video=is_video(path)))
    return sources


def count_items(sources: Sequence[Source], frame_step: int) -> Optional[int]:
    """How many images and frames the run will give, as declared (None when a video does not say)."""
    from .io.video import video_info

    total = 0
    for source in sources:
        if not source.video:
            total += 1
            continue
        try:
            frames = video_info(source.path).frame_count
        except ImageError:
            total += 1  # reported as one failed item
            continue
        if frames <= 0:
            return None
        total += -(-frames // frame_step)
    return total


def iter_items(sources: Sequence[Source], frame_step: int = 1) -> Iterator[WorkItem]:
    """One :class:`WorkItem` per image file and per video frame, lazily (one frame decoded at a time)."""
    from .io.video import read_frames

    number = 0
    for source in sources:
        if not source.video:
            yield WorkItem(number, source, payload=str(source.path))
            number += 1
            continue
        try:
            for frame in read_frames(source.path, step=frame_step):
                yield WorkItem(number, source, payload=frame.image, frame=frame.index, timestamp=frame.timestamp)
                number += 1
        except ImageError as exc:
            yield WorkItem(number, source, error=exc)
            number += 1


def problem_of(error: Exception) -> str:
    """The error's message without the batch position (which means nothing on the command line)."""
    return str(getattr(error, "problem", None) or error)


# ----------------------------------------------------------------------------------------------------------------
# Output sinks


@dataclass
class Tally:
    """Counts for the summary line, and the failures to list."""

    items: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, item: WorkItem, faces: int, error: Optional[Exception]) -> None:
        self.items += 1
        self.frames += int(item.source.video and item.frame is not None)
        if error is not None:
            where = str(item.source.path) + (f" frame {item.frame}" if item.frame is not None else "")
            self.failures.append((where, problem_of(error)))
            return
        self.faces += faces
        self.no_face += int(faces == 0)

    def summary(self, verb: str) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        images = self.items - self.frames
        return (
            f"{verb} {images} image(s) and {self.frames} video frame(s): {self.faces} face(s), "
            f"{self.no_face} without a face, {len(self.failures)} failed; {elapsed:.1f} s "
            f"({self.items / elapsed:.1f} images/s)"
        )


class JsonLines:
    """JSON lines to a file (``path``) or to stdout (``None`` or ``-``)."""

    def __init__(self, path: Optional[str]):
        self.path = None if path in (None, "-") else Path(path)
        self._stream: TextIO
        if self.path is None:
            self._stream = sys.stdout
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("w", encoding="utf-8")

    def write(self, record: Dict[str, Any]) -> None:
        self._stream.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.path is None:
            self._stream.flush()
        else:
            self._stream.close()


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` (BGR uint8) by the suffix of ``path`` and write it (works for any path encoding)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    path.write_bytes(data.tobytes())


class DetectSink:
    """Where ``detect`` results go: JSON lines, face crops, annotated copies, the progress bar and the tally."""

    def __init__(self, args: argparse.Namespace, total: Optional[int]):
        from tqdm import tqdm

        self.lines = JsonLines(args.output)
        self.crops = Path(args.save_crops) if args.save_crops else None
        self.draw = Path(args.draw) if args.draw else None
        self.align = not args.no_align
        self.tally = Tally()
        self.progress = tqdm(total=total, unit="img", file=sys.stderr, disable=args.no_progress, dynamic_ncols=True,
                             desc="detect")

    def add(self, item: WorkItem, faces: Any, image: Optional[np.ndarray], error: Optional[Exception]) -> None:
        """Record one image or frame: its ``faces`` (:class:`~deepbatch.structures.Faces`) or its ``error``."""
        from .formatting import confidence, facial_area

        record = item.record()
        if error is not None:
            record.update(faces=[], error=problem_of(error))
        else:
            record.update(
                faces=[{"facial_area": facial_area(face.box, face.landmarks, None if image is None else image.shape),
                        "confidence": confidence(face.score)}
                       for face in faces],
                error=None,
            )
            if image is not None:
                self._write_images(item, faces, image)
        self.lines.write(record)
        self.tally.add(item, 0 if error is not None else len(faces), error)
        self.progress.update(1)

    def _write_images(self, item: WorkItem, faces: Any, image: np.ndarray) -> None:
        from .ops.align import aligned_crop, crop
        from .visualize import draw_faces

        name = item.output_name()
        if self.draw is not None:
            write_image(self.draw / name, draw_faces(image, faces))
        if self.crops is not None:
            for k, face in enumerate(faces):
                pixels = aligned_crop(image, face.box, face.landmarks) if self.align else crop(image, face.box)
                write_image(self.crops / name.parent / f"{name.stem}_face{k}.jpg", pixels)

    def close(self) -> None:
        self.progress.close()
        self.lines.close()


# ----------------------------------------------------------------------------------------------------------------
# Engines: how the work items are run. Each takes the parsed arguments, the work items and a callback per item.

DetectEmit = Callable[[WorkItem, Any, Optional[np.ndarray], Optional[Exception]], None]
RepresentEmit = Callable[[WorkItem, List[Dict[str, Any]], Optional[Exception]], None]


def detect_local(args: argparse.Namespace, items: Iterator[WorkItem], emit: DetectEmit) -> None:
    """Detection in this process: :func:`~deepbatch.detection.iter_detections` over the stream, ``batch_size``
    images per model call, one chunk of images in memory at a time."""
    from .detection import iter_detections, resolve_detector

    detector = resolve_detector(args.backend)
    pending: Deque[WorkItem] = deque()

    def payloads() -> Iterator[Any]:
        for item in items:
            pending.append(item)
            if item.error is None:
                yield item.payload

    for detection in iter_detections(payloads(), detector, args.batch_size, on_error="skip"):
        while pending[0].error is not None:
            failed = pending.popleft()
            emit(failed, None, None, failed.error)
        emit(pending.popleft(), detection.faces, detection.image, detection.error)
    while pending:
        failed = pending.popleft()
        emit(failed, None, None, failed.error)


def represent_local(args: argparse.Namespace, items: Iterator[WorkItem], emit: RepresentEmit) -> None:
    """Embeddings in this process: ``deepbatch.represent`` over chunks of ``batch_size`` images."""
    import deepbatch

    represent = getattr(deepbatch, "represent", None)
    if represent is None:
        raise DeepbatchError("this installation of deepbatch has no deepbatch.represent")
    from itertools import islice

    while True:
        chunk = list(islice(items, args.batch_size))
        if not chunk:
            return
        ready = [item for item in chunk if item.error is None]
        results = represent([item.payload for item in ready], model_name=args.model, detector_backend=args.backend,
                            align=not args.no_align, normalization=args.normalization, max_faces=args.max_faces,
                            batch_size=args.batch_size, on_error="skip") if ready else []
        errors = getattr(results, "errors", {})
        by_number = {item.number: (faces, errors.get(i)) for i, (item, faces) in enumerate(zip(ready, results))}
        for item in chunk:
            if item.error is not None:
                emit(item, [], item.error)
            else:
                faces, error = by_number[item.number]
                emit(item, faces, error)


DETECT_ENGINES: Dict[str, Callable[[argparse.Namespace, Iterator[WorkItem], DetectEmit], None]] = {
    "local": detect_local,
}
REPRESENT_ENGINES: Dict[str, Callable[[argparse.Namespace, Iterator[WorkItem], RepresentEmit], None]] = {
    "local": represent_local,
}
# Engines that run the whole job on a cluster and write Parquet there: ``deepbatch.ray.run_cli(args, command)``.
CLUSTER_ENGINES = ("ray",)


# ----------------------------------------------------------------------------------------------------------------
# Subcommands


def _report_failures(tally: Tally) -> int:
    for where, problem in tally.failures:
        logger.error("failed: %s: %s", where, problem)
    return EXIT_FAILED if tally.failures else EXIT_OK


def _dispatch(args: argparse.Namespace, command: str,
              run_local: Callable[[argparse.Namespace, List[Source]], int]) -> int:
    """Hand ``command`` to a cluster engine, or find the files it names and run it in this process."""
    if args.engine in CLUSTER_ENGINES:
        from .ray import run_cli

        return run_cli(args, command)
    sources = plan_sources(args.paths)
    if not sources:
        logger.error("nothing to process: no image or video files in %s", ", ".join(args.paths))
        return EXIT_FAILED
    return run_local(args, sources)


def cmd_detect(args: argparse.Namespace) -> int:
    return _dispatch(args, "detect", _detect_here)


def _detect_here(args: argparse.Namespace, sources: List[Source]) -> int:
    sink = DetectSink(args, None if args.no_progress else count_items(sources, args.frame_step))
    try:
        DETECT_ENGINES[args.engine](args, iter_items(sources, args.frame_step), sink.add)
    finally:
        sink.close()
    code = _report_failures(sink.tally)
    _say(sink.tally.summary("detect:") + (f"; results in {args.output}" if args.output not in (None, "-") else ""),
         err=True)
    return code


class EmbeddingWriter:
    """``represent`` output: JSON lines (one per image, with each face's embedding), or a ``.npy`` matrix with one
    row per face plus ``<name>.index.jsonl`` saying which image, frame and face each row is."""

    def __init__(self, path: Optional[str]):
        self.npy = path is not None and path.lower().endswith(".npy")
        self.path = Path(path) if path not in (None, "-") else None
        self.rows: List[np.ndarray] = []
        self.lines = JsonLines(str(self.path.with_suffix(".index.jsonl")) if self.npy and self.path else path)
        self.tally = Tally()

    def add(self, item: WorkItem, faces: List[Dict[str, Any]], error: Optional[Exception]) -> None:
        no_face = isinstance(error, FaceNotDetectedError)
        failed = None if no_face else error
        self.tally.add(item, len(faces), failed)
        record = item.record()
        if not self.npy:
            record.update(faces=[_plain(face) for face in faces], error=None if failed is None else problem_of(failed))
            self.lines.write(record)
            return
        for k, face in enumerate(faces):
            self.lines.write({"row": len(self.rows), **record, "face": k,
                              **{key: _plain(value) for key, value in face.items() if key != "embedding"}})
            self.rows.append(np.asarray(face["embedding"], np.float32))

    def close(self) -> None:
        self.lines.close()
        if self.npy and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            width = len(self.rows[0]) if self.rows else 0
            np.save(self.path, np.stack(self.rows) if self.rows else np.zeros((0, width), np.float32))


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into JSON-serialisable lists and numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def cmd_represent(args: argparse.Namespace) -> int:
    return _dispatch(args, "represent", _represent_here)


def _represent_here(args: argparse.Namespace, sources: List[Source]) -> int:
    writer = EmbeddingWriter(args.output)
    from tqdm import tqdm

    total = None if args.no_progress else count_items(sources, args.frame_step)
    with tqdm(total=total, unit="img", file=sys.stderr, disable=args.no_progress, desc="represent") as progress:

        def emit(item: WorkItem, faces: List[Dict[str, Any]], error: Optional[Exception]) -> None:
            writer.add(item, faces, error)
            progress.update(1)

        try:
            REPRESENT_ENGINES[args.engine](args, iter_items(sources, args.frame_step), emit)
        finally:
            writer.close()
    code = _report_failures(writer.tally)
    rows = f"; {len(writer.rows)} embedding row(s) in {args.output}" if writer.npy else ""
    _say(writer.tally.summary("represent:") + rows, err=True)
    return code


def cmd_batchify(args: argparse.Namespace) -> int:
    from .runtime.batchify import BatchUnsafeError, batchify

    try:
        result = batchify(args.source, args.target, args.batch_sizes, args.input_shape, args.dynamic_spatial,
                          args.tolerance, args.providers, args.seed)
    except BatchUnsafeError as exc:
        _say(f"refused: {exc}", err=True)
        return EXIT_FAILED
    _say(f"{result.source} (declared batch layout: {result.layout}) -> {result.target}")
    _say(f"changes: {result.repair.describe()}")
    _say(result.report.table())
    return EXIT_OK


def cmd_check_batch(args: argparse.Namespace) -> int:
    from .runtime.batchify import check_batch
    from .runtime.surgery import batch_layout, import_onnx

    report = check_batch(args.model, args.batch_sizes, args.input_shape, args.tolerance, args.providers, args.seed)
    _say(f"{args.model}")
    _say(report.table())
    if report.passed:
        return EXIT_OK
    layout = batch_layout(import_onnx().load(str(args.model), load_external_data=False))
    if layout != "dynamic":
        _say(f"hint: the file declares a {layout} batch; `deepbatch batchify {args.model} OUT.onnx` can repair it")
    return EXIT_FAILED


def _weights_status(spec: Any) -> str:
    from .weights import find_weights

    if spec is None:
        return "none needed"
    found = find_weights(spec)
    if found is not None:
        return str(found)
    return f"missing ({' or '.join(spec.names)}; from {spec.source})"


def _registry_rows(registry: Any) -> List[Tuple[str, str, str]]:
    rows = []
    aliases: Dict[str, List[str]] = {}
    for alias, target in registry.aliases().items():
        aliases.setdefault(target, []).append(alias)
    for name in registry.names(aliases=False):
        entry = registry.entry(name)
        label = name + (f" (= {', '.join(sorted(aliases[name]))})" if name in aliases else "")
        spec = entry.defaults.get("weights") or getattr(entry.factory, "weights", None)
        rows.append((label, entry.summary, _weights_status(spec)))
    return rows


def _table(rows: List[Tuple[str, str, str]], header: Tuple[str, str, str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    return "\n".join(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in [header, *rows])


def cmd_models(args: argparse.Namespace) -> int:
    from .detectors import DETECTORS

    header = ("name", "model", "weights")
    _say("detectors")
    _say(_table(_registry_rows(DETECTORS), header))
    _say("recognizers")
    try:
        from .recognition import RECOGNIZERS
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("deepbatch"):
            raise
        _say("  (none: this installation has no deepbatch.recognition)")
        return EXIT_OK
    _say(_table(_registry_rows(RECOGNIZERS), header))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from . import bench
    except ModuleNotFoundError as exc:
        if exc.name != "deepbatch.bench":
            raise
        _say("deepbatch bench is not available in this installation (no deepbatch.bench module)", err=True)
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog="deepbatch bench", description="Throughput of a detector: raw model and "
                                     "end-to-end extract_faces, per batch size.")
    bench.add_arguments(parser)
    return int(bench.run(parser.parse_args(args.bench_args)) or 0)


# ----------------------------------------------------------------------------------------------------------------
# Parser


def _int_list(text: str) -> Tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 2,7,16,32, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_input_options(parser: argparse.ArgumentParser, engines: Dict[str, Any]) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or video files")
    parser.add_argument("--backend", default="scrfd", help="detector name (see `deepbatch models`; default scrfd)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="images per model call (default 32)")
    parser.add_argument("--frame-step", type=_positive_int, default=1, metavar="N",
                        help="read every N-th frame of videos (default 1: every frame)")
    parser.add_argument("--no-align", action="store_true", help="box crops instead of eye-levelled crops")
    parser.add_argument("--engine", choices=sorted([*engines, *CLUSTER_ENGINES]), default="local",
                        help="where the work runs (ray: on a Ray cluster, writing --output X.parquet)")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="--engine ray: model actors, each loading the models once (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0, metavar="G",
                        help="--engine ray: GPUs reserved per worker, fractions share a GPU (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_model_check_options(parser: argparse.ArgumentParser) -> None:
    from .runtime.batchify import DEFAULT_BATCH_SIZES
    from .runtime.isolation import DEFAULT_TOLERANCE

    parser.add_argument("--batch-sizes", type=_int_list, default=DEFAULT_BATCH_SIZES, metavar="N,N,...",
                        help="batch sizes to test frame isolation at (default 2,7,16,32)")
    parser.add_argument("--input-shape", type=_int_list, default=None, metavar="C,H,W",
                        help="shape of one frame, needed when the model leaves it dynamic (e.g. 3,640,640)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed |alone - in batch| difference (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--providers", default="auto", help="ONNX Runtime providers: auto, cpu, cuda or tensorrt")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random frames (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepbatch",
        description="Find, align and embed faces in batches of images, on ONNX Runtime.",
        epilog="Exit codes: 0 success; 1 some inputs failed, a batch check failed or batchify refused; "
               "2 bad usage or setup.",
    )
    parser.add_argument("--version", action="version", version=f"deepbatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    detect = commands.add_parser(
        "detect", help="detect faces in images, folders and videos",
        description="Detect faces; one JSON line per image or video frame (faces as DeepFace-style facial_area and "
                    "confidence), on stdout or in --output. Unreadable files are reported and skipped.",
    )
    _add_input_options(detect, DETECT_ENGINES)
    detect.add_argument("--output", "-o", default=None, metavar="FILE.jsonl", help="write JSON lines here")
    detect.add_argument("--save-crops", metavar="DIR", help="save each face crop as a JPEG under DIR")
    detect.add_argument("--draw", metavar="DIR", help="save copies annotated with boxes, scores, landmarks under DIR")
    detect.set_defaults(handler=cmd_detect)

    represent = commands.add_parser(
        "represent", help="face embeddings of images, folders and videos",
        description="Embed every face: JSON lines (one per image) on stdout or in --output FILE.jsonl, or a matrix "
                    "--output FILE.npy (one row per face) with FILE.index.jsonl naming each row's image and face.",
    )
    _add_input_options(represent, REPRESENT_ENGINES)
    represent.add_argument("--model", default="MobileFaceNet", help="recognizer name (default MobileFaceNet)")
    represent.add_argument("--normalization", default="base",
                           help="input normalisation, as DeepFace: base (the model's own), raw, Facenet, Facenet2018, "
                                "VGGFace, VGGFace2 or ArcFace")
    represent.add_argument("--max-faces", type=_positive_int, default=None, help="keep the N largest faces per image")
    represent.add_argument("--output", "-o", default=None, metavar="FILE.jsonl|FILE.npy", help="where to write")
    represent.set_defaults(handler=cmd_represent)

    batchify = commands.add_parser(
        "batchify", help="give an ONNX face model a true dynamic batch axis",
        description="Rewrite a model whose batch is declared as 1, or whose outputs flatten the batch into rows "
                    "([-1, C] Reshapes), into one with a dynamic batch axis on its input and every output. The "
                    "result is written only if frames stay independent in batches (see check-batch).",
    )
    batchify.add_argument("source", type=Path, metavar="IN.onnx")
    batchify.add_argument("target", type=Path, metavar="OUT.onnx")
    batchify.add_argument("--dynamic-spatial", action="store_true", help="also make the input height and width dynamic")
    _add_model_check_options(batchify)
    batchify.set_defaults(handler=cmd_batchify)

    check = commands.add_parser(
        "check-batch", help="test an ONNX model for cross-frame contamination",
        description="Run random frames alone and at several positions of batches of several sizes; print the "
                    "largest difference per output and PASS or FAIL (exit code 1 on FAIL).",
    )
    check.add_argument("model", type=Path, metavar="MODEL.onnx")
    _add_model_check_options(check)
    check.set_defaults(handler=cmd_check_batch)

    bench = commands.add_parser("bench", add_help=False, help="throughput table of a detector (see deepbatch bench "
                                "--help)")
    bench.set_defaults(handler=cmd_bench)

    models = commands.add_parser("models", help="registered detectors and recognizers, and where their weights are",
                                 description="List the registered models and whether their weights were found.")
    models.set_defaults(handler=cmd_models)
    return parser


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def _say(text: str, err: bool = False) -> None:
    """Command output: results to stdout, summaries and diagnostics to stderr (through the progress bar)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr if err else sys.stdout)


class _ProgressAwareHandler(logging.Handler):
    """Logs to stderr without breaking a progress bar that is being drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a logging handler must never raise
            self.handleError(record)


def _silence_stdout() -> None:
    """Point stdout at the null device so that flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # stdout is not a real file (captured in a test)
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    package_logger = logging.getLogger("deepbatch")
    handler = _ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # the reader went away (`deepbatch detect ... | head`): stop quietly
        _silence_stdout()
        return EXIT_FAILED
    except (DeepbatchError, ValueError, OSError) as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted", err=True)
        return EXIT_INTERRUPTED
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())
