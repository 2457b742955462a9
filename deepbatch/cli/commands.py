"""The subcommands that run models: ``detect``, ``represent``, ``verify``, ``batchify``, ``check-batch``, ``bench``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError, FaceNotDetectedError
from ..plan import RunPlan, build_plan
from ..sources import count_items, is_url, iter_items
from .console import say
from .engines import CLUSTER_ENGINES, LOCAL_ENGINES, build_cli_detector, build_cli_recognizer, detector_options
from .exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .sinks import Sink, Tally

logger = logging.getLogger("deepbatch.cli")


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
            from ..ray import run_cli

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
        say(sink.tally.summary(f"{plan.command}:") + where, err=True)
    return code


def cmd_detect(args: argparse.Namespace) -> int:
    return _run_images(args)


def cmd_represent(args: argparse.Namespace) -> int:
    return _run_images(args)


def cmd_verify(args: argparse.Namespace) -> int:
    """``deepbatch verify A B``: :func:`deepbatch.verify` on two images; exit 0 whether or not they match."""
    from ..api.verify import verify

    for path in (args.image1, args.image2):
        if not is_url(path) and not Path(path).expanduser().exists():
            raise ArgumentError(f"no such file: {path}")
    if args.whole_image and args.enforce_detection:
        raise ArgumentError("--whole-image and --enforce-detection contradict each other: choose one")
    if args.whole_image:
        say("warning: --whole-image: an image without a face is compared as a whole image, so the verdict may "
             "not be about faces", err=True)
    args.detector_options = detector_options(args)
    try:
        result = verify(args.image1, args.image2, model_name=build_cli_recognizer(args),
                        detector_backend=build_cli_detector(args), distance_metric=args.metric,
                        enforce_detection=not args.whole_image, align=not args.no_align, threshold=args.threshold)
    except FaceNotDetectedError as exc:
        say(f"error: {exc} On the command line: --whole-image.", err=True)
        return EXIT_FAILED
    result["model"], result["detector_backend"] = args.model, args.backend
    if args.json:
        say(json.dumps(result, default=_plain))
    else:
        verdict = "same person" if result["verified"] else "different people"
        say(f"{verdict}: {result['similarity_metric']} distance {result['distance']:.4f} "
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
    from ..runtime.batchify import BatchUnsafeError, batchify

    try:
        result = batchify(args.source, args.target, args.batch_sizes, args.input_shape, args.dynamic_spatial,
                          args.tolerance, args.providers, args.seed)
    except BatchUnsafeError as exc:
        say(f"refused: {exc}", err=True)
        return EXIT_FAILED
    say(f"{result.source} (declared batch layout: {result.layout}) -> {result.target}")
    say(f"changes: {result.repair.describe()}")
    say(result.report.table())
    return EXIT_OK


def cmd_check_batch(args: argparse.Namespace) -> int:
    from ..runtime.batchify import check_batch
    from ..runtime.surgery import batch_layout, import_onnx

    report = check_batch(args.model, args.batch_sizes, args.input_shape, args.tolerance, args.providers, args.seed)
    say(f"{args.model}")
    say(report.table())
    say(f"deepbatch runs it as: {_loaded_batching(args)}")
    if report.passed:
        return EXIT_OK
    layout = batch_layout(import_onnx().load(str(args.model), load_external_data=False))
    if layout != "dynamic":
        say(f"hint: the file declares a {layout} batch; `deepbatch batchify {args.model} OUT.onnx` can repair it")
    return EXIT_FAILED


def _loaded_batching(args: argparse.Namespace) -> str:
    """The batching mode (native, repaired or per_image, with the reason) deepbatch gives the model at load."""
    from ..runtime.batchify import frame_spec
    from ..runtime.model import OnnxModel
    from ..runtime.surgery import import_onnx

    frame_shape, _ = frame_spec(import_onnx().load(str(args.model), load_external_data=False), args.model,
                                args.input_shape)
    return OnnxModel(args.model, args.providers, probe_shape=frame_shape, cache=False).batching  # type: ignore[arg-type]


def cmd_bench(args: argparse.Namespace) -> int:
    from ..source_tree import load_benchmark

    try:
        bench = load_benchmark("bench_detector")
    except ModuleNotFoundError as exc:
        if exc.name != "bench_detector":
            raise
        say("deepbatch bench runs benchmarks/bench_detector.py of a checkout of the source repository, which this "
             "installation does not have", err=True)
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog="deepbatch bench", description="Throughput of a detector: raw model and "
                                     "end-to-end extract_faces, per batch size.")
    bench.add_arguments(parser)
    return int(bench.run(parser.parse_args(args.bench_args)) or 0)
