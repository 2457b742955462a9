"""The run plan: everything a ``detect`` or ``represent`` run needs, resolved and checked once.

:func:`build_plan` turns the parsed command line into a :class:`RunPlan` before any model loads: the inputs (every
path, those read from standard input included, checked against the outputs as it is read), the outputs (rows file,
``--draw`` and ``--save-crops`` folders), the face rules, the model options, the image limits, the batch size and
the engine. Both engines (this process, and Ray in :func:`deepbatch.ray.run_cli`) and every writer take their
settings from the plan and nowhere else, so an option means the same thing whichever engine runs it.

Checks (each an :class:`~deepbatch.errors.ArgumentError`, exit code 2 on the command line):

* an output folder that is, holds or lies inside an input (after resolving links), an ``--output`` that is an
  input, a Ray dataset folder that is a link or a folder deepbatch did not write;
* numbers out of range: ``--expand-percentage`` (0 to :data:`~deepbatch.checks.MAX_EXPAND_PERCENTAGE`),
  ``--gpus-per-worker`` (finite, >= 0);
* options the engine cannot honour (``--draw`` on Ray, a video on Ray, an output format the command cannot write).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Dict, FrozenSet, Iterator, List, Optional, Set, Tuple, Union

from .errors import ArgumentError
from .io.outputs import Inode, RunLock, check_separate, inode
from .sources import Source, plan_sources

if TYPE_CHECKING:
    from .core.stream import FaceRules

Options = Tuple[Tuple[str, Any], ...]


@dataclass(frozen=True)
class ModelOptions:
    """The detector and recognizer to build, with the options the command line gave them (``--conf``,
    ``--input-size``, ``--device``) and the recognizer's input normalisation."""

    detector: str
    detector_options: Options = ()
    recognizer: Optional[str] = None
    recognizer_options: Options = ()
    normalization: str = "base"

    @property
    def detector_kwargs(self) -> Dict[str, Any]:
        return dict(self.detector_options)

    @property
    def recognizer_kwargs(self) -> Dict[str, Any]:
        return dict(self.recognizer_options)

    def build_detector(self) -> Any:
        from .detectors.base import build_detector

        return build_detector(self.detector, **self.detector_kwargs)

    def build_recognizer(self) -> Any:
        from .recognition.base import build_recognizer

        if self.recognizer is None:
            raise ArgumentError("this run has no recognizer")
        return build_recognizer(self.recognizer, **self.recognizer_kwargs)


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: ``rows`` (None: standard output) in format ``kind``; annotated copies under ``draw``
    and face crops under ``crops`` (``detect`` only)."""

    rows: Optional[Path]
    kind: str
    draw: Optional[Path] = None
    crops: Optional[Path] = None

    def locks(self, folder_rows: bool = False) -> List[Tuple[str, RunLock]]:
        """One lock per distinct output (``folder_rows``: the rows are a dataset folder, locked beside it)."""
        wanted: List[Tuple[str, RunLock]] = []
        if self.rows is not None:
            wanted.append(("--output", RunLock(self.rows)))
        for option, folder in (("--draw", self.draw), ("--save-crops", self.crops)):
            if folder is not None:
                wanted.append((option, RunLock(folder, folder=True)))
        seen: Set[Path] = set()
        unique = []
        for option, lock in wanted:
            if lock.path not in seen:
                seen.add(lock.path)
                unique.append((option, lock))
        return unique


@dataclass(frozen=True)
class Limits:
    """Image limits of the run (None: the library's defaults): declared pixels per image, bytes per file or URL."""

    max_pixels: Optional[int] = None
    max_bytes: Optional[int] = None

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """These limits in force in this process for the duration of the block."""
        from dataclasses import asdict

        from .io.images import set_image_limits

        previous = set_image_limits(max_pixels=self.max_pixels, max_bytes=self.max_bytes)
        try:
            yield
        finally:
            set_image_limits(**asdict(previous))


@dataclass(frozen=True)
class RunPlan:
    """One ``detect`` or ``represent`` run, checked; immutable. ``inputs`` are the inodes of every input file:
    no writer replaces one of them, whatever name or link leads there."""

    command: str
    sources: Tuple[Source, ...]
    outputs: Outputs
    rules: FaceRules
    models: ModelOptions
    limits: Limits = Limits()
    batch_size: Union[int, str] = "auto"
    frame_step: int = 1
    engine: str = "local"
    workers: int = 1
    gpus_per_worker: float = 0.0
    paths: Tuple[str, ...] = ()
    inputs: FrozenSet[Inode] = field(default=frozenset(), repr=False)
    progress: bool = True
    quiet: bool = False
    verbose: bool = False

    @property
    def crops(self) -> bool:
        return self.outputs.crops is not None

    @property
    def full_resolution(self) -> bool:
        """Whether images must be decoded whole (embedding, drawing or cropping needs every pixel)."""
        return self.models.recognizer is not None or self.outputs.draw is not None or self.crops

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock of every output for the duration of the block (:class:`~deepbatch.io.outputs.RunLock`):
        a second run on any of them is refused before it loads a model."""
        held: List[RunLock] = []
        try:
            for option, lock in self.outputs.locks():
                lock.acquire(option)
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()


# ----------------------------------------------------------------------------------------------------------------
# Building the plan from the command line


def model_options(args: Any, factory: Any, which: str) -> Dict[str, Any]:
    """The command line's model options that ``factory`` takes; an :class:`ArgumentError` for a detector option it
    does not take (a recognizer without ONNX Runtime providers runs where it runs; ``--threads``, a performance
    setting, applies to the models that run on ONNX Runtime and is left out for the others)."""
    from .registry import accepts

    given = {"providers": (args.providers, "--device")} if args.providers != "auto" else {}
    if getattr(args, "threads", None) is not None:
        given["threads"] = (args.threads, "--threads")
    if which == "detector":
        given.update({key: (value, flag) for key, value, flag in (
            ("score_threshold", args.conf, "--conf"), ("input_size", args.input_size, "--input-size"))
            if value is not None})
    options = {}
    for key, (value, flag) in given.items():
        if not accepts(factory, key):
            if which == "detector" and key != "threads":
                raise ArgumentError(f"{flag} does not apply to the {args.backend} detector")
            continue
        options[key] = value
    return options


def _models(args: Any) -> ModelOptions:
    from .detectors.base import DETECTORS

    detector = tuple(sorted(model_options(args, DETECTORS.entry(args.backend).factory, "detector").items()))
    if args.command != "represent":
        return ModelOptions(args.backend, detector)
    from .recognition.base import RECOGNIZERS

    recognizer = tuple(sorted(model_options(args, RECOGNIZERS.entry(args.model).factory, "recognizer").items()))
    return ModelOptions(args.backend, detector, args.model, recognizer, args.normalization)


class InputGuard:
    """Checks each input path against the outputs as it is read, and records the inodes of the input files."""

    def __init__(self, rows: Optional[Path], folders: Dict[str, Path], companions: Tuple[Path, ...] = ()):
        self.rows = rows
        self.rows_real = None if rows is None else os.path.realpath(rows)
        self.written = tuple(p for p in (rows, *companions) if p is not None)
        self.folders = folders
        self.inodes: Set[Inode] = set()

    def __call__(self, text: str) -> None:
        path = Path(text).expanduser()
        check_separate([path], self.folders)
        if self.rows_real is not None and os.path.realpath(path) == self.rows_real:
            raise ArgumentError(f"--output {self.rows} is one of the inputs; writing it would destroy that input")
        if path.is_file():
            found = inode(path)
            if found is not None:
                self.inodes.add(found)

    def check_rows(self) -> None:
        """The ``--output`` file (and the index beside a matrix), as it is now, is not (a hard link of) an input."""
        for path in self.written:
            if inode(path) in self.inodes or inode(path, follow=False) in self.inodes:
                raise ArgumentError(f"--output {self.rows} would replace {path}, one of the inputs; choose another "
                                    "name")


def _checked_gpus(value: Any) -> float:
    number = float(value or 0)
    if not math.isfinite(number) or number < 0:
        raise ArgumentError(f"--gpus-per-worker must be a finite number >= 0, got {value!r}")
    return number


def build_plan(args: Any, stdin: Optional[IO[str]] = None) -> RunPlan:
    """The checked :class:`RunPlan` of parsed ``detect``/``represent`` arguments (see the module doc)."""
    from .core.stream import FaceRules
    from .io.writers import output_format

    command = args.command
    draw = getattr(args, "draw", None)
    crops = getattr(args, "save_crops", None)
    if command == "represent" and (draw or crops):
        raise ArgumentError("--draw and --save-crops belong to detect")
    kind = output_format(args.output, ("jsonl", "parquet", "npy") if command == "represent" else ("jsonl", "parquet"))
    rows = None if args.output in (None, "-") else Path(args.output).expanduser()
    outputs = Outputs(rows, kind, Path(draw).expanduser() if draw else None,
                      Path(crops).expanduser() if crops else None)
    rules = FaceRules("error" if args.enforce_detection else "empty", args.max_faces, args.expand_percentage,
                      not args.no_align)
    models = _models(args)
    folders = {option: folder for option, folder in (("--draw", outputs.draw), ("--save-crops", outputs.crops))
               if folder is not None}
    if args.engine != "local":
        from .ray import check_plan_outputs

        rows_folder = check_plan_outputs(args.output, draw, crops)
        folders["--output"] = rows_folder
        guard = InputGuard(None, folders)
    else:
        index = (rows.with_suffix(".index.jsonl"),) if rows is not None and kind == "npy" else ()
        guard = InputGuard(rows, folders, index)
    sources = plan_sources(args.paths, stdin, check=guard)
    guard.check_rows()
    if rows is not None and os.path.isdir(rows) and not os.path.islink(rows) and args.engine == "local":
        raise ArgumentError(f"--output {rows} is a folder; name a file (e.g. {rows / 'rows.jsonl'})")
    if args.engine != "local":
        videos = [s.location for s in sources if s.video]
        if videos:
            raise ArgumentError(f"--engine ray reads image files only, got video {videos[0]}; use --engine local "
                                "for video")
    return RunPlan(
        command=command, sources=tuple(sources), outputs=outputs, rules=rules, models=models,
        limits=Limits(args.max_pixels, args.max_bytes), batch_size=args.batch_size, frame_step=args.frame_step,
        engine=args.engine, workers=args.workers, gpus_per_worker=_checked_gpus(getattr(args, "gpus_per_worker", 0)),
        paths=tuple(args.paths), inputs=frozenset(guard.inodes),
        progress=not args.no_progress, quiet=bool(getattr(args, "quiet", False)),
        verbose=bool(getattr(args, "verbose", False)),
    )
