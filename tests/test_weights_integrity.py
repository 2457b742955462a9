"""A found model file is proved under every name the model has, and loaders load only the bytes they hashed.

The files are the real weights of ``$DEEPBATCH_WEIGHTS``; a tampered file is a real one with a few bytes changed,
so it still parses as ONNX and would run (and find nothing) if it were not refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import shutil
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from deepbatch.cli import EXIT_USAGE, main
from deepbatch.detectors import DETECTORS
from deepbatch.errors import ChecksumError, UnverifiedWeightsError
from deepbatch.weights import TRUSTED_ENV, WeightFile, cache_dir, read_checked, resolve_weights

SCRFD_500M = DETECTORS.entry("scrfd_500m").defaults["weights"]
REAL_SCRFD = "scrfd_500m_kps.onnx"  # a public export of SCRFD-0.5GF, registered among the model's digests


def tampered(data: bytes) -> bytes:
    """``data`` with 64 bytes near the end inverted: the same size, still a parseable ONNX file, other weights."""
    cut = len(data) - 4096
    return data[:cut] + bytes(b ^ 0xFF for b in data[cut : cut + 64]) + data[cut + 64 :]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tuple[Path, Path]:
    """``(a $DEEPBATCH_WEIGHTS folder, deepbatch's own cache)``, both empty, nothing trusted."""
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv(TRUSTED_ENV, raising=False)
    (tmp_path / "weights").mkdir()
    cache_dir().mkdir(parents=True)
    return tmp_path / "weights", cache_dir()


@pytest.mark.parametrize("where", ["weights_folder", "cache"])
@pytest.mark.parametrize("name", SCRFD_500M.names)
def test_a_tampered_file_under_any_name_of_the_model_is_refused(places: Tuple[Path, Path], weights_dir: Path,
                                                                where: str, name: str) -> None:
    folder = places[0] if where == "weights_folder" else places[1]
    (folder / name).write_bytes(tampered((weights_dir / REAL_SCRFD).read_bytes()))
    with pytest.raises(ChecksumError, match="truncated, corrupt or another file") as info:
        resolve_weights(SCRFD_500M, download=False)
    assert str(folder / name) in str(info.value)


@pytest.mark.parametrize("where", ["weights_folder", "cache"])
def test_a_registered_export_under_an_alternative_name_is_used(places: Tuple[Path, Path], weights_dir: Path,
                                                               where: str) -> None:
    folder = places[0] if where == "weights_folder" else places[1]
    shutil.copy(weights_dir / REAL_SCRFD, folder / "det_500m.onnx")
    assert resolve_weights(SCRFD_500M, download=False) == folder / "det_500m.onnx"


def test_the_cli_refuses_a_tampered_alternative_with_exit_2(places: Tuple[Path, Path], weights_dir: Path,
                                                            dataset_dir: Path) -> None:
    (places[1] / REAL_SCRFD).write_bytes(tampered((weights_dir / REAL_SCRFD).read_bytes()))
    DETECTORS.clear_cache()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["detect", str(dataset_dir / "img1.jpg"), "--backend", "scrfd_500m", "--no-progress"])
    DETECTORS.clear_cache()
    assert code == EXIT_USAGE and "SHA-256" in err.getvalue() and REAL_SCRFD in err.getvalue()


def test_the_pinned_name_is_preferred_in_a_folder(places: Tuple[Path, Path], weights_dir: Path) -> None:
    data = (weights_dir / REAL_SCRFD).read_bytes()
    spec = WeightFile("b_other_name.onnx", ("a_pinned.onnx",), sha256=hashlib.sha256(data).hexdigest(),
                      archive_member="a_pinned.onnx", url="http://127.0.0.1:9/archive.zip", archive_sha256="0" * 64)
    (places[1] / "b_other_name.onnx").write_bytes(tampered(data))
    (places[1] / "a_pinned.onnx").write_bytes(data)
    assert resolve_weights(spec, download=False) == places[1] / "a_pinned.onnx"


@pytest.mark.parametrize("where, allowed", [("weights_folder", True), ("cache", False)])
def test_a_file_without_a_registered_digest_needs_a_folder_the_user_named(places: Tuple[Path, Path],
                                                                          weights_dir: Path, where: str,
                                                                          allowed: bool) -> None:
    folder = places[0] if where == "weights_folder" else places[1]
    spec = DETECTORS.entry("centerface").defaults["weights"]
    shutil.copy(weights_dir / REAL_SCRFD, folder / spec.filename)
    if allowed:
        assert resolve_weights(spec, download=False) == folder / spec.filename
    else:
        with pytest.raises(UnverifiedWeightsError, match="deepbatch's own cache"):
            resolve_weights(spec, download=False)


def swap_in_place(path: Path, data: bytes) -> None:
    """Replace the bytes of ``path`` by ``data`` of the same size, keeping its modification time to the nanosecond."""
    info = path.stat()
    assert len(data) == info.st_size
    path.write_bytes(data)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_an_onnx_file_swapped_after_its_check_is_not_loaded(places: Tuple[Path, Path], weights_dir: Path) -> None:
    from deepbatch.runtime.model import OnnxModel

    path = places[0] / REAL_SCRFD
    shutil.copy(weights_dir / REAL_SCRFD, path)
    assert resolve_weights(SCRFD_500M, download=False) == path  # checked, and its digest remembered
    swap_in_place(path, tampered(path.read_bytes()))
    assert resolve_weights(SCRFD_500M, download=False) == path  # the per-process digest memo does not see it
    with pytest.raises(ChecksumError, match="changed after it was checked"):
        OnnxModel(path, "cpu", probe_shape=(3, 640, 640), cache=False)


class _Marker:
    """Unpickling this writes a file: the stand-in for code a swapped pickle would run."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.target),))


def test_a_pickle_swapped_after_its_check_is_never_unpickled(places: Tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DETECTORS.entry("yolov8n_pt").defaults["weights"]
    path = places[0] / spec.filename
    marker = tmp_path / "ran"
    evil = pickle.dumps(_Marker(str(marker)), protocol=4)
    honest = pickle.dumps({"weights": np.arange(4.0)}, protocol=4)
    size = max(len(evil), len(honest))  # the same size, so size and mtime cannot tell them apart; pickle reads
    evil, honest = evil.ljust(size, b"\x00"), honest.ljust(size, b"\x00")  # nothing after its STOP opcode
    path.write_bytes(honest)
    monkeypatch.setenv(TRUSTED_ENV, hashlib.sha256(honest).hexdigest())  # vouched for by digest
    assert resolve_weights(spec, download=False) == path
    swap_in_place(path, evil)
    assert resolve_weights(spec, download=False) == path  # the memo keyed by path, size and mtime still says yes
    with pytest.raises(ChecksumError, match="changed after it was checked"):
        pickle.loads(read_checked(path))
    assert not marker.exists()


def test_an_onnx_file_swapped_while_its_model_is_in_use_is_not_loaded_again(places: Tuple[Path, Path],
                                                                            weights_dir: Path) -> None:
    from deepbatch.runtime.model import OnnxModel
    from deepbatch.runtime.session import threads_per_run

    path = places[0] / "mobilefacenet_dyn.onnx"
    shutil.copy(weights_dir / "mobilefacenet_dyn.onnx", path)
    model = OnnxModel(path, "cpu", cache=False)  # the file as it is: a native dynamic batch
    swap_in_place(path, tampered(path.read_bytes()))
    blob = np.zeros((1, 3, 112, 112), np.float32)
    with threads_per_run(1), pytest.raises(ChecksumError, match="changed while it was in use"):
        model.run(blob)  # a session with another thread count is opened from the file again
