"""The ``deepbatch`` command line, run in-process through ``main`` (and twice through the installed script)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence

import cv2
import numpy as np
import pytest
from models import batch_mixing

import deepbatch
from deepbatch import optional
from deepbatch._version import __version__
from deepbatch.cli import EXIT_FAILED, EXIT_OK, main
from deepbatch.detectors import DETECTORS
from deepbatch.errors import ImageNotFoundError
from deepbatch.io.video import VideoError, read_frames
from deepbatch.rows import IMAGE_FIELDS
from deepbatch.structures import Faces
from deepbatch.visualize import BOX_COLOR, LANDMARK_COLORS, draw_faces
from deepbatch.weights import BUFFALO_SC_URL

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["detect", "represent", "batchify", "check-batch", "models", "bench"]

# Photos for the folder run: group shots, portraits, large and small files; two in sub-folders (recursion).
PHOTOS = {
    "couple.jpg": "couple.jpg",
    "group/selfie.jpg": "selfie-many-people.jpg",
    "group/deeper/img12.jpg": "img12.jpg",
    "img25.jpg": "img25.jpg",
    "img62.jpg": "img62.jpg",
    "img6.jpg": "img6.jpg",
}
BROKEN = "broken.jpg"
VIDEO_PHOTOS = ["couple.jpg", "img1.jpg", "selfie-many-people.jpg"]
VIDEO_FPS = 5.0
FRAMES_PER_PHOTO = 2


class Run(NamedTuple):
    code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str]) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Path:
    """A folder tree of links to shared photos, one undecodable .jpg and a text file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    for name, source in PHOTOS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(dataset_dir / source)
    (folder / BROKEN).write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def folder_run(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    out = tmp_path_factory.mktemp("detect")
    result = run_cli(["detect", photo_folder, "--output", out / "faces.jsonl", "--draw", out / "drawn",
                      "--save-crops", out / "crops", "--batch-size", 4, "--no-progress"])
    return {"run": result, "records": read_jsonl(out / "faces.jsonl"), "out": out}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Path:
    """An MJPG .avi of shared photos, each shown for FRAMES_PER_PHOTO frames at VIDEO_FPS."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (320, 240))
    for name in VIDEO_PHOTOS:
        frame = cv2.resize(cv2.imread(str(dataset_dir / name)), (320, 240), interpolation=cv2.INTER_AREA)
        for _ in range(FRAMES_PER_PHOTO):
            writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def mixing_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return batch_mixing(tmp_path_factory.mktemp("graphs") / "mixing.onnx")


# --- help, version, models ---


def test_version_prints_package_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"deepbatch {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: deepbatch {command}" in capsys.readouterr().out


def test_models_lists_every_registered_detector() -> None:
    result = run_cli(["models"])
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(DETECTORS.names(aliases=False)) <= listed


def test_models_says_where_weights_were_found(weights_dir: Path) -> None:
    rows = run_cli(["models", "--wide"]).stdout.splitlines()
    line = next(row for row in rows if row.strip().startswith("scrfd_500m"))
    assert str(weights_dir / "scrfd_500m_kps.onnx") in line


def test_models_batching_reads_backends_on_other_frameworks_from_their_class(weights_dir: Path) -> None:
    if importlib.util.find_spec("mtcnn") is None:  # found, not imported: importing it starts TensorFlow
        pytest.skip("the mtcnn backend's row needs the mtcnn package: deepbatch[mtcnn]")
    script = ("import sys; from deepbatch.cli import main; main(['models', '--batching', '--wide']); "
              "print('frameworks loaded:', sorted({'tensorflow', 'torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(deepbatch.__file__).parent.parent)
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert "frameworks loaded: []" in done.stdout
    assert " one call per image size in a chunk " in rows["mtcnn"]
    assert " loop (one image per call by design) " in rows["opencv"]
    assert " repaired (" in rows["scrfd_500m"]


def models_row(name: str) -> str:
    return next(row for row in run_cli(["models", "--wide"]).stdout.splitlines() if row.strip().startswith(name))


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))


def test_models_reports_a_missing_package_with_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(optional.EXTRA_MODULES, "dlib", ("deepbatch_absent_module",))
    assert f"missing package deepbatch_absent_module: pip install -e '{ROOT}[dlib]'" in models_row("dlib")


@pytest.mark.parametrize("name, says", [
    ("mobilefacenet ", "no download source: you must supply 'mobilefacenet_dyn.onnx' yourself (export a MobileFaceNet"),
    ("arcface_mbf", "not downloaded yet (w600k_mbf.onnx; fetched on first use from " + BUFFALO_SC_URL),
])
def test_models_says_how_missing_weights_are_obtained(name: str, says: str, no_weights: None) -> None:
    assert says in models_row(name)


def test_unknown_backend_is_a_usage_error(dataset_dir: Path) -> None:
    result = run_cli(["detect", dataset_dir / "img12.jpg", "--backend", "no_such_detector", "--no-progress"])
    assert result.code == 2
    assert "valid names are" in result.stderr and "scrfd_500m" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["models", "--colour"])
    assert exited.value.code == 2


# --- detect over a folder ---


def test_detect_finds_images_recursively_and_ignores_other_files(folder_run: dict, photo_folder: Path) -> None:
    paths = sorted(Path(r["path"]).relative_to(photo_folder).as_posix() for r in folder_run["records"])
    assert paths == sorted([*PHOTOS, BROKEN])


def test_detect_face_counts_match_python_api(folder_run: dict) -> None:
    records = [r for r in folder_run["records"] if r["error"] is None]
    api = deepbatch.extract_faces([r["path"] for r in records], on_error="skip")
    assert [len(r["faces"]) for r in records] == [len(faces) for faces in api]


def test_detect_rows_match_python_api_rows(folder_run: dict) -> None:
    record = next(r for r in folder_run["records"] if r["path"].endswith("selfie.jpg"))
    api = next(deepbatch.iter_extract_faces([record["path"]]))
    written = {**record, "faces": [{k: v for k, v in face.items() if k != "crop"} for face in record["faces"]]}
    assert json.loads(json.dumps(api.row())) == {key: written[key] for key in IMAGE_FIELDS}


def test_detect_reports_unreadable_file_and_goes_on(folder_run: dict) -> None:
    broken = [r for r in folder_run["records"] if r["error"] is not None]
    assert [Path(r["path"]).name for r in broken] == [BROKEN]
    assert BROKEN in folder_run["run"].stderr
    assert len(folder_run["records"]) == len(PHOTOS) + 1


def test_an_unreadable_file_is_reported_once_with_its_problem(folder_run: dict) -> None:
    lines = [line for line in folder_run["run"].stderr.splitlines() if BROKEN in line]
    assert len(lines) == 1 and "ImageDecodeError: " in lines[0]


def test_detect_exit_code_says_some_input_failed(folder_run: dict) -> None:
    assert folder_run["run"].code == 1


def test_detect_prints_summary(folder_run: dict) -> None:
    faces = sum(len(r["faces"]) for r in folder_run["records"])
    assert f"{len(PHOTOS) + 1} image(s) and 0 video frame(s): {faces} face(s)" in folder_run["run"].stderr
    assert "1 failed" in folder_run["run"].stderr


def test_draw_writes_annotated_copy_of_every_readable_image(folder_run: dict, photo_folder: Path) -> None:
    drawn = folder_run["out"] / "drawn"
    for name in PHOTOS:
        original, annotated = cv2.imread(str(photo_folder / name)), cv2.imread(str(drawn / name))
        assert annotated.shape == original.shape
        assert np.any(annotated != original)
    assert not (drawn / BROKEN).exists()


def test_save_crops_writes_one_file_per_face(folder_run: dict) -> None:
    faces = sum(len(r["faces"]) for r in folder_run["records"])
    assert len(list((folder_run["out"] / "crops").rglob("*_face*.jpg"))) == faces


def test_detect_without_output_writes_jsonl_to_stdout(dataset_dir: Path) -> None:
    result = run_cli(["detect", dataset_dir / "couple.jpg", "--no-progress"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.code == 0
    assert [len(r["faces"]) for r in records] == [2]


# --- detect over a video ---


def test_read_frames_gives_index_and_timestamp(video: Path) -> None:
    frames = list(read_frames(video, step=2))
    assert [f.index for f in frames] == [0, 2, 4]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 2 / VIDEO_FPS, 4 / VIDEO_FPS])
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8


def test_read_frames_of_non_video_raises_video_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="fake.mp4"):
        list(read_frames(fake))


def test_read_frames_of_missing_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="missing.avi"):
        list(read_frames(tmp_path / "missing.avi"))


def test_detect_video_writes_one_line_per_frame(video: Path, tmp_path: Path) -> None:
    result = run_cli(["detect", video, "--output", tmp_path / "video.jsonl", "--no-progress", "--batch-size", 4])
    records = read_jsonl(tmp_path / "video.jsonl")
    assert result.code == 0
    assert [(r["frame"], r["timestamp"]) for r in records] == [
        (i, pytest.approx(i / VIDEO_FPS)) for i in range(len(VIDEO_PHOTOS) * FRAMES_PER_PHOTO)
    ]


def test_detect_video_face_counts_match_python_api(video: Path, tmp_path: Path) -> None:
    run_cli(["detect", video, "--output", tmp_path / "video.jsonl", "--no-progress", "--frame-step", 2])
    records = read_jsonl(tmp_path / "video.jsonl")
    api = deepbatch.extract_faces([f.image for f in read_frames(video, step=2)], on_error="skip")
    assert [r["frame"] for r in records] == [0, 2, 4]
    assert [len(r["faces"]) for r in records] == [len(faces) for faces in api]


def test_unreadable_video_is_reported_and_skipped(tmp_path: Path, dataset_dir: Path) -> None:
    fake = tmp_path / "fake.avi"
    fake.write_bytes(b"not a video at all")
    result = run_cli(["detect", fake, dataset_dir / "img12.jpg", "--output", tmp_path / "out.jsonl", "--no-progress"])
    records = read_jsonl(tmp_path / "out.jsonl")
    assert result.code == 1
    assert [r["error"] is not None for r in records] == [True, False]


# --- represent ---


def test_represent_npy_rows_are_the_python_api_embeddings(dataset_dir: Path, tmp_path: Path) -> None:
    paths = [str(dataset_dir / "couple.jpg"), str(dataset_dir / "img12.jpg")]
    result = run_cli(["represent", *paths, "--output", tmp_path / "emb.npy", "--no-progress"])
    rows = np.load(tmp_path / "emb.npy")
    index = read_jsonl(tmp_path / "emb.index.jsonl")
    api = deepbatch.represent(paths)
    expected = np.array([face["embedding"] for faces in api for face in faces], np.float32)
    assert result.code == 0
    expected_rows = [(path, k) for path, faces in zip(paths, api) for k in range(len(faces))]
    assert [(r["path"], r["face"]) for r in index] == expected_rows
    np.testing.assert_array_equal(rows, expected)


def test_represent_jsonl_has_one_line_per_image(dataset_dir: Path, tmp_path: Path) -> None:
    run_cli(["represent", dataset_dir / "couple.jpg", "--output", tmp_path / "emb.jsonl", "--no-progress"])
    records = read_jsonl(tmp_path / "emb.jsonl")
    assert len(records) == 1
    assert [len(face["embedding"]) for face in records[0]["faces"]] == [512, 512]


@pytest.fixture(scope="module")
def faceless_set(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> List[Path]:
    """Two photos with faces and one gray image without a face."""
    blank = tmp_path_factory.mktemp("faceless") / "blank.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    return [dataset_dir / "couple.jpg", blank, dataset_dir / "img12.jpg"]


# Without --enforce-detection a faceless image is a row without faces; with it, a failed image (and exit code 1).
FACELESS = [
    ([], "1 without a face, 0 failed", EXIT_OK),
    (["--enforce-detection"], "0 without a face, 1 failed", EXIT_FAILED),
]


@pytest.mark.parametrize("command", ["detect", "represent"])
@pytest.mark.parametrize("flags, counts, code", FACELESS)
def test_a_faceless_image_is_counted_one_way(command: str, flags: List[str], counts: str, code: int,
                                             faceless_set: List[Path], tmp_path: Path) -> None:
    result = run_cli([command, *faceless_set, "--output", tmp_path / "out.jsonl", "--no-progress", *flags])
    assert (result.code, counts in result.stderr, "skipped" in result.stderr) == (code, True, False)


@pytest.mark.parametrize("command", ["detect", "represent"])
def test_an_enforced_faceless_image_is_reported_once(command: str, faceless_set: List[Path], tmp_path: Path) -> None:
    result = run_cli([command, *faceless_set, "--output", tmp_path / "out.jsonl", "--no-progress",
                      "--enforce-detection"])
    lines = [line for line in result.stderr.splitlines() if "blank.jpg" in line]
    assert len(lines) == 1 and "FaceNotDetectedError: " in lines[0]


# --- batchify and check-batch ---


def test_check_batch_command_fails_on_graph_that_mixes_frames(mixing_graph: Path) -> None:
    result = run_cli(["check-batch", mixing_graph, "--batch-sizes", "2,7"])
    assert result.code == 1
    assert "FAIL" in result.stdout


def test_batchify_command_writes_graph_that_check_batch_passes(weights_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "mobilefacenet.onnx"
    written = run_cli(["batchify", weights_dir / "mobilefacenet_b1.onnx", target, "--batch-sizes", "2"])
    checked = run_cli(["check-batch", target, "--batch-sizes", "2,7,16,32"])
    assert (written.code, checked.code) == (0, 0)
    assert "PASS" in written.stdout and "PASS" in checked.stdout


def test_batchify_command_refuses_graph_that_mixes_frames(tmp_path: Path) -> None:
    source = batch_mixing(tmp_path / "mixing_b1.onnx", batch=1)
    result = run_cli(["batchify", source, tmp_path / "out.onnx", "--batch-sizes", "2"])
    assert result.code == 1
    assert "refused" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_check_batch_on_declared_batch_one_suggests_batchify(weights_dir: Path) -> None:
    result = run_cli(["check-batch", weights_dir / "mobilefacenet_b1.onnx", "--batch-sizes", "2"])
    assert result.code == 1
    assert "deepbatch batchify" in result.stdout


# --- the installed console script ---


@pytest.fixture(scope="module")
def console_script() -> str:
    path = shutil.which("deepbatch")
    if path is None:
        pytest.skip("the deepbatch console script is not installed: run `make install`")
    return path


def test_console_script_prints_version(console_script: str) -> None:
    done = subprocess.run([console_script, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"deepbatch {__version__}")


def test_console_script_exits_one_when_check_fails(console_script: str, mixing_graph: Path) -> None:
    done = subprocess.run([console_script, "check-batch", str(mixing_graph), "--batch-sizes", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "FAIL" in done.stdout


# --- drawing ---


def test_draw_faces_marks_box_and_landmarks_only() -> None:
    image = np.full((200, 300, 3), 128, np.uint8)
    landmarks = np.array([[[160, 80], [120, 80], [140, 100], [155, 120], [125, 120]]], np.float32)
    faces = Faces(np.array([[100, 50, 180, 150]], np.float32), np.array([0.9], np.float32), landmarks)
    drawn = draw_faces(image, faces)
    assert tuple(drawn[100, 100]) == BOX_COLOR  # on the box's left edge
    assert tuple(drawn[80, 160]) == LANDMARK_COLORS["left_eye"]  # the person's left eye: right of the picture
    assert tuple(drawn[80, 120]) == LANDMARK_COLORS["right_eye"]
    assert tuple(drawn[190, 290]) == (128, 128, 128)  # far from the face
    assert np.all(image == 128)  # the input is left untouched
