"""Untrusted inputs are bounded: declared pixels, bytes, URL time and redirects; refusals are typed and named.

Bombs are generated here (a small real JPEG or PNG whose header is made to declare a huge size); URLs are served
by local HTTP servers on 127.0.0.1 that trickle, lie or redirect.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.cli import main
from deepbatch.errors import ImageDecodeError, ImageReadError
from deepbatch.io.headers import declared_size, sniff
from deepbatch.io.images import get_image_limits, jpeg_is_truncated, load_image, set_image_limits

BOMB_SIDE = 32000


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose start-of-frame header is rewritten to declare ``width`` x ``height``."""
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    raw = bytearray(data.tobytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def png_declaring(width: int, height: int, bit_depth: int = 16) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (16-bit RGB) followed by a little compressed data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


@pytest.fixture
def limits() -> Iterator[Callable[..., None]]:
    """Change the process-wide image limits for one test, restoring them afterwards."""
    previous = get_image_limits()

    def change(**values: float) -> None:
        set_image_limits(**values)  # type: ignore[arg-type]

    yield change
    set_image_limits(**asdict(previous))


# --- declared size, read from the header and checked against the encoders' own output ---


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tiff", ".jp2", ".ppm", ".pgm"])
def test_declared_size_matches_what_opencv_encoded(suffix: str) -> None:
    channels = 1 if suffix == ".pgm" else 3
    image = np.random.default_rng(0).integers(0, 255, (230, 370, channels), np.uint8)
    ok, data = cv2.imencode(suffix, image)
    assert ok and declared_size(data.tobytes()) == (370, 230)


def test_declared_size_of_a_16_bit_png_bomb() -> None:
    assert declared_size(png_declaring(50000, 50000)) == (50000, 50000)


@pytest.mark.parametrize("head", [b"root:x:0:0:root:/root:/bin/bash\n", b"\0" * 64, b"<html><body>"])
def test_non_image_bytes_match_no_format(head: bytes) -> None:
    assert sniff(head) is None


# --- pixel limit: refused before decoding, typed, named, and skippable ---


@pytest.mark.parametrize("build, name", [
    (lambda: jpeg_declaring(BOMB_SIDE, BOMB_SIDE), "bomb.jpg"),
    (lambda: png_declaring(50000, 50000), "bomb.png"),
])
def test_decompression_bomb_is_refused_from_its_header(build: Callable[[], bytes], name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(build())
    with pytest.raises(ImageDecodeError, match="over the decoding limit") as info:
        load_image(str(path))
    assert info.value.source == str(path)


def test_bomb_jpeg_is_a_few_hundred_bytes() -> None:
    assert len(jpeg_declaring(BOMB_SIDE, BOMB_SIDE)) < 1000


def test_bombs_in_a_batch_are_skipped_and_the_photos_kept(tmp_path: Path, dataset_dir: Path) -> None:
    bombs = []
    for k in range(3):
        bombs.append(tmp_path / f"bomb{k}.jpg")
        bombs[-1].write_bytes(jpeg_declaring(BOMB_SIDE, BOMB_SIDE))
    batch = [str(bombs[0]), str(dataset_dir / "couple.jpg"), str(bombs[1]), str(bombs[2])]
    results = deepbatch.extract_faces(batch, on_error="skip")
    assert sorted(results.errors) == [0, 2, 3]
    assert len(results[1]) == 2


def test_pixel_limit_can_be_raised_for_trusted_files(limits: Callable[..., None], dataset_dir: Path) -> None:
    limits(max_pixels=1000)
    with pytest.raises(ImageDecodeError, match="over the decoding limit"):
        load_image(str(dataset_dir / "img1.jpg"))
    limits(max_pixels=10**9)
    assert load_image(str(dataset_dir / "img1.jpg")).ndim == 3


@pytest.mark.parametrize("value", [0, -5])
def test_limits_must_be_positive(value: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        set_image_limits(max_pixels=value)


# --- byte limits and header sniffing: nothing is read whole before it is checked ---


def test_file_over_the_byte_limit_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(6 << 30)  # a sparse 6 GiB file: reading it would take the memory
    with pytest.raises(ImageReadError, match="over the limit"):
        load_image(str(huge))


def test_non_image_file_is_refused_from_its_first_bytes(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    with open(fake, "wb") as f:
        f.write(b"root:x:0:0:root:/root:/bin/bash\n" * 4)
        f.truncate(200 << 20)
    with pytest.raises(ImageDecodeError, match="match no image format"):
        load_image(str(fake))


def test_error_message_does_not_echo_file_contents(tmp_path: Path) -> None:
    secret = tmp_path / "passwd.jpg"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ImageDecodeError) as info:
        load_image(str(secret))
    assert "root:x" not in str(info.value)


def test_endless_file_object_is_refused() -> None:
    with open("/dev/zero", "rb") as endless, pytest.raises(ImageDecodeError, match="match no image format"):
        load_image(endless)


def test_file_object_over_the_byte_limit_is_refused(limits: Callable[..., None], dataset_dir: Path) -> None:
    data = (dataset_dir / "img1.jpg").read_bytes()
    limits(max_bytes=len(data) // 2)
    with pytest.raises(ImageReadError, match="over the limit"):
        load_image(io.BytesIO(data))


def test_data_uri_over_the_byte_limit_is_refused(limits: Callable[..., None]) -> None:
    limits(max_bytes=100_000)
    with pytest.raises(ImageReadError, match="over the limit"):
        load_image("data:image/jpeg;base64," + "A" * 400_000)


# --- URLs: a total deadline, a body limit, http(s) redirects only ---


class _Hostile(http.server.BaseHTTPRequestHandler):
    photo = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/trickle.jpg":  # a valid start, then one byte every 0.2 s, forever
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.photo[:64])
            try:
                for byte in self.photo[64:]:
                    time.sleep(0.2)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            except OSError:  # the client gave up, as it should
                pass
        elif self.path == "/trickled-headers.jpg":  # the status line, then a header one byte every 0.2 s
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            try:
                for byte in b"X-Slow: " + b"a" * 1000:
                    time.sleep(0.2)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            except OSError:
                pass
        elif self.path == "/announced-huge.jpg":
            self.send_response(200)
            self.send_header("Content-Length", str(2 << 30))
            self.end_headers()
            self.wfile.write(self.photo[:1024])
        elif self.path == "/endless.jpg":  # no Content-Length, a JPEG start and then filler without end
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.photo[:64])
            try:
                while True:
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif self.path == "/to-ftp.jpg":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/photo.jpg")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile(dataset_dir: Path) -> Iterator[str]:
    _Hostile.photo = (dataset_dir / "img1.jpg").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["DEEPBATCH_ALLOW_PRIVATE_URLS"] = "1"  # the test server is on this machine
    yield f"http://127.0.0.1:{server.server_address[1]}"
    os.environ.pop("DEEPBATCH_ALLOW_PRIVATE_URLS", None)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("route", ["trickle.jpg", "trickled-headers.jpg"])
def test_trickling_server_hits_the_total_deadline(hostile: str, route: str, limits: Callable[..., None]) -> None:
    limits(url_deadline_s=1.5)
    started = time.monotonic()
    with pytest.raises(ImageReadError, match="longer than 1.5 s"):
        load_image(f"{hostile}/{route}")
    assert time.monotonic() - started < 10  # a bound on the hang, not a speed claim: per-read timeouts would never end


@pytest.mark.parametrize("route", ["announced-huge.jpg", "endless.jpg"])
def test_url_body_over_the_byte_limit_is_refused(hostile: str, route: str, limits: Callable[..., None]) -> None:
    limits(max_bytes=1 << 20)
    with pytest.raises(ImageReadError, match="over the limit"):
        load_image(f"{hostile}/{route}")


def test_redirect_to_ftp_is_refused(hostile: str) -> None:
    with pytest.raises(ImageReadError, match="redirect to a ftp URL refused"):
        load_image(f"{hostile}/to-ftp.jpg")


# --- the JPEG end check and memory exhaustion ---


def test_truncation_check_skips_long_runs_of_fill_bytes(dataset_dir: Path) -> None:
    photo = (dataset_dir / "img1.jpg").read_bytes()
    padded = photo[:2] + b"\xff" * (20 << 20) + photo[2:]  # fill bytes before the first marker are legal
    assert not jpeg_is_truncated(padded)
    assert jpeg_is_truncated(padded[: len(padded) - len(photo) // 2])


_OUT_OF_MEMORY = textwrap.dedent("""
    import resource
    import cv2, numpy as np
    import deepbatch
    ok, photo = cv2.imencode(".jpg", np.zeros((8000, 8000, 3), np.uint8))  # 192 MB once decoded
    ok, small = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    deepbatch.extract_faces([small.tobytes()], on_error="skip", enforce_detection=False)  # load everything first
    in_use = int(open("/proc/self/statm").read().split()[0]) * 4096
    resource.setrlimit(resource.RLIMIT_AS, (in_use + (120 << 20), resource.RLIM_INFINITY))
    try:
        deepbatch.extract_faces([photo.tobytes()], on_error="skip")
    except MemoryError:
        print("MemoryError")
    else:
        print("no error")
""")



def test_running_out_of_memory_while_decoding_is_not_a_corrupt_image(weights_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _OUT_OF_MEMORY], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "MemoryError", done.stderr[-2000:]


# --- results never alias the caller's memory ---


@pytest.mark.parametrize("align", [True, False])
def test_whole_image_face_is_a_copy(align: bool) -> None:
    image = np.full((64, 48, 3), 90, np.uint8)
    face = deepbatch.extract_faces(image, detector_backend="skip", color_face="bgr", normalize_face=False,
                                   align=align)[0]["face"]
    assert not np.shares_memory(face, image)



# --- the command line ---


def _cli(args: list) -> tuple:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_cli_refuses_bombs_and_keeps_the_photos(tmp_path: Path, dataset_dir: Path) -> None:
    for k in range(3):
        (tmp_path / f"bomb{k}.jpg").write_bytes(jpeg_declaring(BOMB_SIDE, BOMB_SIDE))
    (tmp_path / "couple.jpg").symlink_to(dataset_dir / "couple.jpg")
    code, out, err = _cli(["detect", tmp_path, "--no-progress"])
    rows = {Path(row["path"]).name: row for row in map(json.loads, out.splitlines())}
    assert code == 1 and len(rows["couple.jpg"]["faces"]) == 2
    assert all("over the decoding limit" in rows[f"bomb{k}.jpg"]["error"] for k in range(3))


def test_cli_max_pixels_option(dataset_dir: Path) -> None:
    code, out, _ = _cli(["detect", dataset_dir / "img1.jpg", "--max-pixels", 1000, "--no-progress"])
    assert code == 1 and "over the decoding limit of 1000 pixels" in json.loads(out)["error"]
    assert get_image_limits().max_pixels != 1000  # the option lasts for its run only
