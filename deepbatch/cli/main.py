"""The entry point: parse, set up logging and signals, run the command, map what happened to an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from ..errors import DeepbatchError, FaceNotDetectedError, ImageError
from ..io.outputs import is_resource_error
from ..optional import EXTRA_MODULES, require_all
from .console import ProgressAwareHandler, say, silence_stdout
from .engines import CLUSTER_ENGINES
from .exit_codes import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .parser import build_parser
from .signals import restore_signals, stop_on_signals

logger = logging.getLogger("deepbatch.cli")

# how ONNX Runtime, CUDA and Ray say that memory ran out
_OUT_OF_MEMORY_TEXTS = ("Failed to allocate memory", "bad_alloc", "out of memory", "OutOfMemoryError")


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
    handler = ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING)
    previous_handlers = stop_on_signals()
    code = EXIT_OK
    try:
        if getattr(args, "engine", None) in CLUSTER_ENGINES:  # every package the engine needs, named at once
            require_all(EXTRA_MODULES[args.engine], args.engine, f"--engine {args.engine}")
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader that went away is noticed here, not by the flush at exit
        return code
    except BrokenPipeError:  # the reader went away (`deepbatch detect ... | head`): what it read was all it wanted
        silence_stdout()
        return code
    except KeyboardInterrupt as exc:
        say(f"interrupted{f' by {exc}' if str(exc) else ''}", err=True)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        say(f"error: out of memory{f' ({exc})' if str(exc) else ''}; use a smaller --batch-size, or fewer or "
             "smaller images", err=True)
        return EXIT_INTERNAL
    except (ImageError, FaceNotDetectedError) as exc:  # an input of `verify` could not be used
        say(f"error: {exc}", err=True)
        return EXIT_FAILED
    except OSError as exc:  # a file that cannot be read or written is the setup's; a full disk is a resource
        say(f"error: {exc}", err=True)
        return EXIT_INTERNAL if is_resource_error(exc) else EXIT_USAGE
    except DeepbatchError as exc:  # deepbatch's own refusals: a bad option, name, setup or model file
        say(f"error: {exc}", err=True)
        return EXIT_USAGE
    except Exception as exc:  # a runtime (ONNX Runtime, Ray) or internal failure: no traceback unless -v
        logger.debug("internal failure", exc_info=True)
        text = " ".join(str(exc).split())
        what = "out of memory" if any(s in text for s in _OUT_OF_MEMORY_TEXTS) else "internal failure"
        say(f"error: {what}: {type(exc).__name__}: {text}" + ("" if args.verbose else
             " (run with -v for the traceback)"), err=True)
        return EXIT_INTERNAL
    finally:
        restore_signals(previous_handlers)
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())
