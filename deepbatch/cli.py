"""The ``deepbatch`` command line.

::

    deepbatch detect PATH... [--backend scrfd] [--batch-size 32] [--output faces.jsonl] [--save-crops DIR] [--draw DIR]
    deepbatch represent PATH... [--model arcface_mbf] [--backend scrfd] [--output embeddings.npy|.jsonl]
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
missing, corrupt or unverified weights, a missing package, an output that overlaps the inputs, a file that cannot be
read or written); 3 a resource or internal failure (out of memory, disk full, a runtime crash); 130 interrupted
(Ctrl-C, SIGTERM or SIGHUP).

Outputs are written under temporary names and renamed when the run completes, so a stopped run leaves the previous
results as they were and its own rows in ``FILE.partial`` (see :mod:`deepbatch.io.outputs`).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._version import __version__
from .errors import ArgumentError, DeepbatchError, FaceNotDetectedError, ImageError
from .io.outputs import LineFile, UniqueNames, check_separate, is_resource_error, partial_path, write_atomic

logger = logging.getLogger("deepbatch.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
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
        """Relative file name for an annotated copy of this image or frame: the input's relative path, with
        ``.jpg`` added when OpenCV cannot write its format (``x.pgm`` -> ``x.pgm.jpg``)."""
        if self.source.video:
            return self.source.name.with_suffix("") / f"frame_{self.frame or 0:06d}.jpg"
        suffix = self.source.name.suffix.lower()
        return self.source.name if suffix in _WRITABLE_SUFFIXES else self.source.name.with_name(
            self.source.name.name + ".jpg")

    def crop_stem(self) -> Path:
        """Relative name that this image's crop files start with: its path with the suffix folded in, so that the
        crops of ``x.jpg`` and ``x.png`` differ (``x_jpg_face0.jpg``, ``x_png_face0.jpg``)."""
        name = self.output_name() if self.source.video else self.source.name
        return name.with_name(f"{name.stem}_{name.suffix.lstrip('.').lower()}" if name.suffix else name.name)


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
            name = path if not path.is_absolute() and ".." not in path.parts else Path(path.name)
            sources.append(Source(path, name, video=is_video(path)))
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
    """JSON lines to a file (``path``) or to stdout (``None`` or ``-``). A file is written as ``path.partial`` and
    renamed to ``path`` by ``close(complete=True)``; stdout is flushed after every row."""

    def __init__(self, path: Optional[str]):
        self.path = None if path in (None, "-") else Path(path)
        self._file = None if self.path is None else LineFile(self.path)

    def write(self, record: Dict[str, Any]) -> None:
        line = json.dumps(record)
        if self._file is None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            self._file.write(line)

    def close(self, complete: bool = True) -> None:
        if self._file is None:
            sys.stdout.flush()
        elif complete:
            self._file.commit()
        else:
            self._file.abort()


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` (BGR uint8) by the suffix of ``path`` and write it whole or not at all (through a temporary
    file and a rename; works for any path encoding)."""
    import cv2

    ok, data = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    write_atomic(path, data.tobytes())


class DetectSink:
    """Where ``detect`` results go: JSON lines, face crops, annotated copies, the progress bar and the tally.

    Each row names the files written for it (``drawn``, and ``crop`` per face); no two images write the same file.
    """

    def __init__(self, args: argparse.Namespace, total: Optional[int]):
        from tqdm import tqdm

        self.lines = JsonLines(args.output)
        self.crops = Path(args.save_crops) if args.save_crops else None
        self.draw = Path(args.draw) if args.draw else None
        self.names = UniqueNames()
        self.crop_names = UniqueNames()
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
                self._write_images(item, faces, image, record)
        self.lines.write(record)
        self.tally.add(item, 0 if error is not None else len(faces), error)
        self.progress.update(1)

    def _write_images(self, item: WorkItem, faces: Any, image: np.ndarray, record: Dict[str, Any]) -> None:
        from .ops.align import aligned_crop, crop
        from .visualize import draw_faces

        if self.draw is not None:
            drawn = self.draw / self.names.claim(item.output_name())
            write_image(drawn, draw_faces(image, faces))
            record["drawn"] = str(drawn)
        if self.crops is not None:
            stem = self.crop_names.claim(item.crop_stem())
            for k, (face, entry) in enumerate(zip(faces, record["faces"])):
                pixels = aligned_crop(image, face.box, face.landmarks) if self.align else crop(image, face.box)
                path = self.crops / stem.parent / f"{stem.name}_face{k}.jpg"
                write_image(path, pixels)
                entry["crop"] = str(path)

    def close(self, complete: bool = True) -> None:
        self.progress.close()
        self.lines.close(complete)


# ----------------------------------------------------------------------------------------------------------------
# Engines: how the work items are run. Each takes the parsed arguments, the work items and a callback per item.

DetectEmit = Callable[[WorkItem, Any, Optional[np.ndarray], Optional[Exception]], None]
RepresentEmit = Callable[[WorkItem, List[Dict[str, Any]], Optional[Exception]], None]


def detect_local(args: argparse.Namespace, items: Iterator[WorkItem], emit: DetectEmit) -> None:
    """Detection in this process: :func:`deepbatch.iter_detect` over the stream, ``batch_size`` images per model
    call, a few chunks of images in memory at a time; images are decoded in full only for ``--draw`` and
    ``--save-crops``."""
    from .detect_only import iter_detect
    from .detection import resolve_detector

    detector = resolve_detector(args.backend)
    pending: Deque[WorkItem] = deque()

    def payloads() -> Iterator[Any]:
        for item in items:
            pending.append(item)
            if item.error is None:
                yield item.payload

    full_resolution = bool(args.save_crops or args.draw)
    for detection in iter_detect(payloads(), detector, batch_size=args.batch_size, on_error="skip",
                                 full_resolution=full_resolution):
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
    from dataclasses import asdict

    from .io.images import set_image_limits

    previous = set_image_limits(max_pixels=args.max_pixels, max_bytes=args.max_bytes)
    try:
        if args.engine in CLUSTER_ENGINES:
            from .ray import run_cli

            return run_cli(args, command)
        sources = plan_sources(args.paths)
        if not sources:
            logger.error("nothing to process: no image or video files in %s", ", ".join(args.paths))
            return EXIT_FAILED
        return run_local(args, sources)
    finally:
        set_image_limits(**asdict(previous))


def cmd_detect(args: argparse.Namespace) -> int:
    return _dispatch(args, "detect", _detect_here)


def check_outputs(args: argparse.Namespace, folders: Dict[str, Optional[str]]) -> None:
    """Refuse output folders that overlap the inputs, and an output file that is one of the inputs."""
    check_separate([Path(p) for p in args.paths], {option: Path(f) for option, f in folders.items() if f})
    output = getattr(args, "output", None)
    if output not in (None, "-"):
        real = os.path.realpath(output)
        for given in args.paths:
            if os.path.realpath(given) == real:
                raise ArgumentError(f"--output {output} is one of the inputs; writing it would destroy that input")


def _detect_here(args: argparse.Namespace, sources: List[Source]) -> int:
    check_outputs(args, {"--draw": args.draw, "--save-crops": args.save_crops})
    sink = DetectSink(args, None if args.no_progress else count_items(sources, args.frame_step))
    try:
        DETECT_ENGINES[args.engine](args, iter_items(sources, args.frame_step), sink.add)
    except BaseException:
        sink.close(complete=False)
        raise
    sink.close()
    code = _report_failures(sink.tally)
    _say(sink.tally.summary("detect:") + (f"; results in {args.output}" if args.output not in (None, "-") else ""),
         err=True)
    return code


class EmbeddingWriter:
    """``represent`` output: JSON lines (one per image, with each face's embedding), or a ``.npy`` matrix with one
    row per face plus ``<name>.index.jsonl`` saying which image, frame and face each row is.

    The matrix and its index are renamed into place together when the run completes: the old index is removed
    first, then the matrix and then the index are renamed, so a run killed in between leaves a ``.npy`` without an
    index (which the next run reports), never a matrix beside an index of other images.
    """

    def __init__(self, path: Optional[str]):
        self.npy = path is not None and path.lower().endswith(".npy")
        self.path = Path(path) if path not in (None, "-") else None
        self.rows: List[np.ndarray] = []
        if self.npy and self.path is not None:
            self.index = self.path.with_suffix(".index.jsonl")
            if self.path.exists() != self.index.exists():
                logger.warning("%s and %s do not both exist: left by an interrupted run, and replaced by this one",
                               self.path, self.index)
        self.lines = JsonLines(str(self.index) if self.npy and self.path else path)
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

    def close(self, complete: bool = True) -> None:
        if not (self.npy and self.path is not None and complete):
            self.lines.close(complete)
            return
        width = len(self.rows[0]) if self.rows else 0
        matrix = partial_path(self.path)
        try:
            with open(matrix, "wb") as out:
                np.save(out, np.stack(self.rows) if self.rows else np.zeros((0, width), np.float32))
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            matrix.unlink(missing_ok=True)
            self.lines.close(complete=False)
            raise
        self.index.unlink(missing_ok=True)
        os.replace(matrix, self.path)
        self.lines.close(complete=True)


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
    check_outputs(args, {})
    writer = EmbeddingWriter(args.output)
    from tqdm import tqdm

    total = None if args.no_progress else count_items(sources, args.frame_step)
    with tqdm(total=total, unit="img", file=sys.stderr, disable=args.no_progress, desc="represent") as progress:

        def emit(item: WorkItem, faces: List[Dict[str, Any]], error: Optional[Exception]) -> None:
            writer.add(item, faces, error)
            progress.update(1)

        try:
            REPRESENT_ENGINES[args.engine](args, iter_items(sources, args.frame_step), emit)
        except BaseException:
            writer.close(complete=False)
            raise
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
    _say(f"deepbatch runs it as: {_loaded_batching(args)}")
    if report.passed:
        return EXIT_OK
    layout = batch_layout(import_onnx().load(str(args.model), load_external_data=False))
    if layout != "dynamic":
        _say(f"hint: the file declares a {layout} batch; `deepbatch batchify {args.model} OUT.onnx` can repair it")
    return EXIT_FAILED


def _loaded_batching(args: argparse.Namespace) -> str:
    """The batching mode (native, repaired or per_image, with the reason) deepbatch gives the model at load."""
    from .runtime.batchify import frame_spec
    from .runtime.model import OnnxModel
    from .runtime.surgery import import_onnx

    frame_shape, _ = frame_spec(import_onnx().load(str(args.model), load_external_data=False), args.model,
                                args.input_shape)
    return OnnxModel(args.model, args.providers, probe_shape=frame_shape, cache=False).batching  # type: ignore[arg-type]


def _built_batching(registry: Any, name: str) -> str:
    try:
        built = registry.create(name, providers="cpu")
    except TypeError:  # a backend without an ONNX session takes no providers argument
        built = registry.create(name)
    except Exception as exc:  # report the model that cannot load, list the others
        return f"does not load: {type(exc).__name__}: {exc}"
    model = getattr(built, "model", None)
    return str(getattr(built, "batching", None) or getattr(model, "batching", "native"))


def _weights_status(spec: Any, extra: str = "") -> str:
    """Found weights' path, or what is missing (packages first) and the command or source that gives it."""
    from .optional import install_command, missing_modules
    from .weights import find_weights, supply_note

    packages = missing_modules(extra) if extra else []
    if packages:
        return f"missing package {', '.join(packages)}: {install_command(extra)}"
    if spec is None:
        return "none needed" + (f" (packages of deepbatch[{extra}] installed)" if extra else "")
    found = find_weights(spec)
    if found is not None:
        return str(found)
    if not spec.url:
        return f"missing ({' or '.join(spec.names)}; {supply_note(spec)})"
    return f"not downloaded yet ({' or '.join(spec.names)}; fetched on first use from {spec.source})"


def _registry_rows(registry: Any, batching: bool = False) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    aliases: Dict[str, List[str]] = {}
    for alias, target in registry.aliases().items():
        aliases.setdefault(target, []).append(alias)
    for name in registry.names(aliases=False):
        entry = registry.entry(name)
        label = name + (f" (= {', '.join(sorted(aliases[name]))})" if name in aliases else "")
        spec = entry.defaults.get("weights") or getattr(entry.factory, "weights", None)
        status = _weights_status(spec, getattr(entry.factory, "extra", ""))
        row: Tuple[str, ...] = (label, entry.summary, status)
        if batching:
            found = not status.startswith(("missing", "not downloaded"))
            row = (label, entry.summary, _built_batching(registry, name) if found else "-", status)
        rows.append(row)
    return rows


def _table(rows: List[Tuple[str, ...]], header: Tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join("  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) + f"  {r[-1]}" for r in [header, *rows])


def cmd_models(args: argparse.Namespace) -> int:
    from .detectors import DETECTORS

    header: Tuple[str, ...] = ("name", "model", *(["batching"] if args.batching else []), "weights")
    _say("detectors")
    _say(_table(_registry_rows(DETECTORS, args.batching), header))
    _say("recognizers")
    try:
        from .recognition import RECOGNIZERS
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("deepbatch"):
            raise
        _say("  (none: this installation has no deepbatch.recognition)")
        return EXIT_OK
    _say(_table(_registry_rows(RECOGNIZERS, args.batching), header))
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
    from .io.images import ImageLimits

    defaults = ImageLimits()
    parser.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files whose header declares more pixels (default {defaults.max_pixels}; "
                             "--engine local only)")
    parser.add_argument("--max-bytes", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files and URL bodies larger than this (default {defaults.max_bytes}; "
                             "--engine local only)")


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
               "2 bad usage or setup (bad weights included); 3 out of memory, disk full or an internal failure; "
               "130 interrupted (Ctrl-C, SIGTERM, SIGHUP).",
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
    represent.add_argument("--model", default="arcface_mbf", help="recognizer name (default arcface_mbf)")
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
    models.add_argument("--batching", action="store_true", help="load each model whose weights are found and show "
                        "how it batches: native, repaired or per_image (with the reason)")
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


# how ONNX Runtime, CUDA and Ray say that memory ran out
_OUT_OF_MEMORY_TEXTS = ("Failed to allocate memory", "bad_alloc", "out of memory", "OutOfMemoryError")
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> Dict[int, Any]:
    """Make SIGTERM and SIGHUP stop the run as Ctrl-C does (outputs closed, exit 130); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}


def _restore_signals(handlers: Dict[int, Any]) -> None:
    for signum, previous in handlers.items():
        signal.signal(signum, previous)


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
    previous_handlers = _stop_on_signals()
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # the reader went away (`deepbatch detect ... | head`): stop quietly
        _silence_stdout()
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        _say(f"interrupted{f' by {exc}' if str(exc) else ''}", err=True)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        _say(f"error: out of memory{f' ({exc})' if str(exc) else ''}; use a smaller --batch-size, or fewer or "
             "smaller images", err=True)
        return EXIT_INTERNAL
    except OSError as exc:
        if is_resource_error(exc):
            _say(f"error: {exc}", err=True)
            return EXIT_INTERNAL
        _say(f"error: {exc}", err=True)
        return EXIT_USAGE
    except (DeepbatchError, ValueError) as exc:
        _say(f"error: {exc}", err=True)
        return EXIT_USAGE
    except Exception as exc:  # a runtime (ONNX Runtime, Ray) or internal failure: no traceback unless -v
        logger.debug("internal failure", exc_info=True)
        text = " ".join(str(exc).split())
        what = "out of memory" if any(s in text for s in _OUT_OF_MEMORY_TEXTS) else "internal failure"
        _say(f"error: {what}: {type(exc).__name__}: {text}" + ("" if args.verbose else
             " (run with -v for the traceback)"), err=True)
        return EXIT_INTERNAL
    finally:
        _restore_signals(previous_handlers)
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())
