"""Finding and downloading weights, against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from deepbatch.errors import ChecksumError, WeightsNotFoundError
from deepbatch.weights import WeightFile, cache_dir, download_file, find_weights, resolve_weights

PAYLOAD = b"onnx weights " * 4096
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
OTHER = b"other weights " * 4096  # a second model in the same archive, as buffalo_sc holds detector and recognizer


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: Dict[str, bytes] = {}
    lie_about_length: set = set()
    served: List[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.served.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        length = len(body) * 2 if self.path in self.lie_about_length else len(body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pack/det.onnx", PAYLOAD)
        zf.writestr("pack/rec.onnx", OTHER)
    _Handler.routes = {"/model.onnx": PAYLOAD, "/pack.zip": archive.getvalue(), "/short.onnx": PAYLOAD}
    _Handler.served = []
    _Handler.lie_about_length = {"/short.onnx"}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir()
    return tmp_path


def leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


def test_download_verifies_and_lands_in_the_cache(server, home):  # type: ignore[no-untyped-def]
    spec = WeightFile("model.onnx", url=f"{server}/model.onnx", sha256=DIGEST)
    path = resolve_weights(spec)
    assert path == cache_dir() / "model.onnx" and path.read_bytes() == PAYLOAD
    assert leftovers(cache_dir()) == []


def test_second_lookup_uses_the_cache_without_network(server, home):  # type: ignore[no-untyped-def]
    resolve_weights(WeightFile("model.onnx", url=f"{server}/model.onnx", sha256=DIGEST))
    offline = WeightFile("model.onnx", url="http://127.0.0.1:9/model.onnx", sha256=DIGEST)
    assert resolve_weights(offline) == cache_dir() / "model.onnx"


def test_checksum_mismatch_keeps_nothing(server, home):  # type: ignore[no-untyped-def]
    spec = WeightFile("model.onnx", url=f"{server}/model.onnx", sha256="0" * 64)
    with pytest.raises(ChecksumError, match="expected 0000"):
        resolve_weights(spec)
    assert not (cache_dir() / "model.onnx").exists() and leftovers(cache_dir()) == []


def test_connection_closed_early_keeps_nothing(server, home):  # type: ignore[no-untyped-def]
    with pytest.raises(WeightsNotFoundError, match="connection closed"):
        resolve_weights(WeightFile("short.onnx", url=f"{server}/short.onnx", sha256=DIGEST))
    assert not (cache_dir() / "short.onnx").exists() and leftovers(cache_dir()) == []


def test_archive_member_is_extracted(server, home):  # type: ignore[no-untyped-def]
    spec = WeightFile("scrfd.onnx", ("det.onnx",), url=f"{server}/pack.zip", sha256=DIGEST, archive_member="det.onnx")
    path = resolve_weights(spec)
    assert path.name == "det.onnx" and path.read_bytes() == PAYLOAD
    assert find_weights(spec) == path


MEMBER_DIGESTS = {"det.onnx": DIGEST, "rec.onnx": hashlib.sha256(OTHER).hexdigest()}


def archive_spec(server: str, member: str, archive_sha256: str) -> WeightFile:
    return WeightFile(member, url=f"{server}/pack.zip", sha256=MEMBER_DIGESTS[member], archive_member=member,
                      archive_sha256=archive_sha256)


def test_two_models_of_one_archive_download_it_once(server, home):  # type: ignore[no-untyped-def]
    digest = hashlib.sha256(_Handler.routes["/pack.zip"]).hexdigest()
    _Handler.served.clear()
    first = resolve_weights(archive_spec(server, "det.onnx", digest))
    second = resolve_weights(archive_spec(server, "rec.onnx", digest))
    assert (first.read_bytes(), second.read_bytes()) == (PAYLOAD, OTHER)
    assert _Handler.served == ["/pack.zip"]


def test_archive_put_in_the_cache_by_hand_is_unpacked_offline(server, home):  # type: ignore[no-untyped-def]
    archive = _Handler.routes["/pack.zip"]
    cache_dir().mkdir(parents=True)
    (cache_dir() / "pack.zip").write_bytes(archive)
    spec = archive_spec("http://127.0.0.1:9", "rec.onnx", hashlib.sha256(archive).hexdigest())
    assert resolve_weights(spec).read_bytes() == OTHER


def test_offline_error_for_an_archive_says_to_put_the_archive_in_the_cache(home):  # type: ignore[no-untyped-def]
    spec = WeightFile("rec.onnx", url="http://127.0.0.1:9/pack.zip", archive_member="rec.onnx")
    with pytest.raises(WeightsNotFoundError, match=rf"Download http://127.0.0.1:9/pack.zip once and put it, unchanged, "
                                                   rf"in {re.escape(str(cache_dir()))}: deepbatch takes rec.onnx"):
        resolve_weights(spec)


def test_archive_with_another_digest_is_refused(server, home):  # type: ignore[no-untyped-def]
    with pytest.raises(ChecksumError, match="expected 1111"):
        resolve_weights(archive_spec(server, "det.onnx", "1" * 64))
    assert list(cache_dir().iterdir()) == []


def test_offline_error_says_what_where_and_from_where(home):  # type: ignore[no-untyped-def]
    spec = WeightFile("absent.onnx", url="http://127.0.0.1:9/absent.onnx", homepage="https://example.org/models")
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(spec)
    message = str(info.value)
    assert "'absent.onnx'" in message and str(home / "shared") in message and str(cache_dir()) in message
    assert "http://127.0.0.1:9/absent.onnx" in message


def test_model_without_download_source_says_where_to_get_it(home):  # type: ignore[no-untyped-def]
    spec = WeightFile("scrfd_34g.onnx", homepage="https://example.org/scrfd")
    with pytest.raises(WeightsNotFoundError, match="no download source.*https://example.org/scrfd"):
        resolve_weights(spec)


@pytest.mark.parametrize("where", ["explicit", "env", "cache"])
def test_lookup_order(where, server, home, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    explicit = tmp_path / "mine.onnx"
    places = {"explicit": explicit, "env": home / "shared" / "model.onnx", "cache": cache_dir() / "model.onnx"}
    monkeypatch.setenv("DEEPBATCH_TRUSTED_WEIGHTS", str(places["cache"]))  # unpinned, in deepbatch's own cache
    order = ["explicit", "env", "cache"]
    for name in order[order.index(where):]:
        places[name].parent.mkdir(parents=True, exist_ok=True)
        places[name].write_bytes(name.encode())
    spec = WeightFile("model.onnx", url=f"{server}/model.onnx")
    found = resolve_weights(spec, explicit if where == "explicit" else None)
    assert found.read_bytes() == where.encode()


def test_explicit_path_must_exist(home, tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(WeightFile("model.onnx"), tmp_path / "nope.onnx")


def test_download_file_reports_progress_and_replaces_atomically(server, tmp_path):  # type: ignore[no-untyped-def]
    target = tmp_path / "w" / "model.onnx"
    target.parent.mkdir()
    target.write_bytes(b"old")
    assert download_file(f"{server}/model.onnx", target, DIGEST).read_bytes() == PAYLOAD
