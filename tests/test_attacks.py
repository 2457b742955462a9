"""Attacks on a photo collection through the command line's outputs: each is refused or contained, and no byte of an
input changes.

Every test runs the real command line (``deepbatch.cli.main``, or a subprocess where a second process or a signal
is the point) on copies of real photos, with SCRFD-500M on a 320-pixel canvas.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

import deepbatch
from deepbatch.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from deepbatch.errors import ArgumentError
from deepbatch.io.writers import json_line

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--input-size", "320", "--no-progress"]


def run(args: Sequence[object], cwd: Optional[Path] = None, stdin: str = "") -> Tuple[int, str, str]:
    """``deepbatch ARGS`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    previous, saved_stdin = os.getcwd(), sys.stdin
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(previous)
        sys.stdin = saved_stdin
    return code, out.getvalue(), err.getvalue()


def digests(folder: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``folder``, links not followed (a link is recorded by its target)."""
    found = {}
    for directory, subfolders, files in os.walk(folder):
        for name in files + [s for s in subfolders if os.path.islink(os.path.join(directory, s))]:
            path = Path(directory, name)
            key = path.relative_to(folder).as_posix()
            found[key] = ("-> " + os.readlink(path)) if path.is_symlink() else hashlib.sha256(
                path.read_bytes()).hexdigest()
    return found


def rows(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def photos(tmp_path: Path, dataset_dir: Path, weights_dir: Path) -> Path:
    """``tmp/photos`` with two real photos (one in a subfolder); the tests run in ``tmp``."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(dataset_dir / "img1.jpg", folder / "x.jpg")
    shutil.copy(dataset_dir / "couple.jpg", folder / "sub" / "couple.jpg")
    return folder


# --- Ray would have deleted the inputs: refused before Ray starts ---


def _link_to_input(tmp: Path) -> None:
    os.symlink("photos", tmp / "out.parquet")


def _link_to_other_folder(tmp: Path) -> None:
    (tmp / "shared").mkdir()
    (tmp / "shared" / "keep.txt").write_text("keep")
    os.symlink("shared", tmp / "shared.parquet")


def _foreign_folder(tmp: Path) -> None:
    (tmp / "other.parquet").mkdir()
    (tmp / "other.parquet" / "notes.txt").write_text("mine")


@pytest.mark.parametrize("output, prepare, message", [
    ("out.parquet", _link_to_input, "symbolic link"),
    ("shared.parquet", _link_to_other_folder, "symbolic link"),
    ("other.parquet", _foreign_folder, "did not write"),
    ("photos/sub/x.parquet", None, "overlaps the input"),
], ids=["link-to-input", "link-to-other-folder", "foreign-folder", "inside-input"])
def test_ray_output_that_is_not_its_own_is_refused_before_ray_starts(photos: Path, output: str, prepare: Any,
                                                                     message: str) -> None:
    tmp = photos.parent
    if prepare is not None:
        prepare(tmp)
    before = digests(tmp)
    code, _, err = run(["detect", "photos", "--engine", "ray", "-o", output, *FAST], cwd=tmp)
    assert code == EXIT_USAGE and message in err
    assert digests(tmp) == before


def test_ray_input_folder_named_like_the_output_is_refused(photos: Path) -> None:
    tmp = photos.parent
    os.rename(photos, tmp / "pics.parquet")
    before = digests(tmp)
    code, _, err = run(["detect", "pics.parquet", "--engine", "ray", "-o", "pics.parquet", *FAST], cwd=tmp)
    assert code == EXIT_USAGE and "did not write" in err
    assert digests(tmp) == before


# --- --draw over the originals, named on standard input ---


@pytest.mark.parametrize("listed", ["folder", "absolute-files", "relative-files"])
@pytest.mark.parametrize("option", ["--draw", "--save-crops"])
def test_output_folder_over_inputs_read_from_stdin_is_refused(photos: Path, listed: str, option: str) -> None:
    tmp = photos.parent
    lines = {"folder": ["photos"], "absolute-files": [str(p) for p in sorted(photos.rglob("*.jpg"))],
             "relative-files": ["photos/x.jpg"]}[listed]
    before = digests(tmp)
    code, _, err = run(["detect", "-", option, "photos", *FAST], cwd=tmp, stdin="\n".join(lines) + "\n")
    assert code == EXIT_USAGE and "overlaps the input" in err
    assert digests(tmp) == before


def test_stdin_paths_are_checked_as_they_are_read(photos: Path) -> None:
    """The overlapping path is refused when read: the lines after it are never read."""
    stream = io.StringIO("photos/x.jpg\nphotos/sub/couple.jpg\n")
    from deepbatch.plan import InputGuard
    from deepbatch.sources import plan_sources

    os.chdir(photos.parent)
    guard = InputGuard(None, {"--draw": Path("photos/sub")})
    with pytest.raises(ArgumentError, match="overlaps the input"):
        plan_sources(["-"], stream, check=guard)
    assert stream.read() == ""  # the second line was read and refused; nothing else waits


# --- links planted inside the outputs ---


def test_link_inside_the_draw_folder_to_the_inputs_is_not_followed(photos: Path) -> None:
    tmp = photos.parent
    (tmp / "out").mkdir()
    os.symlink("../photos", tmp / "out" / "photos")
    before = digests(photos)
    code, _, err = run(["detect", "photos/x.jpg", "--draw", "out", "--save-crops", "out", "-o", "rows.jsonl", *FAST],
                       cwd=tmp)
    assert code == EXIT_FAILED and "symbolic link" in err
    assert digests(photos) == before
    (row,) = rows(tmp / "rows.jsonl")
    assert "symbolic link" in row["error"] and "drawn" not in row


@pytest.mark.parametrize("command, output, partial", [
    ("detect", "rows.jsonl", "rows.jsonl.partial"),
    ("detect", "rows.parquet", "rows.parquet.partial"),
    ("represent", "e.npy", "e.npy.partial"),
    ("represent", "e.npy", "e.index.jsonl.partial"),
])
def test_partial_file_planted_as_a_link_is_replaced_not_written_through(photos: Path, command: str, output: str,
                                                                        partial: str) -> None:
    tmp = photos.parent
    victim = tmp / "victim.txt"
    victim.write_text("precious")
    os.symlink("victim.txt", tmp / partial)
    code, _, _ = run([command, "photos", "-o", output, *FAST], cwd=tmp)
    assert code == EXIT_OK and victim.read_text() == "precious"
    assert (tmp / output).is_file() and not (tmp / output).is_symlink()


def test_output_that_is_a_link_is_replaced_as_a_link(photos: Path) -> None:
    tmp = photos.parent
    (tmp / "victim.txt").write_text("precious")
    os.symlink("victim.txt", tmp / "rows.jsonl")
    code, _, _ = run(["detect", "photos", "-o", "rows.jsonl", *FAST], cwd=tmp)
    assert code == EXIT_OK and (tmp / "victim.txt").read_text() == "precious"
    assert not (tmp / "rows.jsonl").is_symlink() and len(rows(tmp / "rows.jsonl")) == 2


@pytest.mark.parametrize("output", ["photos", "photos.parquet"])
def test_local_output_that_resolves_to_an_input_is_refused(photos: Path, output: str) -> None:
    tmp = photos.parent
    if output != "photos":
        os.symlink("photos", tmp / output)
    before = digests(tmp)
    code, _, err = run(["detect", "photos", "-o", output, *FAST], cwd=tmp)
    assert code == EXIT_USAGE and ("one of the inputs" in err or "cannot write" in err)
    assert digests(tmp) == before


def test_output_that_is_a_hard_link_of_an_input_is_refused(photos: Path) -> None:
    tmp = photos.parent
    os.link(photos / "x.jpg", tmp / "rows.jsonl")
    before = digests(tmp)
    code, _, err = run(["detect", "photos", "-o", "rows.jsonl", *FAST], cwd=tmp)
    assert code == EXIT_USAGE and "one of the inputs" in err
    assert digests(tmp) == before


def test_files_follow_the_umask(photos: Path) -> None:
    tmp = photos.parent
    previous = os.umask(0o027)
    try:
        code, _, _ = run(["detect", "photos", "-o", "rows.jsonl", "--draw", "out", "--save-crops", "crops", *FAST],
                         cwd=tmp)
    finally:
        os.umask(previous)
    assert code == EXIT_OK
    written = [tmp / "rows.jsonl", *(tmp / "out").rglob("*.jpg"), *(tmp / "crops").rglob("*.jpg")]
    assert len(written) >= 4 and {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o640)}


# --- names: an annotated copy never takes a crop's name ---


@pytest.mark.parametrize("draw, crops", [("same", "same"), ("out", "out/crops")])
def test_draw_and_crop_names_never_collide(tmp_path: Path, dataset_dir: Path, weights_dir: Path, draw: str,
                                           crops: str) -> None:
    photos = tmp_path / "photos"
    (photos / "crops").mkdir(parents=True)
    shutil.copy(dataset_dir / "img1.jpg", photos / "x.jpg")
    shutil.copy(dataset_dir / "couple.jpg", photos / "x_jpg_face0.jpg")  # named like the crop of x.jpg
    shutil.copy(dataset_dir / "img12.jpg", photos / "crops" / "x_jpg_face0.jpg")  # and like it under out/crops
    code, _, err = run(["detect", "photos", "--draw", draw, "--save-crops", crops, "-o", "rows.jsonl", *FAST],
                       cwd=tmp_path)
    assert code == EXIT_OK, err
    named = [r["drawn"] for r in rows(tmp_path / "rows.jsonl")]
    named += [f["crop"] for r in rows(tmp_path / "rows.jsonl") for f in r["faces"]]
    assert len(named) == len({os.path.realpath(tmp_path / n) for n in named}) >= 6
    written = [p for p in tmp_path.rglob("*.jpg") if not p.is_relative_to(photos)]
    assert sorted(os.path.realpath(p) for p in written) == sorted(os.path.realpath(tmp_path / n) for n in named)


# --- two runs, one output ---


def _spawn(args: Sequence[object], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "deepbatch", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_second_run_on_the_same_output_is_refused_naming_the_first(photos: Path) -> None:
    tmp = photos.parent
    many = tmp / "many"
    many.mkdir()
    for k in range(40):
        shutil.copy(photos / "x.jpg", many / f"p{k:03d}.jpg")
    first = _spawn(["detect", "many", "-o", "rows.jsonl", "--batch-size", "1", *FAST], tmp)
    deadline = time.monotonic() + 60
    while not (tmp / "rows.jsonl.lock").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    assert first.poll() is None, "the first run ended before its lock was seen"
    first.send_signal(signal.SIGSTOP)  # paused holding its lock, however fast this machine runs it
    try:
        code, _, err = run(["detect", "photos", "-o", "rows.jsonl", *FAST], cwd=tmp)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == EXIT_OK
    assert code == EXIT_USAGE and f"pid {first.pid}" in err
    assert len(rows(tmp / "rows.jsonl")) == 40 and not (tmp / "rows.jsonl.lock").exists()


@pytest.mark.parametrize("owner", ["exited", "pid-reused"])
def test_lock_of_a_run_that_is_gone_is_taken_over(photos: Path, owner: str) -> None:
    """A lock whose process exited, or whose pid now belongs to a later process, is taken over with a warning."""
    import socket

    tmp = photos.parent
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)" if owner == "pid-reused"
                                else "pass"])
    if owner == "exited":
        process.wait()
    try:
        (tmp / "rows.jsonl.lock").write_text(json.dumps({"pid": process.pid, "host": socket.gethostname(),
                                                         "started": "earlier", "ticks": "1"}))
        code, _, err = run(["detect", "photos", "-o", "rows.jsonl", *FAST], cwd=tmp)
    finally:
        process.kill()
        process.wait()
    assert code == EXIT_OK and "taking over" in err and len(rows(tmp / "rows.jsonl")) == 2
    assert not (tmp / "rows.jsonl.lock").exists()


# --- bad items are rows, the run goes on ---


def test_long_file_name_is_processed(photos: Path) -> None:
    """240 characters: the temporary names no longer grow from it, so the photo is processed like any other."""
    tmp = photos.parent
    shutil.copy(photos / "x.jpg", photos / ("a" * 236 + ".jpg"))
    code, _, err = run(["detect", "photos", "-o", "rows.jsonl", "--draw", "out", *FAST], cwd=tmp)
    assert code == EXIT_OK, err
    assert len(rows(tmp / "rows.jsonl")) == 3 and (tmp / "out" / ("a" * 236 + ".jpg")).is_file()


def test_name_too_long_for_its_crop_is_an_error_row(photos: Path) -> None:
    tmp = photos.parent
    long_name = "a" * 246 + ".jpg"  # its crop a..a_jpg_face0.jpg would have 260 characters
    shutil.copy(photos / "x.jpg", photos / long_name)
    code, _, err = run(["detect", "photos", "-o", "rows.jsonl", "--save-crops", "crops", *FAST], cwd=tmp)
    found = {Path(r["path"]).name: r for r in rows(tmp / "rows.jsonl")}
    assert code == EXIT_FAILED and len(found) == 3
    assert "too long" in found[long_name]["error"]
    assert found["x.jpg"]["error"] is None and found["couple.jpg"]["error"] is None
    assert not (tmp / "rows.jsonl.partial").exists()


def test_file_name_that_is_not_utf8_is_an_error_row(photos: Path) -> None:
    tmp = photos.parent
    odd = os.fsdecode(bytes(photos) + b"/caf\xe9.jpg")
    shutil.copy(photos / "x.jpg", odd)
    code, _, _ = run(["detect", "photos", "-o", "rows.jsonl", "--draw", "out", *FAST], cwd=tmp)
    found = rows(tmp / "rows.jsonl")
    bad = [r for r in found if r["error"]]
    assert code == EXIT_FAILED and len(found) == 3 and len(bad) == 1
    assert bad[0]["path"].endswith("caf\\xe9.jpg") and "not valid UTF-8" in bad[0]["error"]


def test_image_over_the_pixel_limit_is_an_error_row(photos: Path) -> None:
    import cv2

    tmp = photos.parent
    cv2.imwrite(str(photos / "small.jpg"), cv2.resize(cv2.imread(str(photos / "x.jpg")), (300, 400)))
    code, _, _ = run(["detect", "photos", "-o", "rows.jsonl", "--max-pixels", "200000", *FAST], cwd=tmp)
    found = {Path(r["path"]).name: r for r in rows(tmp / "rows.jsonl")}
    assert code == EXIT_FAILED and len(found) == 3
    assert "over the decoding limit" in found["x.jpg"]["error"] and "over the decoding limit" in found[
        "couple.jpg"]["error"]
    assert found["small.jpg"]["error"] is None and found["small.jpg"]["width"] == 300


# --- numbers checked up front ---


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "200.5", "1e9", "lots"])
def test_expand_percentage_out_of_range_is_a_usage_error(photos: Path, value: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["detect", str(photos), f"--expand-percentage={value}", *FAST])
    assert stopped.value.code == EXIT_USAGE and "from 0 to 200" in capsys.readouterr().err


def test_largest_expand_percentage_is_accepted(photos: Path) -> None:
    code, out, _ = run(["detect", photos / "x.jpg", "--expand-percentage", "200", *FAST])
    assert code == EXIT_OK and json.loads(out)["faces"]


@pytest.mark.parametrize("verb", ["extract_faces", "represent"])
@pytest.mark.parametrize("options", [{"max_faces": 1.5}, {"max_faces": "3"}, {"max_faces": True},
                                     {"expand_percentage": float("nan")}, {"expand_percentage": "5"}])
def test_api_numbers_are_checked_before_any_image_is_read(verb: str, options: Dict[str, Any],
                                                          tmp_path: Path) -> None:
    (name, value), = options.items()
    with pytest.raises(ArgumentError, match=f"{name} must be .*got {value!r}".replace("(", r"\(").replace(
            ")", r"\)")):
        getattr(deepbatch, verb)(str(tmp_path / "no_such_image.jpg"), max_faces=options.get("max_faces"),
                                 expand_percentage=options.get("expand_percentage", 0))


def test_a_row_with_nan_is_written_as_an_error_row() -> None:
    line = json_line({"path": "x.jpg", "frame": None, "timestamp": None, "width": 3, "height": 3,
                      "faces": [{"box": [float("nan"), 0, 1, 1]}], "error": None})
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a JSON row")

    row = json.loads(line, parse_constant=refuse)
    assert row["faces"] is None and "not finite" in row["error"] and row["path"] == "x.jpg"


# --- Ray: the same plan, and a stop exits 130 ---


@pytest.mark.heavy
def test_ray_engine_obeys_the_options_the_local_engine_obeys(photos: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("ray")
    tmp = photos.parent
    options = ["--expand-percentage", "40", "--max-faces", "1", "--device", "cpu", *FAST]
    assert run(["detect", "photos", "-o", "local.jsonl", *options], cwd=tmp)[0] == EXIT_OK
    code, _, err = run(["detect", "photos", "--engine", "ray", "-o", "ray.parquet", *options], cwd=tmp)
    assert code == EXIT_OK, err
    local = {Path(r["path"]).name: r["faces"] for r in rows(tmp / "local.jsonl")}
    table = pq.read_table(str(tmp / "ray.parquet")).to_pylist()
    remote = {Path(r["path"]).name: r["faces"] for r in table}
    assert local.keys() == remote.keys() and all(len(f) == 1 for f in local.values())
    for name, faces in local.items():
        np.testing.assert_allclose(faces[0]["box"], remote[name][0]["box"], atol=1)
    assert (tmp / "ray.parquet" / "_deepbatch_dataset").is_file() and not (tmp / "ray.parquet.lock").exists()


@pytest.mark.heavy
def test_ray_engine_stopped_by_sigterm_exits_130(photos: Path) -> None:
    pytest.importorskip("ray")
    tmp = photos.parent
    many = tmp / "many"
    many.mkdir()
    for k in range(1000):  # far more than one run gets through before it is stopped
        shutil.copy(photos / "x.jpg", many / f"p{k:04d}.jpg")
    log = tmp / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "deepbatch", "detect", "many", "--engine", "ray", "-o",
                                    "out.parquet", "--batch-size", "1", *FAST], cwd=tmp, stderr=stderr,
                                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 240
    while not (tmp / ".out.parquet.partial").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    time.sleep(2)
    assert process.poll() is None, "the run ended before it was stopped"
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)
    err = log.read_text()
    assert code == EXIT_INTERRUPTED, err[-3000:]
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert not (tmp / "out.parquet").exists() and not (tmp / "out.parquet.lock").exists()


# --- one plan for both engines ---


@pytest.mark.parametrize("command, extra", [("detect", []), ("represent", ["--normalization", "ArcFace"])])
def test_both_engines_get_the_same_plan(photos: Path, command: str, extra: List[str]) -> None:
    """Every model option, face rule and limit reaches the Ray engine exactly as the local one: `--expand-percentage`
    and the recognizer's `--device` included."""
    from deepbatch.cli import build_parser
    from deepbatch.plan import build_plan

    common = [command, str(photos), "--expand-percentage", "35", "--max-faces", "2", "--device", "cpu", "--conf",
              "0.4", "--input-size", "320", "--no-align", "--enforce-detection", "--max-pixels", "5000000",
              "--batch-size", "3", *extra]
    parser = build_parser()
    local = build_plan(parser.parse_args([*common, "-o", str(photos.parent / "rows.parquet")]))
    remote = build_plan(parser.parse_args([*common, "--engine", "ray", "-o", str(photos.parent / "rows.parquet")]))
    assert (local.models, local.rules, local.limits, local.batch_size, local.sources) == (
        remote.models, remote.rules, remote.limits, remote.batch_size, remote.sources)
    assert local.rules.expand_percentage == 35 and local.rules.max_faces == 2 and not local.rules.align
    assert local.models.detector_kwargs == {"providers": "cpu", "score_threshold": 0.4, "input_size": 320}
    if command == "represent":
        assert local.models.recognizer_kwargs == {"providers": "cpu"} and local.models.normalization == "ArcFace"


def test_plan_is_immutable(photos: Path) -> None:
    import dataclasses

    from deepbatch.cli import build_parser
    from deepbatch.plan import build_plan

    plan = build_plan(build_parser().parse_args(["detect", str(photos)]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.engine = "ray"  # type: ignore[misc]
