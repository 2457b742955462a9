"""Property: whatever tree of photos, folders and links, and whatever overlapping choice of inputs and outputs, a
run changes no input file and writes only where it was aimed.

Hypothesis builds each tree from real photos (scaled down so that a run takes about a second), plants links from a
table of the links an attacker would plant (an output that is a link to the inputs, a link inside an output folder,
a planted ``.partial``, an input that links outside its folder), picks inputs given on the command line or on
standard input and outputs that may overlap them, then runs the real command line (SCRFD-500M, 320-pixel canvas).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from deepbatch.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

PHOTOS = ("photos/a.jpg", "photos/b.jpg", "photos/sub/c.jpg", "photos/sub/deep/d.jpg")
LINKS = {  # name -> target, as an attacker (or an unlucky user) would leave them
    "out": "photos",
    "out/photos": "../photos",
    "out/sub": "../photos/sub",
    "crops": "photos/sub",
    "rows.jsonl": "photos/a.jpg",
    "rows.jsonl.partial": "victim.txt",
    "rows.parquet.partial": "victim.txt",
    "photos/outside.jpg": "../victim.jpg",
    "x.parquet": "photos",
    "y.parquet": "elsewhere",
}
INPUTS = ("photos", "photos/a.jpg", "photos/sub", "photos/sub/c.jpg", "ABS/photos", "photos/outside.jpg")
ROWS = (None, "rows.jsonl", "rows.parquet", "out/rows.jsonl", "photos/rows.jsonl", "photos/a.jpg")
FOLDERS = (None, "out", "crops", "same", "photos", "photos/sub", "out/photos", "out/sub", ".")


@pytest.fixture(scope="module")
def small_photos(dataset_dir: Path, weights_dir: Path) -> Dict[str, bytes]:
    """JPEG bytes of real photos scaled to 320 pixels wide, by their place in the tree."""
    sources = ("img1.jpg", "couple.jpg", "img12.jpg", "img25.jpg")
    out = {}
    for name, source in zip(PHOTOS, sources):
        image = cv2.imread(str(dataset_dir / source))
        scale = 320 / image.shape[1]
        ok, data = cv2.imencode(".jpg", cv2.resize(image, None, fx=scale, fy=scale))
        out[name] = data.tobytes()
    return out


@contextlib.contextmanager
def tree(photos: Dict[str, bytes], links: Sequence[str]) -> Iterator[Path]:
    """A fresh folder with the photos, ``victim.txt``, ``victim.jpg``, ``elsewhere/keep.txt`` and ``links``."""
    with tempfile.TemporaryDirectory(prefix="deepbatch-tree-") as name:
        root = Path(name)
        for relative, data in photos.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        (root / "victim.txt").write_text("precious")
        (root / "victim.jpg").write_bytes(photos["photos/a.jpg"])
        (root / "elsewhere").mkdir()
        (root / "elsewhere" / "keep.txt").write_text("keep")
        for link in links:
            path = root / link
            if os.path.lexists(path):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(LINKS[link], path)
        yield root


def files(root: Path) -> Dict[str, str]:
    """Every regular file under ``root`` (links not followed) by its path: its SHA-256."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if not path.is_symlink():
                found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def aimed(root: Path, rows: Optional[str], folders: Sequence[Optional[str]]) -> List[Path]:
    """The real places a run may write: the rows file, its companions, and the output folders."""
    places = []
    if rows is not None:
        target = Path(os.path.realpath(root / rows).rstrip("/"))
        places += [target, target.with_suffix(".index.jsonl")]
        places.append(Path(os.path.realpath((root / rows).parent)) / (Path(rows).name + ".partial"))
    places += [Path(os.path.realpath(root / f)) for f in folders if f is not None]
    return places


def run(root: Path, args: Sequence[str], stdin: str) -> Tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    previous, saved = os.getcwd(), sys.stdin
    try:
        os.chdir(root)
        sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stopped:  # a usage error found by the parser
                code = int(stopped.code or 0)
    finally:
        os.chdir(previous)
        sys.stdin = saved
    return code, err.getvalue()


def check_run(root: Path, engine: str, inputs: Sequence[str], on_stdin: bool, rows: Optional[str],
              draw: Optional[str], crops: Optional[str]) -> int:
    """Run once and check the property; returns the exit code."""
    before = files(root)
    protected = {name: digest for name, digest in before.items() if name.startswith("photos/") or name in (
        "victim.txt", "victim.jpg", "elsewhere/keep.txt")}
    given_inputs = [str(root / i[4:]) if i.startswith("ABS/") else i for i in inputs]
    args = ["detect", *(["-"] if on_stdin else given_inputs), "--input-size", "320", "--no-progress", "-q",
            "--engine", engine]
    for option, value in (("--output", rows), ("--draw", draw), ("--save-crops", crops)):
        if value is not None:
            args += [option, value]
    code, err = run(root, args, "".join(f"{i}\n" for i in given_inputs) if on_stdin else "")
    assert code in (EXIT_OK, EXIT_FAILED, EXIT_USAGE), err
    after = files(root)
    for name, digest in protected.items():
        assert after.get(name) == digest, f"input {name} changed or vanished: {args} {err}"
    places = aimed(root, rows, (draw, crops) if engine == "local" else ())
    for name, digest in after.items():
        if before.get(name) == digest:
            continue
        real = Path(os.path.realpath(root / name))
        assert any(real == place or place in real.parents for place in places), (
            f"{name} written outside {places}: {args} {err}")
    assert not [name for name in after if name.endswith(".lock")], "a lock file was left"
    event(f"exit code {code}")
    return code


link_choices = st.lists(st.sampled_from(sorted(LINKS)), max_size=4, unique=True)
input_choices = st.lists(st.sampled_from(INPUTS), min_size=1, max_size=3, unique=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(links=link_choices, inputs=input_choices, on_stdin=st.booleans(), rows=st.sampled_from(ROWS),
       draw=st.sampled_from(FOLDERS), crops=st.sampled_from(FOLDERS))
@example(links=["out/photos"], inputs=["photos/a.jpg"], on_stdin=False, rows="rows.jsonl", draw="out", crops="out")
@example(links=["rows.jsonl.partial"], inputs=["ABS/photos"], on_stdin=True, rows="rows.jsonl", draw="same",
         crops="same")
@example(links=["photos/outside.jpg"], inputs=["photos"], on_stdin=True, rows="out/rows.jsonl", draw="photos",
         crops=None)
def test_local_runs_change_no_input_and_write_only_where_aimed(small_photos: Dict[str, bytes], links: List[str],
                                                               inputs: List[str], on_stdin: bool,
                                                               rows: Optional[str], draw: Optional[str],
                                                               crops: Optional[str]) -> None:
    with tree(small_photos, links) as root:
        check_run(root, "local", inputs, on_stdin, rows, draw, crops)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray for the Ray examples (the command line reuses a running Ray instead of starting its own)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


@pytest.mark.heavy
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(links=link_choices, inputs=input_choices, on_stdin=st.booleans(),
       rows=st.sampled_from(("x.parquet", "y.parquet", "out.parquet", "photos.parquet", "photos/sub/z.parquet")),
       draw=st.sampled_from((None, None, "out")))
def test_ray_runs_change_no_input_and_write_only_where_aimed(small_photos: Dict[str, bytes], ray_session: None,
                                                             links: List[str], inputs: List[str], on_stdin: bool,
                                                             rows: str, draw: Optional[str]) -> None:
    with tree(small_photos, links) as root:
        if rows == "photos.parquet":
            os.symlink("photos", root / rows)
        check_run(root, "ray", inputs, on_stdin, rows, draw, None)
