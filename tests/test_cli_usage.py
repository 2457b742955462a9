"""The command line as users expect it: options, usage errors, inputs from URLs and stdin, verify, videos."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List, NamedTuple, Sequence

import cv2
import numpy as np
import pytest

import deepbatch.core.stream
from deepbatch._version import __version__
from deepbatch.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, build_parser, main


class Run(NamedTuple):
    code: int
    stdout: str
    stderr: str


def run(args: Sequence[object], stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exited:
                code = int(exited.code or 0)
    finally:
        sys.stdin = saved
    return Run(code, out.getvalue(), err.getvalue())


def rows(text: str) -> List[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grey picture with no face in it."""
    path = tmp_path_factory.mktemp("blank") / "grey.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
    return path


@pytest.fixture(scope="module")
def server(dataset_dir: Path) -> Iterator[str]:
    """The shared photos over HTTP on 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dataset_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    os.environ["DEEPBATCH_ALLOW_PRIVATE_URLS"] = "1"  # the test server is on this machine
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    os.environ.pop("DEEPBATCH_ALLOW_PRIVATE_URLS", None)
    httpd.shutdown()
    httpd.server_close()


# --- inputs are checked before any model loads ---


@pytest.mark.parametrize("missing, hint", [("nope.jpg", "no such file"), ("*.jpeg", "shell did not expand")])
def test_missing_input_is_a_usage_error_before_any_model_loads(missing: str, hint: str, tmp_path: Path,
                                                               dataset_dir: Path) -> None:
    # scrfd_34g has no weights here: reaching the model would fail on weights, not on the path
    result = run(["detect", dataset_dir / "img1.jpg", tmp_path / missing, "--backend", "scrfd_34g"])
    assert (result.code, hint in result.stderr, result.stderr.count("error:")) == (EXIT_USAGE, True, 1)


@pytest.mark.parametrize("suffix", [".csv", ".txt", ""])
def test_output_format_the_command_cannot_write_is_refused_before_work(suffix: str, tmp_path: Path,
                                                                        dataset_dir: Path) -> None:
    target = tmp_path / f"out{suffix}"
    result = run(["detect", dataset_dir / "img1.jpg", "--output", target, "--backend", "scrfd_34g"])
    assert (result.code, "is not a format this command writes" in result.stderr, target.exists()) == (
        EXIT_USAGE, True, False)


def test_npy_output_is_refused_for_detect(tmp_path: Path, dataset_dir: Path) -> None:
    assert run(["detect", dataset_dir / "img1.jpg", "--output", tmp_path / "x.npy"]).code == EXIT_USAGE


# --- usage errors ---


@pytest.mark.parametrize("command", ["detect", "represent", "verify"])
def test_typo_in_an_option_prints_that_command_usage(command: str, dataset_dir: Path) -> None:
    paths = [dataset_dir / "img1.jpg"] * (2 if command == "verify" else 1)
    result = run([command, *paths, "--batch-sizee", "4"])
    assert (result.code, f"usage: deepbatch {command}" in result.stderr) == (EXIT_USAGE, True)


def test_misspelt_backend_gets_a_suggestion(dataset_dir: Path) -> None:
    result = run(["detect", dataset_dir / "img1.jpg", "--backend", "scrfd10g"])
    assert (result.code, "did you mean 'scrfd_10g'" in result.stderr) == (EXIT_USAGE, True)


def test_option_a_backend_does_not_take_is_a_usage_error(dataset_dir: Path) -> None:
    result = run(["detect", dataset_dir / "img1.jpg", "--backend", "skip", "--conf", "0.5"])
    assert (result.code, "--conf does not apply to the skip detector" in result.stderr) == (EXIT_USAGE, True)


def test_a_bug_is_an_internal_failure_not_bad_usage(dataset_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("an unexpected value")

    monkeypatch.setattr(deepbatch.core.stream, "select_faces", broken)
    result = run(["detect", dataset_dir / "img1.jpg", "--no-progress"])
    assert (result.code, "internal failure" in result.stderr) == (EXIT_INTERNAL, True)


# --- options ---


@pytest.mark.parametrize("argv", [["-v", "detect", "x.jpg"], ["detect", "x.jpg", "-v"], ["detect", "-v", "x.jpg"]])
def test_verbose_is_taken_before_or_after_the_command(argv: List[str]) -> None:
    assert build_parser().parse_known_args(argv)[0].verbose is True


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_leaves_only_the_rows(where: str, dataset_dir: Path) -> None:
    args: List[object] = ["detect", dataset_dir / "img1.jpg"]
    result = run(["-q", *args] if where == "before" else [*args, "--quiet"])
    assert (result.code, result.stderr, len(rows(result.stdout))) == (EXIT_OK, "", 1)


def test_max_faces_keeps_the_largest(dataset_dir: Path) -> None:
    every = rows(run(["detect", dataset_dir / "couple.jpg", "-q"]).stdout)[0]["faces"]
    kept = rows(run(["detect", dataset_dir / "couple.jpg", "-q", "--max-faces", "1"]).stdout)[0]["faces"]
    assert kept == [max(every, key=lambda face: face["box"][2] * face["box"][3])]


def test_conf_drops_faces_below_it(dataset_dir: Path) -> None:
    every = rows(run(["detect", dataset_dir / "selfie-many-people.jpg", "-q"]).stdout)[0]["faces"]
    cut = float(np.median([face["confidence"] for face in every]))
    kept = rows(run(["detect", dataset_dir / "selfie-many-people.jpg", "-q", "--conf", cut]).stdout)[0]["faces"]
    assert kept == [face for face in every if face["confidence"] >= cut] and 0 < len(kept) < len(every)


def test_input_size_reaches_the_detector(dataset_dir: Path) -> None:
    small = rows(run(["detect", dataset_dir / "couple.jpg", "-q", "--input-size", "320"]).stdout)[0]["faces"]
    large = rows(run(["detect", dataset_dir / "couple.jpg", "-q", "--input-size", "640"]).stdout)[0]["faces"]
    assert len(small) == len(large) == 2 and small != large


def test_enforce_detection_makes_a_faceless_image_a_failure(blank: Path, weights_dir: Path) -> None:
    default, enforced = run(["detect", blank, "-q"]), run(["detect", blank, "-q", "--enforce-detection"])
    assert (default.code, rows(default.stdout)[0]["faces"], rows(default.stdout)[0]["error"]) == (EXIT_OK, [], None)
    assert (enforced.code, rows(enforced.stdout)[0]["error"]) == (EXIT_FAILED, "FaceNotDetectedError: no face was "
                                                                                "detected")


# --- inputs: URLs and stdin ---


def test_url_is_read_as_given(server: str) -> None:
    result = run(["detect", f"{server}/couple.jpg", "-q"])
    assert [(row["path"], len(row["faces"])) for row in rows(result.stdout)] == [(f"{server}/couple.jpg", 2)]


def test_dash_reads_paths_from_stdin(dataset_dir: Path) -> None:
    names = ["img1.jpg", "couple.jpg"]
    result = run(["detect", "-", "-q"], stdin="".join(f"{dataset_dir / n}\n" for n in names))
    assert [Path(row["path"]).name for row in rows(result.stdout)] == names


# --- verify ---


@pytest.mark.parametrize("second, verified", [("img2.jpg", True), ("img4.jpg", True), ("img20.jpg", False)])
def test_verify_prints_the_verdict_as_json(second: str, verified: bool, dataset_dir: Path) -> None:
    result = run(["verify", dataset_dir / "img1.jpg", dataset_dir / second, "--json", "-q"])
    assert (result.code, json.loads(result.stdout)["verified"]) == (EXIT_OK, verified)


def test_verify_prints_a_line_without_json(dataset_dir: Path) -> None:
    result = run(["verify", dataset_dir / "img1.jpg", dataset_dir / "img2.jpg"])
    assert result.stdout.startswith("same person: cosine distance ")


def test_verify_of_a_faceless_image_is_a_failed_input(dataset_dir: Path, blank: Path) -> None:
    assert run(["verify", dataset_dir / "img1.jpg", blank, "--enforce-detection"]).code == EXIT_FAILED


# --- python -m deepbatch, and --draw on a video ---


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "deepbatch", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"deepbatch {__version__}")


def test_draw_on_a_video_writes_a_video(tmp_path: Path, dataset_dir: Path) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    for name in ("couple.jpg", "img1.jpg", "img1.jpg"):
        writer.write(cv2.resize(cv2.imread(str(dataset_dir / name)), (320, 240)))
    writer.release()
    out = tmp_path / "drawn"
    result = run(["detect", clip, "-q", "--draw", out])
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert (result.code, sorted(p.name for p in out.iterdir()), frames) == (EXIT_OK, ["clip.mp4"], 3)
    assert {row["drawn"] for row in rows(result.stdout)} == {str(out / "clip.mp4")}


def test_represent_writes_real_parquet_without_ray(tmp_path: Path, dataset_dir: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="writing Parquet needs pyarrow: deepbatch[parquet]")

    from deepbatch.recognition import build_recognizer
    from deepbatch.rows import arrow_schema

    target = tmp_path / "embeddings.parquet"
    result = run(["represent", dataset_dir / "couple.jpg", dataset_dir / "img1.jpg", "-q", "--output", target])
    table = pq.read_table(str(target))
    size = build_recognizer("arcface_mbf").embedding_size
    assert (result.code, table.schema, [len(f) for f in table["faces"].to_pylist()]) == (
        EXIT_OK, arrow_schema(size), [2, 1])
