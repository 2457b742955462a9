"""The command line's parser: its commands, options and option types."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Tuple, Union

from .._version import __version__
from ..checks import MAX_EXPAND_PERCENTAGE, check_expand_percentage
from ..errors import ArgumentError
from ..store.cli import add_database_commands
from .commands import cmd_batchify, cmd_bench, cmd_check_batch, cmd_detect, cmd_represent, cmd_verify
from .engines import CLUSTER_ENGINES
from .tables import TABLE_WIDTH, cmd_models


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
    """``auto`` (chosen for the device, see :func:`deepbatch.core.workers.resolve_batch_size`) or a positive integer."""
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
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="intra-op threads of each ONNX Runtime model (deepbatch.Performance's threads; "
                             "default: chosen for the machine)")
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
    from ..io.images import ImageLimits

    defaults = ImageLimits()
    parser.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files whose header declares more pixels (default {defaults.max_pixels})")
    parser.add_argument("--max-bytes", type=_positive_int, default=None, metavar="N",
                        help=f"refuse image files and URL bodies larger than this (default {defaults.max_bytes})")


def _add_model_check_options(parser: argparse.ArgumentParser) -> None:
    from ..runtime.batchify import DEFAULT_BATCH_SIZES
    from ..runtime.isolation import DEFAULT_TOLERANCE

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
                        "one call per chunk or loop from their class, without loading their framework")
    models.add_argument("--wide", action="store_true", help=f"one line per model, as wide as its text (by default "
                        f"cells wrap to fit {TABLE_WIDTH} columns)")
    models.set_defaults(handler=cmd_models)
    from ..serve.cli import add_serve_command
    add_serve_command(command)
    add_database_commands(command)
    return parser
