"""The command line never destroys inputs or earlier results, and never pairs results with the wrong images.

Fault injection is real: runs are stopped by signals in a subprocess at a moment when rows have been written, and a
full disk is a small tmpfs mounted for the test (skipped where mounting is not permitted).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Sequence

import cv2
import numpy as np
import pytest
from processes import wait_for_rows

from deepbatch.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, main
from deepbatch.io.outputs import LineFile

ROOT = Path(__file__).resolve().parent.parent


def run(args: Sequence[object], cwd: Path | None = None) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(previous)
    return code, out.getvalue(), err.getvalue()


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path: Path, dataset_dir: Path) -> Path:
    """A folder of copies of real photos, one in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ("couple.jpg", "img1.jpg"):
        shutil.copy(dataset_dir / name, folder / name)
    shutil.copy(dataset_dir / "img12.jpg", folder / "sub" / "img12.jpg")
    return folder


# --- outputs that overlap the inputs are refused ---


@pytest.mark.parametrize("option, where", [
    ("--draw", "photos"),
    ("--draw", "photos/sub"),
    ("--save-crops", "photos"),
    ("--save-crops", "."),
])
def test_output_folder_overlapping_the_inputs_is_refused(photos: Path, option: str, where: str) -> None:
    before = snapshot(photos)
    code, _, err = run(["detect", "photos", option, where, "--no-progress"], cwd=photos.parent)
    assert code == EXIT_USAGE and "overlaps the input" in err
    assert snapshot(photos) == before


def test_input_file_inside_the_draw_folder_is_refused(photos: Path) -> None:
    before = snapshot(photos)
    code, _, err = run(["detect", photos / "img1.jpg", "--draw", photos, "--no-progress"])
    assert code == EXIT_USAGE and "overlaps the input" in err
    assert snapshot(photos) == before


def test_output_file_that_is_an_input_is_refused(photos: Path) -> None:
    shutil.copy(photos / "img1.jpg", photos / "img1.jsonl")  # an image under a name --output accepts
    before = snapshot(photos)
    code, _, err = run(["represent", photos / "img1.jsonl", "--output", photos / "img1.jsonl", "--no-progress"])
    assert code == EXIT_USAGE and "is one of the inputs" in err
    assert snapshot(photos) == before


# --- names: relative paths kept, nothing written twice, every row names its files ---


@pytest.fixture
def same_names(tmp_path: Path, dataset_dir: Path) -> Path:
    """a/photo.jpg and b/photo.jpg (different photos), and x.jpg, x.png, x.pgm (the same photo in three formats)."""
    for folder, source in (("a", "couple.jpg"), ("b", "img1.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(dataset_dir / source, tmp_path / folder / "photo.jpg")
    image = cv2.imread(str(dataset_dir / "img1.jpg"))
    (tmp_path / "x").mkdir()
    for suffix in (".jpg", ".png", ".pgm"):
        cv2.imwrite(str(tmp_path / "x" / f"x{suffix}"), image if suffix != ".pgm" else image[:, :, 1])
    return tmp_path


@pytest.fixture
def named_run(same_names: Path) -> dict:
    code, _, err = run(["detect", "a/photo.jpg", "b/photo.jpg", "x", "--draw", "out/drawn", "--save-crops",
                        "out/crops", "--output", "out/faces.jsonl", "--no-progress"], cwd=same_names)
    assert code == 0, err
    return {"root": same_names, "records": read_jsonl(same_names / "out" / "faces.jsonl")}


def test_files_given_by_relative_path_keep_it_under_draw(named_run: dict) -> None:
    drawn = [r["drawn"] for r in named_run["records"]]
    assert drawn[:2] == ["out/drawn/a/photo.jpg", "out/drawn/b/photo.jpg"]


def test_no_two_rows_name_the_same_file(named_run: dict) -> None:
    names = [r["drawn"] for r in named_run["records"]]
    names += [face["crop"] for r in named_run["records"] for face in r["faces"]]
    assert len(names) == len(set(names))


def test_crops_of_one_name_in_several_formats_do_not_collide(named_run: dict) -> None:
    crops = sorted(Path(r["faces"][0]["crop"]).name for r in named_run["records"][2:])
    assert crops == ["x_jpg_face0.jpg", "x_pgm_face0.jpg", "x_png_face0.jpg"]


def test_every_named_file_exists_and_holds_that_face(named_run: dict) -> None:
    root = named_run["root"]
    for record in named_run["records"]:
        assert (root / record["drawn"]).is_file()
        for face in record["faces"]:
            crop = cv2.imread(str(root / face["crop"]))
            assert crop is not None and crop.shape[0] > 0.5 * face["box"][3]


def test_same_file_name_from_absolute_paths_gets_a_new_name(same_names: Path, tmp_path: Path) -> None:
    out = tmp_path / "abs-out"
    code, _, err = run(["detect", same_names / "a" / "photo.jpg", same_names / "b" / "photo.jpg", "--draw", out,
                        "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "photo_2.jpg"]
    assert "already written by this run" in err


# --- stopped runs: the previous result stays, the partial one is whole rows and is reported next time ---


def _spawn(args: Sequence[object], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "deepbatch.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def many_photos(tmp_path: Path, dataset_dir: Path) -> Path:
    """Enough photos (links to real ones) that a run is still going when it is stopped."""
    folder = tmp_path / "many"
    folder.mkdir()
    photos = sorted(dataset_dir.glob("*.jpg"))
    for k in range(200):
        (folder / f"p{k:03d}.jpg").symlink_to(photos[k % len(photos)])
    return folder


@pytest.mark.parametrize("stop, code", [
    (signal.SIGTERM, EXIT_INTERRUPTED),
    (signal.SIGHUP, EXIT_INTERRUPTED),
    (signal.SIGINT, EXIT_INTERRUPTED),
    (signal.SIGKILL, -signal.SIGKILL),
])
def test_stopped_detect_keeps_the_previous_jsonl(many_photos: Path, tmp_path: Path, stop: int, code: int) -> None:
    target = tmp_path / "faces.jsonl"
    target.write_text('{"previous": "complete result"}\n')
    process = _spawn(["detect", many_photos, "--output", target, "--batch-size", 1, "--no-progress",
                      "--backend", "yunet"], tmp_path)
    partial = tmp_path / "faces.jsonl.partial"
    wait_for_rows(partial, process)
    process.send_signal(stop)
    assert process.wait(timeout=120) == code
    assert target.read_text() == '{"previous": "complete result"}\n'
    rows = read_jsonl(partial)  # whole rows only
    assert 1 <= len(rows) < 200 and rows[0]["path"].endswith("p000.jpg")


@pytest.mark.parametrize("stopped_after_bytes", [True, False])
def test_stop_during_a_row_keeps_the_rows_that_reached_the_file_whole(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       stopped_after_bytes: bool) -> None:
    rows = LineFile(tmp_path / "faces.jsonl")
    rows.write('{"index": 0}')
    real_write = os.write

    def stopped_write(fd: int, data: bytes) -> int:
        if stopped_after_bytes:
            real_write(fd, data)  # the whole row is on disk, then the stop lands
        else:
            real_write(fd, bytes(data)[:3])  # the stop lands inside the row
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", stopped_write)
    with pytest.raises(KeyboardInterrupt):
        rows.write('{"index": 1}')
    monkeypatch.undo()
    rows.abort()
    kept = [{"index": 0}, {"index": 1}] if stopped_after_bytes else [{"index": 0}]
    assert read_jsonl(tmp_path / "faces.jsonl.partial") == kept and not (tmp_path / "faces.jsonl").exists()


def test_next_run_reports_the_partial_result(photos: Path, tmp_path: Path) -> None:
    target = tmp_path / "faces.jsonl"
    (tmp_path / "faces.jsonl.partial").write_text('{"index": 0}\n')
    code, _, err = run(["detect", photos, "--output", target, "--no-progress"])
    assert code == 0 and "left by an interrupted run" in err
    assert len(read_jsonl(target)) == 3 and not (tmp_path / "faces.jsonl.partial").exists()


def test_stopped_represent_keeps_the_matrix_and_its_index_together(many_photos: Path, tmp_path: Path,
                                                                   photos: Path) -> None:
    matrix = tmp_path / "emb.npy"
    code, _, _ = run(["represent", photos, "--output", matrix, "--no-progress"])
    before = (matrix.read_bytes(), (tmp_path / "emb.index.jsonl").read_bytes())
    process = _spawn(["represent", many_photos, "--output", matrix, "--batch-size", 1, "--no-progress"], tmp_path)
    wait_for_rows(tmp_path / "emb.index.jsonl.partial", process)
    process.send_signal(signal.SIGTERM)
    assert (code, process.wait(timeout=120)) == (0, EXIT_INTERRUPTED)
    assert (matrix.read_bytes(), (tmp_path / "emb.index.jsonl").read_bytes()) == before


def test_matrix_rows_and_index_rows_agree(photos: Path, tmp_path: Path) -> None:
    matrix = tmp_path / "emb.npy"
    code, _, _ = run(["represent", photos, "--output", matrix, "--no-progress"])
    index = read_jsonl(tmp_path / "emb.index.jsonl")
    assert code == 0 and [row["row"] for row in index] == list(range(np.load(matrix).shape[0]))


# --- a full disk ---


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, which a few annotated photos fill."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_a_clear_error_with_whole_rows(small_disk: Path, many_photos: Path) -> None:
    target = small_disk / "faces.jsonl"
    code, _, err = run(["detect", many_photos, "--output", target, "--draw", small_disk / "drawn", "--no-progress",
                        "--backend", "yunet", "--batch-size", 2])
    assert code == EXIT_INTERNAL and "No space left on device" in err
    assert not target.exists()
    read_jsonl(small_disk / "faces.jsonl.partial")  # every line is a whole JSON row
    assert not list((small_disk / "drawn").rglob("*.partial"))


def test_full_disk_while_writing_rows_cuts_back_to_whole_rows(small_disk: Path, many_photos: Path) -> None:
    (small_disk / "filler").write_bytes(b"\0" * ((2 << 20) - 12000))  # two 4 KiB pages left
    target = small_disk / "faces.jsonl"
    code, _, err = run(["detect", many_photos, "--output", target, "--no-progress", "--backend", "yunet",
                        "--batch-size", 2])
    rows = read_jsonl(small_disk / "faces.jsonl.partial")
    assert code == EXIT_INTERNAL and "whole row(s) written before" in err
    assert 1 <= len(rows) < 200
