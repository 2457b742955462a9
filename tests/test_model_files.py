"""Model files are proved: pinned downloads, checked found files, pickles only when vouched for, corrupt files named.

Downloads are served by a local HTTP server on 127.0.0.1; corrupt files are real weights cut short.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from deepbatch.detectors import DETECTORS
from deepbatch.errors import ChecksumError, ModelFormatError, UnverifiedWeightsError, WeightsNotFoundError
from deepbatch.recognition import RECOGNIZERS
from deepbatch.weights import TRUSTED_ENV, WeightFile, cache_dir, resolve_weights


def registered_weights() -> List[Tuple[str, WeightFile]]:
    out = []
    for registry in (DETECTORS, RECOGNIZERS):
        for name in registry.names(aliases=False):
            entry = registry.entry(name)
            spec = entry.defaults.get("weights") or getattr(entry.factory, "weights", None)
            if spec is not None:
                out.append((name, spec))
    return out


DOWNLOADS = [(name, spec) for name, spec in registered_weights() if spec.url]


@pytest.mark.parametrize("name, spec", DOWNLOADS, ids=[name for name, _ in DOWNLOADS])
def test_every_download_is_pinned(name: str, spec: WeightFile) -> None:
    assert spec.sha256 is not None and len(spec.sha256) == 64
    assert spec.archive_member is None or (spec.archive_sha256 is not None and len(spec.archive_sha256) == 64)


@pytest.mark.parametrize("name, spec", DOWNLOADS, ids=[name for name, _ in DOWNLOADS])
def test_every_download_comes_from_a_fixed_release_or_commit(name: str, spec: WeightFile) -> None:
    assert spec.url is not None
    assert not any(moving in spec.url for moving in ("/master/", "/main/", "/refs/heads/", "/latest/"))


@pytest.mark.parametrize("name", ["yolov8n", "yolov8n_pt", "centerface"])
def test_models_without_a_published_digest_are_supplied_by_the_user(name: str) -> None:
    spec = DETECTORS.entry(name).defaults["weights"]
    assert spec.url is None and spec.homepage


# --- found files ---


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $DEEPBATCH_WEIGHTS folder and cache, and no trusted files."""
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv(TRUSTED_ENV, raising=False)
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


@pytest.fixture
def truncated_yunet(folder: Path, weights_dir: Path) -> Path:
    """The real YuNet file cut to half, under its registered name."""
    data = (weights_dir / "face_detection_yunet_2026may.onnx").read_bytes()
    path = folder / "face_detection_yunet_2026may.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_found_file_with_the_wrong_digest_is_refused(truncated_yunet: Path) -> None:
    with pytest.raises(ChecksumError, match="truncated, corrupt or another file") as info:
        resolve_weights(DETECTORS.entry("yunet").defaults["weights"])
    assert str(truncated_yunet) in str(info.value)


@pytest.mark.parametrize("trust", ["path", "digest"])
def test_trusted_custom_file_is_used(truncated_yunet: Path, monkeypatch: pytest.MonkeyPatch, trust: str) -> None:
    entry = str(truncated_yunet) if trust == "path" else hashlib.sha256(truncated_yunet.read_bytes()).hexdigest()
    monkeypatch.setenv(TRUSTED_ENV, entry)
    assert resolve_weights(DETECTORS.entry("yunet").defaults["weights"]) == truncated_yunet


def test_found_file_with_the_registered_digest_is_used(folder: Path, weights_dir: Path) -> None:
    shutil.copy(weights_dir / "face_detection_yunet_2026may.onnx", folder)
    assert resolve_weights(DETECTORS.entry("yunet").defaults["weights"]).parent == folder


@pytest.fixture
def pickle_file(folder: Path) -> Path:
    path = folder / "yolov8n-face.pt"
    path.write_bytes(b"\x80\x04not really a model")
    return path


@pytest.mark.heavy  # builds the ultralytics backend: imports torch
def test_found_pickle_without_a_digest_is_never_loaded(pickle_file: Path) -> None:
    pytest.importorskip("ultralytics")
    with pytest.raises(UnverifiedWeightsError, match="loading it runs code"):
        DETECTORS.create("yolov8n_pt")


def test_found_pickle_listed_as_trusted_is_allowed(pickle_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUSTED_ENV, str(pickle_file))
    assert resolve_weights(DETECTORS.entry("yolov8n_pt").defaults["weights"]) == pickle_file


def test_explicit_path_is_the_users_choice(pickle_file: Path) -> None:
    assert resolve_weights(DETECTORS.entry("yolov8n_pt").defaults["weights"], pickle_file) == pickle_file


# --- corrupt model files ---


@pytest.mark.parametrize("name, filename", [("yunet", "face_detection_yunet_2026may.onnx"),
                                            ("scrfd_500m", "scrfd_500m_kps.onnx")])
def test_corrupt_model_file_is_a_model_format_error_naming_it(name: str, filename: str, tmp_path: Path,
                                                              weights_dir: Path) -> None:
    data = (weights_dir / filename).read_bytes()
    path = tmp_path / filename
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFormatError) as info:
        DETECTORS.create(name, model_path=str(path))
    assert str(path) in str(info.value)


# --- downloads ---


class _Server(http.server.BaseHTTPRequestHandler):
    body = b"weights " * 50000

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()  # no Content-Length: only the digest can tell that the body is cut short
        self.wfile.write(self.body[: len(self.body) // 2])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def truncating_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_truncated_download_without_length_is_never_cached(truncating_server: str, folder: Path) -> None:
    spec = WeightFile("model.onnx", url=f"{truncating_server}/model.onnx",
                      sha256=hashlib.sha256(_Server.body).hexdigest())
    with pytest.raises(ChecksumError, match="the file was discarded"):
        resolve_weights(spec)
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


def test_download_without_a_pinned_digest_is_not_attempted(truncating_server: str, folder: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="no pinned SHA-256"):
        resolve_weights(WeightFile("model.onnx", url=f"{truncating_server}/model.onnx"))
    assert not cache_dir().exists() or not any(cache_dir().iterdir())
