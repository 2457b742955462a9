"""The ``deepbatch`` command line (also ``python -m deepbatch``).

::

    deepbatch detect PATH... [--backend scrfd] [--conf 0.5] [--input-size 640] [--device cpu|cuda|tensorrt]
                             [--max-faces N] [--enforce-detection] [--output faces.jsonl|.parquet]
                             [--save-crops DIR] [--draw DIR]
    deepbatch represent PATH... [--model arcface_mbf] [--backend scrfd] [--output embeddings.npy|.jsonl|.parquet]
    deepbatch verify IMAGE1 IMAGE2 [--model arcface_mbf] [--metric cosine] [--json]
    deepbatch batchify IN.onnx OUT.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--dynamic-spatial]
    deepbatch check-batch MODEL.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--tolerance 1e-4]
    deepbatch bench --backend NAME --batch-sizes 1,8,16,32 [--input-size 640]
    deepbatch models
    deepbatch --version

``PATH`` is an image file, an ``http(s)://`` URL, a folder (searched recursively for image files), a video file
(every frame, or every ``--frame-step``-th, with its frame index and timestamp) or ``-`` (more paths on standard
input, one per line). Every path is checked before any model loads. Results are rows of :mod:`deepbatch.rows` as
JSON lines on stdout or in ``--output``, or Parquet; the progress bar, warnings and the summary go to stderr
(``--quiet``: errors only; ``-v``, anywhere on the line: what is being done).

Exit codes: 0 everything went through; 1 some inputs failed (they are reported and skipped; with
``--enforce-detection`` an image without a face is one), the batch check failed, or ``batchify`` refused to write
an unsafe graph; 2 bad usage or setup (unknown option or model name, a missing input, missing, corrupt or unverified
weights, a missing package, an output format the command cannot write, an output that overlaps the inputs, a file
that cannot be read or written); 3 a resource or internal failure (out of memory, disk full, a runtime crash, a
bug); 130 interrupted (Ctrl-C, SIGTERM or SIGHUP).

Outputs are written under temporary names and renamed when the run completes, so a stopped run leaves the previous
results as they were and its own rows in ``FILE.partial`` (see :mod:`deepbatch.io.outputs`). Both engines run one
checked :class:`~deepbatch.plan.RunPlan`; a second run on the same output is refused while the first lives.
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
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._version import __version__
from .checks import MAX_EXPAND_PERCENTAGE, check_expand_percentage
from .errors import ArgumentError, DeepbatchError, FaceNotDetectedError, ImageError
from .io.outputs import OutputFolder, OutputRefusedError, PathClaims, is_resource_error
from .io.writers import VideoFile, encode_image, open_rows
from .optional import EXTRA_MODULES, require_all
from .pipeline import resolve_batch_size
from .plan import RunPlan, build_plan, model_options
from .records import ImageRecord
from .rows import image_row
from .sources import Source, WorkItem, count_items, is_url, iter_items, plan_sources, printable
from .store.cli import add_database_commands
from .structures import Faces
from .summary import run_summary

logger = logging.getLogger("deepbatch.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C
__all__ = ["Source", "WorkItem", "build_parser", "count_items", "iter_items", "main", "plan_sources"]


# ----------------------------------------------------------------------------------------------------------------
# The tally and the detect sink


@dataclass
class Tally:
    """Counts for the summary line, and the failures to list."""

    items: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, item: WorkItem, row: Dict[str, Any]) -> None:
        self.items += 1
        self.frames += int(item.source.video and item.frame is not None)
        if row["error"] is not None:
            where = printable(item.source.location) + (f" frame {item.frame}" if item.frame is not None else "")
            self.failures.append((where, row["error"]))
            return
        self.faces += len(row["faces"])
        self.no_face += int(not row["faces"])

    def summary(self, verb: str) -> str:
        return run_summary(verb, self.items - self.frames, self.faces, self.no_face, len(self.failures),
                           time.perf_counter() - self.started, frames=self.frames)


class Sink:
    """Where the rows of ``detect`` and ``represent`` go: the ``--output`` writer, face crops and annotated copies
    (``detect``), the progress bar and the tally, as the run ``plan`` says. A row names the files written for it
    (``drawn``, and ``crop`` per face); no two files of a run share a name, annotated copies and crops included; the
    frames of a video are drawn into one annotated video. An image whose files cannot be written (a name too long
    for the file system, a link in the way) gets an error row, and the run goes on."""

    def __init__(self, plan: RunPlan, total: Optional[int], embedding_size: int = 0):
        from tqdm import tqdm

        outputs = plan.outputs
        self.rows = open_rows(None if outputs.rows is None else str(outputs.rows), outputs.kind, embedding_size)
        self.crops = None if outputs.crops is None else OutputFolder(outputs.crops, plan.inputs)
        self.draw = None if outputs.draw is None else OutputFolder(outputs.draw, plan.inputs)
        self.claims = PathClaims()
        self.frame_step = plan.frame_step
        self.video: Optional[Tuple[Source, VideoFile]] = None
        self.tally = Tally()
        self.progress = tqdm(total=total, unit="img", file=sys.stderr, disable=not plan.progress, dynamic_ncols=True,
                             desc=plan.command)

    def add(self, item: WorkItem, record: Optional[ImageRecord]) -> None:
        """Record one image or frame: the row of its ``record`` (the ``item``'s own error when it could not be
        read), and the drawn copy and crops ``detect`` asks for."""
        location = printable(item.source.location)
        if record is None:
            row = image_row(location, None, None, item.error, item.frame, item.timestamp)
        else:
            row = record.row(location, item.frame, item.timestamp)
            if record.error is None and record.image is not None and record.faces is not None:
                try:
                    self._write_images(item, record.image, record.faces, record.crops, row)
                except (OSError, OutputRefusedError) as exc:
                    if is_resource_error(exc):
                        raise
                    row = image_row(location, None, None, exc, item.frame, item.timestamp)
        self.rows.write(row)
        self.tally.add(item, row)
        self.progress.update(1)

    def _claim(self, folder: OutputFolder, relative: Path, count: int = 0) -> Path:
        """A relative name under ``folder`` that no other file of this run has: ``relative`` itself (``count`` > 0:
        the crop stem of ``count`` faces), else with ``_2``, ``_3``, ... before its suffix."""
        number = 1
        while True:
            candidate = relative if number == 1 else relative.with_name(
                f"{relative.stem}_{number}{relative.suffix}" if count == 0 else f"{relative.name}_{number}")
            files = [candidate] if count == 0 else [candidate.parent / f"{candidate.name}_face{k}.jpg"
                                                    for k in range(count)]
            full = [folder.path(f) for f in files]
            if self.claims.free(full):
                self.claims.claim(full)
                if number > 1:
                    logger.warning("%s is already written by this run; writing %s instead", relative, candidate)
                return candidate
            number += 1

    def _write_images(self, item: WorkItem, image: np.ndarray, faces: Faces, crops: Optional[List[np.ndarray]],
                      row: Dict[str, Any]) -> None:
        from .visualize import draw_faces

        if self.draw is not None and item.source.video:
            row["drawn"] = str(self._video(item.source).path)
            self._video(item.source).write(draw_faces(image, faces))
        elif self.draw is not None:
            name = self._claim(self.draw, item.output_name())
            row["drawn"] = str(self.draw.write(name, encode_image(name, draw_faces(image, faces))))
        if self.crops is not None and crops:
            stem = self._claim(self.crops, item.crop_stem(), count=len(crops))
            for k, (pixels, entry) in enumerate(zip(crops, row["faces"])):
                name = stem.parent / f"{stem.name}_face{k}.jpg"
                entry["crop"] = str(self.crops.write(name, encode_image(name, pixels)))

    def _video(self, source: Source) -> VideoFile:
        """The annotated video of ``source`` (the previous one is finished when the next begins)."""
        if self.video is not None and self.video[0] == source:
            return self.video[1]
        from .io.video import video_info

        self._finish_video(complete=True)
        if self.draw is None:
            raise RuntimeError("an annotated video needs --draw")
        name = self._claim(self.draw, source.name.with_suffix(".mp4"))
        writer = VideoFile(name, video_info(source.path).fps / self.frame_step, self.draw)
        self.video = (source, writer)
        return writer

    def _finish_video(self, complete: bool) -> None:
        if self.video is not None:
            self.video[1].close(complete)
            self.video = None

    def close(self, complete: bool = True) -> None:
        self.progress.close()
        try:
            self._finish_video(complete)
        finally:
            self.rows.close(complete)


# ----------------------------------------------------------------------------------------------------------------
# Engines: how the work items are run. Each takes the parsed arguments, the work items and the sink.


def _paired(items: Iterator[WorkItem], pending: Deque[WorkItem]) -> Iterator[Any]:
    """The payloads of the readable ``items``, each item queued in ``pending`` as it is read."""
    for item in items:
        pending.append(item)
        if item.error is None:
            yield item.payload


def run_local(plan: RunPlan, items: Iterator[WorkItem], sink: Sink) -> None:
    """``detect`` or ``represent`` in this process: :func:`~deepbatch.stream.iter_records` over the stream,
    ``batch_size`` images per model call (and, for ``represent``, their faces embedded together), a few chunks of
    images in memory at a time. ``detect`` decodes images in full only for ``--draw`` and ``--save-crops`` (else
    a large JPEG is decoded at the scale the detector's canvas needs)."""
    from .stream import iter_records

    detector = plan.models.build_detector()
    recognizer = plan.models.build_recognizer() if plan.command == "represent" else None
    pending: Deque[WorkItem] = deque()

    def flush_failed() -> None:
        while pending and pending[0].error is not None:
            sink.add(pending.popleft(), None)

    for record in iter_records(_paired(items, pending), detector, resolve_batch_size(plan.batch_size, detector),
                               plan.rules, recognizer=recognizer,
                               spec=None if recognizer is None else recognizer.spec_for(plan.models.normalization),
                               crops=plan.crops, reduced=not plan.full_resolution, on_error="skip"):
        flush_failed()
        sink.add(pending.popleft(), record)
    flush_failed()


LOCAL_ENGINES: Dict[str, Callable[[RunPlan, Iterator[WorkItem], Sink], None]] = {
    "detect": run_local,
    "represent": run_local,
}
# Engines that run the whole job on a cluster and write Parquet there: ``deepbatch.ray.run_cli(plan)``.
CLUSTER_ENGINES = ("ray",)


def _model_options(args: argparse.Namespace, factory: Any, which: str) -> Dict[str, Any]:
    """The command line's model options that ``factory`` takes (:func:`deepbatch.plan.model_options`)."""
    return model_options(args, factory, which)


def detector_options(args: argparse.Namespace) -> Dict[str, Any]:
    from .detectors.base import DETECTORS

    return _model_options(args, DETECTORS.entry(args.backend).factory, "detector")


def build_cli_detector(args: argparse.Namespace) -> Any:
    from .detectors.base import build_detector

    return build_detector(args.backend, **args.detector_options)


def build_cli_recognizer(args: argparse.Namespace) -> Any:
    from .recognition.base import RECOGNIZERS, build_recognizer

    return build_recognizer(args.model, **_model_options(args, RECOGNIZERS.entry(args.model).factory, "recognizer"))


# ----------------------------------------------------------------------------------------------------------------
# Subcommands


def _report_failures(tally: Tally) -> int:
    for where, problem in tally.failures:
        logger.error("failed: %s: %s", where, problem)
    return EXIT_FAILED if tally.failures else EXIT_OK


def _run_images(args: argparse.Namespace) -> int:
    """``detect`` and ``represent``: check everything the command line says into one run plan, take the lock of
    every output, then run the plan here or on a cluster."""
    plan = build_plan(args)
    if not plan.sources:
        logger.error("nothing to process: no image or video files in %s", ", ".join(args.paths))
        return EXIT_FAILED
    with plan.locked():
        if plan.engine in CLUSTER_ENGINES:
            from .ray import run_cli

            return EXIT_FAILED if run_cli(plan) else EXIT_OK
        with plan.limits.applied():
            return _run_here(plan)


def _run_here(plan: RunPlan) -> int:
    embedding_size = 0
    if plan.command == "represent":
        embedding_size = int(plan.models.build_recognizer().embedding_size)
    sink = Sink(plan, None if not plan.progress else count_items(plan.sources, plan.frame_step), embedding_size)
    try:
        LOCAL_ENGINES[plan.command](plan, iter_items(plan.sources, plan.frame_step), sink)
    except BaseException:
        sink.close(complete=False)
        raise
    sink.close()
    code = _report_failures(sink.tally)
    if not plan.quiet:
        where = f"; results in {plan.outputs.rows}" if plan.outputs.rows is not None else ""
        _say(sink.tally.summary(f"{plan.command}:") + where, err=True)
    return code


def cmd_detect(args: argparse.Namespace) -> int:
    return _run_images(args)


def cmd_represent(args: argparse.Namespace) -> int:
    return _run_images(args)


def cmd_verify(args: argparse.Namespace) -> int:
    """``deepbatch verify A B``: :func:`deepbatch.verify` on two images; exit 0 whether or not they match."""
    from .verification import verify

    for path in (args.image1, args.image2):
        if not is_url(path) and not Path(path).expanduser().exists():
            raise ArgumentError(f"no such file: {path}")
    if args.whole_image and args.enforce_detection:
        raise ArgumentError("--whole-image and --enforce-detection contradict each other: choose one")
    if args.whole_image:
        _say("warning: --whole-image: an image without a face is compared as a whole image, so the verdict may "
             "not be about faces", err=True)
    args.detector_options = detector_options(args)
    try:
        result = verify(args.image1, args.image2, model_name=build_cli_recognizer(args),
                        detector_backend=build_cli_detector(args), distance_metric=args.metric,
                        enforce_detection=not args.whole_image, align=not args.no_align, threshold=args.threshold)
    except FaceNotDetectedError as exc:
        _say(f"error: {exc} On the command line: --whole-image.", err=True)
        return EXIT_FAILED
    result["model"], result["detector_backend"] = args.model, args.backend
    if args.json:
        _say(json.dumps(result, default=_plain))
    else:
        verdict = "same person" if result["verified"] else "different people"
        _say(f"{verdict}: {result['similarity_metric']} distance {result['distance']:.4f} "
             f"(threshold {result['threshold']:.4f}, confidence {result['confidence']:.0f}%)")
    return EXIT_OK


def _plain(value: Any) -> Any:
    """A numpy value or tuple as JSON can hold it."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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
    """The batching of ``name``: from its class where the class says it (so backends on TensorFlow or PyTorch are
    not loaded), else from a loaded instance."""
    designed = getattr(registry.entry(name).factory, "designed_batching", None)
    known = designed() if callable(designed) else None
    if known is not None:
        return str(known)
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


TABLE_WIDTH = 100  # the columns a table fits in, unless --wide


def _column_widths(natural: List[int], room: int, shortest: int = 16) -> List[int]:
    """Widths for columns whose widest cells are ``natural`` in ``room`` characters: a column keeps its own width
    where that is under its share, and the wider ones share the rest by the square root of their widths (a long
    column gets more room, without squeezing the others to a word per line); no column narrower than
    ``shortest`` or its own width."""
    widths = list(natural)
    open_columns = list(range(len(natural)))
    left = room
    while open_columns:
        weight = sum(natural[i] ** 0.5 for i in open_columns)
        shares = {i: max(shortest, int(left * natural[i] ** 0.5 / weight)) for i in open_columns}
        narrow = [i for i in open_columns if natural[i] <= shares[i]]
        if not narrow:
            for i in open_columns:
                widths[i] = min(natural[i], shares[i])
            break
        for i in narrow:
            left -= natural[i]
            open_columns.remove(i)
    return widths


def _table(rows: List[Tuple[str, ...]], header: Tuple[str, ...], width: Optional[int] = TABLE_WIDTH) -> str:
    """Rows under ``header``, every cell wrapped so that no line is longer than ``width`` (None: one line per row,
    as wide as its cells)."""
    import textwrap

    table = [header, *rows]
    natural = [max(len(r[i]) for r in table) for i in range(len(header))]
    gap = "  "
    widths = natural if width is None else _column_widths(natural, width - len(gap) * len(header))
    lines = []
    for row in table:
        cells = [textwrap.wrap(cell, w, break_on_hyphens=False) or [""] for cell, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            parts = [f"{(c[k] if k < len(c) else ''):<{w}}" for c, w in zip(cells, widths)]
            lines.append((gap + gap.join(parts)).rstrip())
    return "\n".join(lines)


def _table_width() -> int:
    """:data:`TABLE_WIDTH`, or a terminal's width where stdout is a narrower one."""
    try:
        return min(TABLE_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a terminal (a pipe, a file, captured in a test)
        return TABLE_WIDTH


def cmd_models(args: argparse.Namespace) -> int:
    from .detectors import DETECTORS

    header: Tuple[str, ...] = ("name", "model", *(["batching"] if args.batching else []), "weights")
    width = None if args.wide else _table_width()
    _say("detectors")
    _say(_table(_registry_rows(DETECTORS, args.batching), header, width))
    _say("recognizers")
    try:
        from .recognition import RECOGNIZERS
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("deepbatch"):
            raise
        _say("  (none: this installation has no deepbatch.recognition)")
        return EXIT_OK
    _say(_table(_registry_rows(RECOGNIZERS, args.batching), header, width))
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


def _batch_size(text: str) -> Union[int, str]:
    """``auto`` (chosen for the device, see :func:`deepbatch.pipeline.resolve_batch_size`) or a positive integer."""
    return "auto" if text == "auto" else _positive_int(text)


def _input_size(text: str) -> Any:
    """``640`` (square) or ``640x480`` (width x height)."""
    try:
        values = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 640 or 640x480, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a size such as 640 or 640x480, got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _expand_percentage(text: str) -> float:
    """A percentage from 0 to :data:`~deepbatch.checks.MAX_EXPAND_PERCENTAGE` (NaN and infinity refused)."""
    try:
        return check_expand_percentage(float(text), "--expand-percentage")
    except (ValueError, ArgumentError) as exc:
        message = str(exc) if isinstance(exc, ArgumentError) else (
            f"--expand-percentage must be a number from 0 to {MAX_EXPAND_PERCENTAGE:g}, got {text!r}")
        raise argparse.ArgumentTypeError(message) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


DEVICES = ("auto", "cpu", "cuda", "tensorrt")


def _add_model_options(parser: argparse.ArgumentParser, recognizer: bool) -> None:
    parser.add_argument("--backend", default="scrfd", help="detector name (see `deepbatch models`; default scrfd)")
    parser.add_argument("--conf", type=_fraction, default=None, metavar="P",
                        help="keep faces scored at least P (the detector's score_threshold; default: its own)")
    parser.add_argument("--input-size", type=_input_size, default=None, metavar="N|WxH",
                        help="the detector's input canvas in pixels (default: its own)")
    parser.add_argument("--device", "--providers", dest="providers", choices=DEVICES, default="auto",
                        help="ONNX Runtime providers: auto (the best available), cpu, cuda or tensorrt")
    parser.add_argument("--no-align", action="store_true", help="box crops instead of eye-levelled crops")
    if parser.prog.endswith("verify"):
        parser.add_argument("--enforce-detection", action="store_true",
                            help="the default: an image without a face is an error (exit code 1, naming the image), "
                                 "as enforce_detection=True in the Python API; see --whole-image")
    else:
        parser.add_argument("--enforce-detection", action="store_true",
                            help="an image without a face is a failure (exit code 1, naming the image), as "
                                 "enforce_detection=True in the Python API; by default it is a row without faces")
    if recognizer:
        parser.add_argument("--model", default="arcface_mbf", help="recognizer name (default arcface_mbf)")


def _add_input_options(parser: argparse.ArgumentParser, output: str) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files, URLs, folders (recursive), video files, or - to read paths from stdin")
    _add_model_options(parser, recognizer=parser.prog.endswith("represent"))
    parser.add_argument("--batch-size", type=_batch_size, default="auto", metavar="N|auto",
                        help="images per model call (default auto: chosen for the device)")
    parser.add_argument("--max-faces", type=_positive_int, default=None, metavar="N",
                        help="keep the N largest faces per image")
    parser.add_argument("--expand-percentage", type=_expand_percentage, default=0, metavar="P",
                        help=f"grow each box by P percent, 0 to {MAX_EXPAND_PERCENTAGE:g} (default 0)")
    parser.add_argument("--frame-step", type=_positive_int, default=1, metavar="N",
                        help="read every N-th frame of videos (default 1: every frame)")
    parser.add_argument("--output", "-o", default=None, metavar=output, help="where to write (default: stdout)")
    parser.add_argument("--engine", choices=["local", *CLUSTER_ENGINES], default="local",
                        help="where the work runs (ray: on a Ray cluster, writing --output X.parquet)")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="--engine ray: model actors, each loading the models once (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0, metavar="G",
                        help="--engine ray: GPUs reserved per worker, fractions share a GPU (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .io.images import ImageLimits

    defaults = ImageLimits()
    parser.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files whose header declares more pixels (default {defaults.max_pixels})")
    parser.add_argument("--max-bytes", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files and URL bodies larger than this (default {defaults.max_bytes})")


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


def _common_options() -> argparse.ArgumentParser:
    """``-v`` and ``-q``, accepted before or after the command (SUPPRESS keeps the value given before it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log what is being done (and the traceback of an internal failure)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bar, no summary: errors only")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="deepbatch", parents=[common],
        description="Find, align and embed faces in batches of images, on ONNX Runtime.",
        epilog="Exit codes: 0 success; 1 some inputs failed, a batch check failed or batchify refused; "
               "2 bad usage or setup (bad weights included); 3 out of memory, disk full or an internal failure; "
               "130 interrupted (Ctrl-C, SIGTERM, SIGHUP).",
    )
    parser.add_argument("--version", action="version", version=f"deepbatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)

    detect = command(
        "detect", help="detect faces in images, folders and videos",
        description="Detect faces; one row per image or video frame (see the README's output schema) as JSON lines "
                    "on stdout or in --output FILE.jsonl, or Parquet in --output FILE.parquet. Unreadable files "
                    "are reported and skipped.",
    )
    _add_input_options(detect, "FILE.jsonl|FILE.parquet")
    detect.add_argument("--save-crops", metavar="DIR", help="save each face crop as a JPEG under DIR")
    detect.add_argument("--draw", metavar="DIR", help="save copies annotated with boxes, scores, landmarks under DIR "
                        "(a video gives an annotated DIR/NAME.mp4)")
    detect.set_defaults(handler=cmd_detect)

    represent = command(
        "represent", help="face embeddings of images, folders and videos",
        description="Embed every face: rows (one per image, each face with its embedding) as JSON lines on stdout "
                    "or in --output FILE.jsonl, Parquet in FILE.parquet, or a matrix --output FILE.npy (one row "
                    "per face) with FILE.index.jsonl naming each row's image and face.",
    )
    _add_input_options(represent, "FILE.jsonl|FILE.parquet|FILE.npy")
    represent.add_argument("--normalization", default="base",
                           help="input normalisation, as DeepFace: base (the model's own), raw, Facenet, Facenet2018, "
                                "VGGFace, VGGFace2 or ArcFace")
    represent.set_defaults(handler=cmd_represent, draw=None, save_crops=None)

    verify = command("verify", help="whether two images show the same person",
                     description="Compare the faces of two images (deepbatch.verify): prints the verdict, the "
                                 "distance and the threshold, or the whole result as JSON with --json. Exit code 0 "
                                 "whether or not they match; 1 when an image has no face (detection is enforced, "
                                 "as in the Python API), unless --whole-image.")
    verify.add_argument("image1", metavar="IMAGE1")
    verify.add_argument("image2", metavar="IMAGE2")
    _add_model_options(verify, recognizer=True)
    verify.add_argument("--metric", default="cosine", choices=("cosine", "euclidean", "euclidean_l2", "angular"),
                        help="distance metric (default cosine)")
    verify.add_argument("--threshold", type=float, default=None, help="distance threshold (default: the model's)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--whole-image", "--no-enforce-detection", dest="whole_image", action="store_true",
                        help="compare a whole image where no face is found (enforce_detection=False), with a "
                             "warning; by default an image without a face is an error")
    verify.set_defaults(handler=cmd_verify)

    batchify = command(
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

    check = command(
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

    models = command("models", help="registered detectors and recognizers, and where their weights are",
                     description="List the registered models and whether their weights were found.")
    models.add_argument("--batching", action="store_true", help="load each ONNX model whose weights are found and "
                        "show how it batches: native, repaired or per_image (with the reason); other backends say "
                        "native or loop from their class, without loading their framework")
    models.add_argument("--wide", action="store_true", help=f"one line per model, as wide as its text (by default "
                        f"cells wrap to fit {TABLE_WIDTH} columns)")
    models.set_defaults(handler=cmd_models)
    from .serve.cli import add_serve_command
    add_serve_command(command)
    add_database_commands(command)
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
    """Make SIGTERM and SIGHUP stop the run as Ctrl-C does (outputs closed, exit 130), and Ctrl-C itself stop it
    whatever was inherited: a background job of a non-interactive shell (many CI scripts) starts with SIGINT
    ignored, and Python then leaves it so. Returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}
    handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    return handlers


def _restore_signals(handlers: Dict[int, Any]) -> None:
    for signum, previous in handlers.items():
        signal.signal(signum, previous)


def _command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of command ``name``, whose usage an error about its options should print."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name, parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    if args.quiet and hasattr(args, "no_progress"):
        args.no_progress = True
    package_logger = logging.getLogger("deepbatch")
    handler = _ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING)
    previous_handlers = _stop_on_signals()
    code = EXIT_OK
    try:
        if getattr(args, "engine", None) in CLUSTER_ENGINES:  # every package the engine needs, named at once
            require_all(EXTRA_MODULES[args.engine], args.engine, f"--engine {args.engine}")
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader that went away is noticed here, not by the flush at exit
        return code
    except BrokenPipeError:  # the reader went away (`deepbatch detect ... | head`): what it read was all it wanted
        _silence_stdout()
        return code
    except KeyboardInterrupt as exc:
        _say(f"interrupted{f' by {exc}' if str(exc) else ''}", err=True)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        _say(f"error: out of memory{f' ({exc})' if str(exc) else ''}; use a smaller --batch-size, or fewer or "
             "smaller images", err=True)
        return EXIT_INTERNAL
    except (ImageError, FaceNotDetectedError) as exc:  # an input of `verify` could not be used
        _say(f"error: {exc}", err=True)
        return EXIT_FAILED
    except OSError as exc:  # a file that cannot be read or written is the setup's; a full disk is a resource
        _say(f"error: {exc}", err=True)
        return EXIT_INTERNAL if is_resource_error(exc) else EXIT_USAGE
    except DeepbatchError as exc:  # deepbatch's own refusals: a bad option, name, setup or model file
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
