"""deepbatch.ray on a real local Ray cluster (2 CPUs, no dashboard): parity with the local pipeline, corrupt input,
a worker that dies mid-job, and the command line's Parquet output."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np
import pytest

from deepbatch.detectors import Detector, build_detector
from deepbatch.structures import Faces

ray = pytest.importorskip("ray", reason="deepbatch.ray needs the 'ray' extra: pip install 'deepbatch[ray]'")
pytest.importorskip("ray.data", reason="deepbatch.ray needs Ray Data: pip install 'deepbatch[ray]'")
pq = pytest.importorskip("pyarrow.parquet")

import deepbatch.ray as dray  # noqa: E402  (after the skip: the module itself imports ray lazily)
from deepbatch import cli  # noqa: E402
from deepbatch.optional import install_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray's own settings

# Rows are detected in other batches than locally; each image is letterboxed onto the same fixed canvas, so only
# float noise may differ: the same bound as native batch-versus-single parity.
PARITY_TOLERANCE_PX = 1e-3
SCORE_TOLERANCE = 1e-5
# Embeddings of the same aligned pixels through the same ONNX model, batched differently.
EMBEDDING_TOLERANCE = 1e-4

SUBSET = ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img25.jpg", "img45.jpg"]


@pytest.fixture(scope="module")
def ray_cluster(dataset_dir: Path, weights_dir: Path):  # type: ignore[no-untyped-def]
    """A local Ray with 2 CPUs whose workers import deepbatch and these tests from this checkout."""
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {"PYTHONPATH": path, "DEEPBATCH_WEIGHTS": os.environ["DEEPBATCH_WEIGHTS"],
           "DEEPBATCH_TEST_DATA": str(dataset_dir)}
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": env})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def image_files(dataset_dir: Path) -> List[str]:
    return [str(p) for p in sorted(dataset_dir.glob("*.jpg"))]


@pytest.fixture(scope="module")
def local_faces(image_files: List[str]) -> Dict[str, Faces]:
    """The local pipeline's faces per path, the reference for every Ray result."""
    detector = build_detector("scrfd")
    return dict(zip(image_files, detector.detect_faces([cv2.imread(p) for p in image_files])))


def rows_by_path(ds) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    return {row["path"]: row for row in ds.take_all()}


def assert_row_matches(row: dict, expected: Faces) -> None:
    faces = row["faces"]
    assert len(faces) == len(expected)
    if len(expected):
        np.testing.assert_allclose([f["box"] for f in faces], expected.xywh, atol=PARITY_TOLERANCE_PX, rtol=0)
        np.testing.assert_allclose([f["confidence"] for f in faces], expected.scores, atol=SCORE_TOLERANCE, rtol=0)
        np.testing.assert_allclose([f["landmarks"] for f in faces], expected.landmarks, atol=PARITY_TOLERANCE_PX,
                                   rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# The 64 shared photos through read_binary_files and two workers


@pytest.fixture(scope="module")
def binary_rows(ray_cluster, image_files: List[str]) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    ds = ray_cluster.data.read_binary_files(image_files, include_paths=True)
    return rows_by_path(dray.extract_faces(ds, num_workers=2))


def test_one_output_row_per_input_row(binary_rows, image_files):  # type: ignore[no-untyped-def]
    assert sorted(binary_rows) == sorted(image_files)


def test_face_counts_match_local_pipeline(binary_rows, local_faces):  # type: ignore[no-untyped-def]
    assert {p: len(r["faces"]) for p, r in binary_rows.items()} == {p: len(f) for p, f in local_faces.items()}


def test_boxes_scores_and_landmarks_match_local_pipeline(binary_rows, local_faces):  # type: ignore[no-untyped-def]
    for path, expected in local_faces.items():
        assert_row_matches(binary_rows[path], expected)


def test_good_images_have_an_empty_error(binary_rows):  # type: ignore[no-untyped-def]
    assert {r["error"] for r in binary_rows.values()} == {None}


def test_faces_are_plain_lists_without_pixels(binary_rows, dataset_dir):  # type: ignore[no-untyped-def]
    face = binary_rows[str(dataset_dir / "couple.jpg")]["faces"][0]
    assert set(face) == {"box", "confidence", "landmarks"}
    assert (len(face["box"]), np.shape(face["landmarks"])) == (4, (5, 2))


# ----------------------------------------------------------------------------------------------------------------
# Other input layouts


def test_image_column_is_read_as_rgb(ray_cluster, dataset_dir, local_faces):  # type: ignore[no-untyped-def]
    paths = [str(dataset_dir / name) for name in SUBSET]
    items = [{"path": p, "image": cv2.imread(p)[:, :, ::-1].copy()} for p in paths]
    rows = rows_by_path(dray.extract_faces(ray_cluster.data.from_items(items)))
    for path in paths:
        assert_row_matches(rows[path], local_faces[path])


def test_read_images_rows_match_local_pipeline_on_the_same_pixels(ray_cluster, dataset_dir):  # type: ignore[no-untyped-def]
    from PIL import Image

    paths = [str(dataset_dir / name) for name in SUBSET[:3]]
    ds = ray_cluster.data.read_images(paths, include_paths=True, mode="RGB")
    rows = {Path(p).name: r for p, r in rows_by_path(dray.extract_faces(ds)).items()}
    pixels = [np.asarray(Image.open(p).convert("RGB"))[:, :, ::-1] for p in paths]  # what Ray decoded, as BGR
    for path, expected in zip(paths, build_detector("scrfd").detect_faces(pixels)):
        assert_row_matches(rows[Path(path).name], expected)


@pytest.fixture(scope="module")
def path_rows(ray_cluster, dataset_dir, tmp_path_factory) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    missing = str(tmp_path_factory.mktemp("gone") / "missing.jpg")
    paths = [str(dataset_dir / name) for name in SUBSET[:3]] + [missing]
    items = [{"path": p, "photo_id": k} for k, p in enumerate(paths)]
    return rows_by_path(dray.extract_faces(ray_cluster.data.from_items(items), keep_columns=["photo_id"]))


def test_path_column_is_loaded_on_the_workers(path_rows, local_faces):  # type: ignore[no-untyped-def]
    for path, row in path_rows.items():
        if path in local_faces:
            assert_row_matches(row, local_faces[path])


def test_missing_path_gives_an_error_row(path_rows):  # type: ignore[no-untyped-def]
    failed = {Path(p).name: r["error"] for p, r in path_rows.items() if r["error"]}
    assert list(failed) == ["missing.jpg"] and failed["missing.jpg"].startswith("ImageNotFoundError")


def test_keep_columns_are_carried_to_the_output(path_rows):  # type: ignore[no-untyped-def]
    assert sorted(r["photo_id"] for r in path_rows.values()) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def option_rows(ray_cluster, dataset_dir, tmp_path_factory) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    """Rows of a selfie and a blank picture with crops asked for, at most one face, undetected images kept."""
    blank = tmp_path_factory.mktemp("blank") / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    ds = ray_cluster.data.read_binary_files([str(dataset_dir / "selfie-many-people.jpg"), str(blank)],
                                            include_paths=True)
    rows = dray.extract_faces(ds, include_face=True, max_faces=1, enforce_detection=False)
    return {Path(p).name: r for p, r in rows_by_path(rows).items()}


def test_max_faces_keeps_the_largest_face(option_rows, dataset_dir, local_faces):  # type: ignore[no-untyped-def]
    expected = local_faces[str(dataset_dir / "selfie-many-people.jpg")].largest(1)
    assert_row_matches(option_rows["selfie-many-people.jpg"], expected)


def test_include_face_adds_the_crop_as_png(option_rows):  # type: ignore[no-untyped-def]
    face = option_rows["selfie-many-people.jpg"]["faces"][0]
    crop = cv2.imdecode(np.frombuffer(face["face"], np.uint8), cv2.IMREAD_COLOR)
    assert crop.ndim == 3 and min(crop.shape[:2]) >= 0.5 * min(face["box"][2:])


def test_undetected_image_is_the_whole_image_without_enforce_detection(option_rows):  # type: ignore[no-untyped-def]
    (face,) = option_rows["blank.png"]["faces"]
    assert (face["box"], face["confidence"], face["landmarks"]) == ([0, 0, 320, 240], 0.0, None)


# ----------------------------------------------------------------------------------------------------------------
# Corrupt files: the job finishes, those rows are marked

CORRUPT = {  # file name -> its content, made from a good JPEG
    "empty.jpg": lambda good: b"",
    "truncated.jpg": lambda good: good[: len(good) // 2],
    "notes.jpg": lambda good: b"these are not pixels\n" * 20,
}


@pytest.fixture(scope="module")
def corrupt_rows(ray_cluster, dataset_dir, tmp_path_factory) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("corrupt")
    good = (dataset_dir / "couple.jpg").read_bytes()
    bad = []
    for name, make in CORRUPT.items():
        (folder / name).write_bytes(make(good))
        bad.append(str(folder / name))
    paths = [str(dataset_dir / name) for name in SUBSET] + bad
    ds = ray_cluster.data.read_binary_files(paths, include_paths=True)
    return {Path(p).name: r for p, r in rows_by_path(dray.extract_faces(ds, batch_size=4)).items()}


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_file_gives_a_row_with_its_error(corrupt_rows, name):  # type: ignore[no-untyped-def]
    assert corrupt_rows[name]["error"].startswith("ImageDecodeError: ") and corrupt_rows[name]["faces"] == []


def test_good_files_beside_corrupt_ones_are_detected(corrupt_rows, dataset_dir, local_faces):  # type: ignore[no-untyped-def]
    for name in SUBSET:
        assert_row_matches(corrupt_rows[name], local_faces[str(dataset_dir / name)])


# ----------------------------------------------------------------------------------------------------------------
# Failures inside the worker


class CrashOnceDetector(Detector):
    """SCRFD, except that the first batch to find ``flag`` on disk removes it and kills its worker process."""

    name = "crash_once"
    batches_whole_chunks = True
    has_landmarks = True

    def __init__(self, flag: str):
        self.flag = Path(flag)
        self.inner = build_detector("scrfd")

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        try:
            self.flag.unlink()  # atomic: exactly one worker wins the flag
        except FileNotFoundError:
            return self.inner.detect_batch(images)
        os._exit(1)


class RejectsSizeDetector(Detector):
    """SCRFD, except that any image ``height`` pixels tall makes the model call raise."""

    name = "rejects_size"
    batches_whole_chunks = True
    has_landmarks = True

    def __init__(self, height: int):
        self.height = height
        self.inner = build_detector("scrfd")

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        if any(image.shape[0] == self.height for image in images):
            raise RuntimeError(f"cannot run on an image {self.height} pixels tall")
        return self.inner.detect_batch(images)


def test_dead_worker_is_restarted_and_no_row_is_lost_or_duplicated(  # type: ignore[no-untyped-def]
    ray_cluster, image_files, local_faces, tmp_path
):
    flag = tmp_path / "crash-once"
    flag.touch()
    paths = image_files[:16]
    ds = ray_cluster.data.read_binary_files(paths, include_paths=True)
    rows = dray.extract_faces(ds, detector_backend=functools.partial(CrashOnceDetector, str(flag)), batch_size=4)
    taken = rows.take_all()
    assert not flag.exists()  # a worker did die
    assert sorted(r["path"] for r in taken) == sorted(paths)
    assert {r["path"]: len(r["faces"]) for r in taken} == {p: len(local_faces[p]) for p in paths}


def test_image_that_breaks_the_model_fails_alone(ray_cluster, dataset_dir, tmp_path):  # type: ignore[no-untyped-def]
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), np.full((77, 120, 3), 128, np.uint8))
    paths = [str(dataset_dir / name) for name in SUBSET[:3]] + [str(odd)]
    ds = ray_cluster.data.read_binary_files(paths, include_paths=True)
    rows = rows_by_path(dray.extract_faces(ds, detector_backend=functools.partial(RejectsSizeDetector, 77)))
    errors = {Path(p).name: r["error"] for p, r in rows.items()}
    assert errors == {**{name: None for name in SUBSET[:3]}, "odd.png": "RuntimeError: cannot run on an image 77 "
                      "pixels tall"}


# ----------------------------------------------------------------------------------------------------------------
# Embeddings


@pytest.fixture(scope="module")
def embedding_rows(ray_cluster, dataset_dir) -> Dict[str, dict]:  # type: ignore[no-untyped-def]
    paths = [str(dataset_dir / name) for name in SUBSET]
    ds = ray_cluster.data.read_binary_files(paths, include_paths=True)
    return rows_by_path(dray.represent(ds, model_name="MobileFaceNet"))


@pytest.fixture(scope="module")
def local_embeddings(dataset_dir) -> Dict[str, list]:  # type: ignore[no-untyped-def]
    import deepbatch

    paths = [str(dataset_dir / name) for name in SUBSET]
    return dict(zip(paths, deepbatch.represent(paths, model_name="MobileFaceNet")))


def test_represent_gives_fixed_length_embeddings(embedding_rows):  # type: ignore[no-untyped-def]
    assert {len(face["embedding"]) for row in embedding_rows.values() for face in row["faces"]} == {128}


def test_represent_matches_local_represent(embedding_rows, local_embeddings):  # type: ignore[no-untyped-def]
    for path, expected in local_embeddings.items():
        got = embedding_rows[path]["faces"]
        assert len(got) == len(expected)
        np.testing.assert_allclose([f["embedding"] for f in got], [e["embedding"] for e in expected],
                                   atol=EMBEDDING_TOLERANCE, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# The command line


def test_cli_detect_writes_parquet_with_the_local_counts(ray_cluster, dataset_dir, local_faces, tmp_path):  # type: ignore[no-untyped-def]
    output = tmp_path / "results.parquet"
    code = cli.main(["detect", str(dataset_dir), "--engine", "ray", "--workers", "2", "--output", str(output),
                     "--no-progress"])
    table = pq.read_table(str(output)).to_pydict()
    assert code == 0
    assert dict(zip(table["path"], map(len, table["faces"]))) == {p: len(f) for p, f in local_faces.items()}


def test_cli_represent_writes_parquet_with_embeddings(ray_cluster, dataset_dir, local_embeddings, tmp_path):  # type: ignore[no-untyped-def]
    output = tmp_path / "embeddings.parquet"
    paths = [str(dataset_dir / name) for name in SUBSET]
    code = cli.main(["represent", *paths, "--engine", "ray", "--output", str(output), "--no-progress"])
    table = pq.read_table(str(output)).to_pydict()
    assert code == 0
    assert dict(zip(table["path"], map(len, table["faces"]))) == {p: len(e) for p, e in local_embeddings.items()}


def test_cli_reports_failed_images_with_exit_code_1(ray_cluster, dataset_dir, tmp_path):  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    output = tmp_path / "results.parquet"
    code = cli.main(["detect", str(dataset_dir / "img1.jpg"), str(broken), "--engine", "ray", "--output",
                     str(output), "--no-progress"])
    table = pq.read_table(str(output)).to_pydict()
    assert code == cli.EXIT_FAILED
    assert dict(zip(map(lambda p: Path(p).name, table["path"]), table["error"]))["broken.jpg"].startswith(
        "ImageDecodeError")


def test_cli_file_name_that_is_not_utf8_is_an_error_row(ray_cluster, dataset_dir, tmp_path):  # type: ignore[no-untyped-def]
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    with open(odd, "wb") as f:
        f.write((dataset_dir / "img1.jpg").read_bytes())
    output = tmp_path / "results.parquet"
    code = cli.main(["detect", str(dataset_dir / "img1.jpg"), os.fsdecode(odd), "--engine", "ray", "--output",
                     str(output), "--no-progress"])
    table = pq.read_table(str(output)).to_pydict()
    assert code == cli.EXIT_FAILED and len(table["path"]) == 2
    assert [bool(error) for error in table["error"]] == [False, True]


def test_cli_failed_run_keeps_the_previous_dataset(ray_cluster, dataset_dir, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    output = tmp_path / "results.parquet"
    image = str(dataset_dir / "img1.jpg")
    assert cli.main(["represent", image, "--engine", "ray", "--output", str(output), "--no-progress"]) == 0
    before = pq.read_table(str(output)).to_pydict()
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "no-weights"))  # the driver's lookup fails too
    code = cli.main(["represent", image, "--engine", "ray", "--model", "arcface_r50", "--output", str(output),
                     "--no-progress"])
    assert code != 0
    assert pq.read_table(str(output)).to_pydict() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]


@pytest.mark.parametrize("argv, message", [
    (["--output", "out.jsonl"], "named *.parquet"),
    ([], "--output results.parquet"),
    (["--output", "x.parquet", "--draw", "annotated"], "--draw needs the images"),
])
def test_cli_ray_engine_usage_errors(dataset_dir, argv, message, capsys):  # type: ignore[no-untyped-def]
    code = cli.main(["detect", str(dataset_dir / "img1.jpg"), "--engine", "ray", *argv])
    assert code == cli.EXIT_USAGE and message in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# Arguments checked on the driver, before any worker starts


def test_built_detector_is_refused_with_the_fix(ray_cluster):  # type: ignore[no-untyped-def]
    ds = ray_cluster.data.from_items([{"path": "a.jpg"}])
    with pytest.raises(dray.WorkerSpecError, match="registered name, or a function"):
        dray.extract_faces(ds, detector_backend=build_detector("scrfd"))


def test_dataset_without_an_image_column_is_refused(ray_cluster):  # type: ignore[no-untyped-def]
    ds = ray_cluster.data.from_items([{"photo": "a.jpg"}])
    with pytest.raises(dray.DatasetColumnError, match="column='<name of your image column>'"):
        dray.extract_faces(ds)


@pytest.mark.parametrize("workers, gpus, cpus", [
    (1, 0, 1.0),  # one actor on 2 CPUs: a whole CPU, one left for reading
    (2, 0, 0.5),  # two actors on 2 CPUs share the CPU that reading leaves
    ((1, 4), 0, 0.25),  # an autoscaling pool is sized for its largest size
    (2, 1, 1.0),  # GPU workers keep a CPU each to feed the GPU
])
def test_cpus_per_worker_leave_room_for_reading(workers, gpus, cpus):  # type: ignore[no-untyped-def]
    assert dray.cpus_per_worker(workers, 2.0, gpus) == cpus


@pytest.mark.parametrize("workers, gpus, cluster, fits", [
    (1, 0, {"CPU": 2.0}, True),  # CPU workers ask for no GPU
    (2, 0.5, {"CPU": 2.0, "GPU": 1.0}, True),  # two workers share one GPU
    ((1, 4), 1, {"CPU": 8.0, "GPU": 1.0}, True),  # an autoscaling pool needs its smallest size placed
    (1, 1, {"CPU": 2.0}, False),  # no GPU at all
    (2, 1, {"CPU": 8.0, "GPU": 1.0}, False),  # one GPU short
])
def test_gpu_requests_are_checked_against_the_cluster(workers, gpus, cluster, fits):  # type: ignore[no-untyped-def]
    if fits:
        dray.check_gpus(workers, gpus, cluster)
    else:
        with pytest.raises(dray.RayResourceError, match="num_gpus_per_worker=0 to run on CPUs"):
            dray.check_gpus(workers, gpus, cluster)


def test_gpu_request_on_a_cluster_without_gpus_fails_at_once(ray_cluster):  # type: ignore[no-untyped-def]
    ds = ray_cluster.data.from_items([{"path": "a.jpg"}])
    with pytest.raises(dray.RayResourceError, match="needs 1 GPU"):
        dray.extract_faces(ds, num_gpus_per_worker=1)


@pytest.mark.slow
def test_cli_keeps_rays_info_lines_off_stderr(weights_dir, tmp_path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPBATCH_WEIGHTS": str(weights_dir)}
    result = subprocess.run([sys.executable, "-m", "deepbatch.cli", "detect", str(ROOT / "samples"), "--engine", "ray",
                             "--output", str(tmp_path / "faces.parquet"), "--no-progress"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if " INFO " in line] == []
    assert "detect: 3 image(s) on 1 Ray worker(s): 2 face(s), 1 without a face" in result.stderr


def test_missing_ray_names_the_extra(monkeypatch):  # type: ignore[no-untyped-def]
    from deepbatch.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("ray"))):
        dray.import_ray()


def test_importing_deepbatch_ray_imports_no_heavy_package():
    code = "import sys, deepbatch.ray; sys.exit(bool({'ray', 'pyarrow', 'onnxruntime', 'cv2'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --- one row schema: the Python API, the command line (JSON lines, Parquet, --engine ray) and Ray datasets ---

ROW_BOX_TOLERANCE_PX = 1.0  # rows of differently batched runs: float noise only, far below a pixel
ROW_SCORE_TOLERANCE = 1e-4


def _rows_by_path(rows: Sequence[dict]) -> Dict[str, dict]:
    return {row["path"]: row for row in rows}


def _assert_rows_equal(got: dict, expected: dict) -> None:
    assert {k: v for k, v in got.items() if k != "faces"} == {k: v for k, v in expected.items() if k != "faces"}
    assert len(got["faces"]) == len(expected["faces"])
    for face, reference in zip(got["faces"], expected["faces"]):
        assert set(face) == set(reference)
        np.testing.assert_allclose(face["box"], reference["box"], atol=ROW_BOX_TOLERANCE_PX, rtol=0)
        np.testing.assert_allclose(face["confidence"], reference["confidence"], atol=ROW_SCORE_TOLERANCE, rtol=0)
        np.testing.assert_allclose(np.array(face["landmarks"], float), np.array(reference["landmarks"], float),
                                   atol=ROW_BOX_TOLERANCE_PX, rtol=0)


@pytest.fixture(scope="module")
def every_edge_rows(ray_cluster, image_files: List[str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The rows of all the photos from each edge, with enforce_detection on everywhere."""
    import deepbatch

    out = tmp_path_factory.mktemp("rows")
    api = [r.row() for r in deepbatch.iter_extract_faces(image_files, enforce_detection=True, on_error="skip")]
    # `detect` without --draw or --save-crops decodes large JPEGs at a reduced scale, as deepbatch.iter_detect does
    reduced = [r.row() for r in deepbatch.iter_detect(image_files, on_error="skip")]
    common = ["detect", *image_files, "--enforce-detection", "-q"]
    codes = [cli.main([*common, "--output", str(out / name), *extra]) for name, extra in (
        ("rows.jsonl", []), ("rows.parquet", []), ("ray.parquet", ["--engine", "ray"]))]
    dataset = dray.extract_faces(dray.paths_dataset(image_files), enforce_detection=True).take_all()
    jsonl = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    return {
        "codes": codes,
        "api": _rows_by_path(api),
        "api reduced": _rows_by_path(reduced),
        "cli jsonl": _rows_by_path(jsonl),
        "cli parquet": _rows_by_path(pq.read_table(str(out / "rows.parquet")).to_pylist()),
        "cli ray parquet": _rows_by_path(pq.read_table(str(out / "ray.parquet")).to_pylist()),
        "ray dataset": _rows_by_path(dataset),
    }


@pytest.mark.slow
def test_api_rows_find_the_faces_of_the_photos(every_edge_rows: dict, image_files: List[str]) -> None:
    faces = sum(len(row["faces"]) for row in every_edge_rows["api"].values())
    assert (sorted(every_edge_rows["api"]), faces >= len(image_files)) == (sorted(image_files), True)
    assert every_edge_rows["codes"] == [cli.EXIT_OK] * 3


@pytest.mark.slow
@pytest.mark.parametrize("edge, reference", [("cli jsonl", "api reduced"), ("cli parquet", "api reduced"),
                                             ("cli ray parquet", "api"), ("ray dataset", "api")])
def test_every_edge_gives_the_api_rows(every_edge_rows: dict, edge: str, reference: str) -> None:
    got, expected = every_edge_rows[edge], every_edge_rows[reference]
    assert sorted(got) == sorted(expected)
    for path in expected:
        _assert_rows_equal(got[path], expected[path])
