"""Every input kind, good and bad: what the caller gets back, or which exception names which image.

The edge-case files (truncated JPEG and PNG, zero-byte file, text file, 16-bit and BGRA PNGs, EXIF-rotated JPEGs,
...) are generated here into a temporary folder from a real photo; URLs are served by a local HTTP server.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.errors import (
    DeepbatchError,
    ImageDecodeError,
    ImageError,
    ImageFormatError,
    ImageNotFoundError,
    ImageReadError,
)
from deepbatch.io.images import as_batch, jpeg_is_truncated, load_image

BASE_SIZE = (90, 120)  # (width, height) of the generated test image: small, and not square so rotations show
LARGE_SIZE = (12000, 9000)  # (width, height): a 108-megapixel photo
UPRIGHT_EYE_SLOPE = 0.25  # |dy / dx| between the eyes of an upright face; a face on its side is far above this
UINT16_TO_UINT8_ERROR = 1  # 16-bit values are rounded to the nearest 8-bit value


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def decode_plain(data: bytes) -> np.ndarray:
    """The stored pixels of an encoded image, EXIF orientation ignored."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def _ifd(entries: list, next_offset: int = 0) -> bytes:
    """A big-endian TIFF IFD of (tag, type, count, value) entries whose values fit in four bytes."""
    body = b"".join(
        struct.pack(">HHI", tag, kind, count)
        + (struct.pack(">HH", value, 0) if kind == 3 else struct.pack(">I", value))  # SHORT values are left-aligned
        for tag, kind, count, value in entries
    )
    return struct.pack(">H", len(entries)) + body + struct.pack(">I", next_offset)


def with_exif(data: bytes, orientation: int = 1, thumbnail: bytes = b"") -> bytes:
    """``data`` (a JPEG) with an EXIF APP1 segment: an Orientation tag and optionally an embedded JPEG thumbnail."""
    ifd0 = _ifd([(0x0112, 3, 1, orientation)], next_offset=0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    if thumbnail:
        ifd1_offset = 8 + len(ifd0)
        ifd0 = _ifd([(0x0112, 3, 1, orientation)], next_offset=ifd1_offset)
        thumb_offset = ifd1_offset + 2 + 2 * 12 + 4
        ifd1 = _ifd([(0x0201, 4, 1, thumb_offset), (0x0202, 4, 1, len(thumbnail))])
        tiff += ifd0 + ifd1 + thumbnail
    else:
        tiff += ifd0
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (its pixel data is a stub)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@dataclass
class Assets:
    """Generated edge-case inputs: ``image`` is the BGR photo they are made from, ``folder`` holds the files."""

    folder: Path
    image: np.ndarray
    url: str

    def path(self, name: str) -> str:
        return str(self.folder / name)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class names it so)
        return None


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Iterator[Assets]:
    folder = tmp_path_factory.mktemp("inputs")
    image = cv2.resize(cv2.imread(str(dataset_dir / "img1.jpg")), BASE_SIZE, interpolation=cv2.INTER_AREA)
    encoded = jpeg(image)
    files: Dict[str, bytes] = {
        "face.jpg": encoded,
        "face.png": png(image),
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a photo\n" * 20,
        "truncated.jpg": encoded[: len(encoded) // 2],
        "no_end_marker.jpg": encoded[:-2],
        "truncated.png": png(image)[: len(png(image)) // 2],
        "garbage_after_header.jpg": encoded[:200] + bytes(range(256)) * 4 + b"\xff\xd9",
        "huge_header.png": png_header_only(40000, 30000),
        "gray.png": png(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)),
        "bgra.png": png(np.dstack([image, np.full(image.shape[:2], 128, np.uint8)])),
        "deep.png": png(image.astype(np.uint16) * 257),
        "motion_photo.jpg": encoded + np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes(),
        "thumbnail_truncated.jpg": with_exif(encoded, thumbnail=jpeg(image[::4, ::4]))[: len(encoded) // 2 + 2000],
    }
    for orientation in (2, 3, 6, 8):
        files[f"exif_{orientation}.jpg"] = with_exif(encoded, orientation)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "album").mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    os.environ["DEEPBATCH_ALLOW_PRIVATE_URLS"] = "1"  # the test server is on this machine
    yield Assets(folder, image, f"http://127.0.0.1:{server.server_address[1]}")
    os.environ.pop("DEEPBATCH_ALLOW_PRIVATE_URLS", None)
    server.shutdown()
    server.server_close()
    thread.join()


# Inputs that cannot be used: (builder, exception type, fragment of its message). Builders take the Assets.
Builder = Callable[[Assets], Any]
BAD_INPUTS = [
    pytest.param(lambda a: a.path("missing.jpg"), ImageNotFoundError, "does not exist", id="missing-file"),
    pytest.param(lambda a: "", ImageNotFoundError, "empty string", id="empty-path"),
    pytest.param(lambda a: a.path("album"), ImageReadError, "is a directory", id="directory"),
    pytest.param(lambda a: "x" * 5000 + ".jpg", ImageReadError, "too long", id="path-too-long"),
    pytest.param(lambda a: a.path("empty.jpg"), ImageDecodeError, "0 bytes", id="zero-byte-file"),
    pytest.param(lambda a: a.path("notes.jpg"), ImageDecodeError, "not a readable image", id="text-file"),
    pytest.param(lambda a: a.path("truncated.jpg"), ImageDecodeError, "JPEG is truncated", id="truncated-jpeg"),
    pytest.param(lambda a: a.path("no_end_marker.jpg"), ImageDecodeError, "JPEG is truncated",
                 id="jpeg-without-end-marker"),
    pytest.param(lambda a: a.path("thumbnail_truncated.jpg"), ImageDecodeError, "JPEG is truncated",
                 id="truncated-jpeg-with-exif-thumbnail"),
    pytest.param(lambda a: a.path("garbage_after_header.jpg"), ImageDecodeError, "not a readable image",
                 id="corrupt-jpeg"),
    pytest.param(lambda a: a.path("truncated.png"), ImageDecodeError, "PNG is truncated", id="truncated-png"),
    pytest.param(lambda a: a.path("huge_header.png"), ImageDecodeError, "decoding limit", id="over-pixel-limit"),
    pytest.param(lambda a: b"", ImageDecodeError, "0 bytes", id="empty-bytes"),
    pytest.param(lambda a: b"\x00\x01 definitely not an image", ImageDecodeError, "not a readable image",
                 id="random-bytes"),
    pytest.param(lambda a: "data:image/jpeg;base64,@@not base64@@", ImageDecodeError, "invalid base64",
                 id="invalid-base64"),
    pytest.param(lambda a: "data:image/jpeg,plain-text-payload", ImageDecodeError, "format error in base64",
                 id="data-uri-not-base64"),
    pytest.param(lambda a: "data:image/jpeg;base64", ImageDecodeError, "format error in base64",
                 id="data-uri-without-comma"),
    pytest.param(lambda a: "http://127.0.0.1:1/face.jpg", ImageReadError, "could not fetch URL", id="url-offline"),
    pytest.param(lambda a: f"{a.url}/absent.jpg", ImageReadError, "HTTP 404", id="url-not-found"),
    pytest.param(lambda a: f"{a.url}/notes.jpg", ImageDecodeError, "not a readable image", id="url-not-an-image"),
    pytest.param(lambda a: io.StringIO("text"), ImageFormatError, "text mode", id="text-file-object"),
    pytest.param(lambda a: _closed_file(a), ImageReadError, "closed file", id="closed-file-object"),
    pytest.param(lambda a: None, ImageFormatError, "None", id="none"),
    pytest.param(lambda a: 42, ImageFormatError, "unsupported input type int", id="int"),
    pytest.param(lambda a: {"img": a.path("face.jpg")}, ImageFormatError, "unsupported input type dict", id="dict"),
    pytest.param(lambda a: np.zeros((0, 8, 3), np.uint8), ImageFormatError, "zero size", id="zero-size-array"),
    pytest.param(lambda a: np.zeros(8, np.uint8), ImageFormatError, "got shape (8,)", id="1-d-array"),
    pytest.param(lambda a: np.zeros((8, 8, 2), np.uint8), ImageFormatError, "got shape (8, 8, 2)",
                 id="two-channel-array"),
    pytest.param(lambda a: np.zeros((3, 40, 50), np.uint8), ImageFormatError, "transpose(1, 2, 0)",
                 id="channels-first-array"),
    pytest.param(lambda a: np.zeros((1, 40, 50, 3), np.uint8), ImageFormatError, "4-D array is a batch",
                 id="batch-array-as-one-image"),
    pytest.param(lambda a: np.full((8, 8, 3), np.nan, np.float32), ImageFormatError, "NaN", id="float-nan"),
    pytest.param(lambda a: np.full((8, 8, 3), np.inf, np.float64), ImageFormatError, "NaN or infinite",
                 id="float-inf"),
    pytest.param(lambda a: np.full((8, 8, 3), -0.5, np.float32), ImageFormatError, "[0, 1] or [0, 255]",
                 id="float-negative"),
    pytest.param(lambda a: np.full((8, 8, 3), 300.0, np.float32), ImageFormatError, "[0, 1] or [0, 255]",
                 id="float-above-255"),
    pytest.param(lambda a: np.full((8, 8, 3), 1000, np.int32), ImageFormatError, "[0, 255]", id="int32-above-255"),
    pytest.param(lambda a: np.full((8, 8, 3), -1, np.int8), ImageFormatError, "[0, 255]", id="int8-negative"),
    pytest.param(lambda a: np.zeros((8, 8, 3), np.complex64), ImageFormatError, "unsupported dtype",
                 id="complex-dtype"),
    pytest.param(lambda a: np.zeros((8, 8, 3), object), ImageFormatError, "unsupported dtype", id="object-dtype"),
]


def _closed_file(assets: Assets) -> Any:
    handle = open(assets.path("face.jpg"), "rb")  # noqa: SIM115  (closed on purpose)
    handle.close()
    return handle


# Inputs that are converted: (builder of the input, builder of the expected HxWx3 uint8 BGR array).
CONVERTED_INPUTS = [
    pytest.param(lambda a: a.path("face.jpg"), lambda a: decode_plain(jpeg(a.image)), id="jpeg-path"),
    pytest.param(lambda a: Path(a.path("face.jpg")), lambda a: decode_plain(jpeg(a.image)), id="pathlib-path"),
    pytest.param(lambda a: a.path("face.png"), lambda a: a.image, id="png-path"),
    pytest.param(lambda a: jpeg(a.image), lambda a: decode_plain(jpeg(a.image)), id="bytes"),
    pytest.param(lambda a: bytearray(png(a.image)), lambda a: a.image, id="bytearray"),
    pytest.param(lambda a: memoryview(png(a.image)), lambda a: a.image, id="memoryview"),
    pytest.param(lambda a: io.BytesIO(png(a.image)), lambda a: a.image, id="binary-file-object"),
    pytest.param(lambda a: "data:image/png;base64," + base64.b64encode(png(a.image)).decode(), lambda a: a.image,
                 id="data-uri"),
    pytest.param(lambda a: "data:image/png;base64," + base64.encodebytes(png(a.image)).decode().replace("=", ""),
                 lambda a: a.image, id="data-uri-with-line-breaks-and-no-padding"),
    pytest.param(lambda a: "data:image/png," + base64.b64encode(png(a.image)).decode(), lambda a: a.image,
                 id="data-uri-without-base64-marker"),  # accepted by DeepFace, which always decodes base64
    pytest.param(lambda a: f"{a.url}/face.png", lambda a: a.image, id="url"),
    pytest.param(lambda a: a.path("motion_photo.jpg"), lambda a: decode_plain(jpeg(a.image)),
                 id="jpeg-with-trailing-video-data"),
    pytest.param(lambda a: a.path("gray.png"), lambda a: cv2.cvtColor(cv2.cvtColor(a.image, cv2.COLOR_BGR2GRAY),
                                                                      cv2.COLOR_GRAY2BGR), id="grayscale-png"),
    pytest.param(lambda a: a.path("bgra.png"), lambda a: a.image, id="bgra-png-alpha-dropped"),
    pytest.param(lambda a: a.path("exif_2.jpg"), lambda a: cv2.flip(decode_plain(jpeg(a.image)), 1),
                 id="exif-orientation-2-mirrored"),
    pytest.param(lambda a: a.path("exif_3.jpg"), lambda a: cv2.rotate(decode_plain(jpeg(a.image)), cv2.ROTATE_180),
                 id="exif-orientation-3-upside-down"),
    pytest.param(lambda a: a.path("exif_6.jpg"),
                 lambda a: cv2.rotate(decode_plain(jpeg(a.image)), cv2.ROTATE_90_CLOCKWISE),
                 id="exif-orientation-6-turned-right"),
    pytest.param(lambda a: a.path("exif_8.jpg"),
                 lambda a: cv2.rotate(decode_plain(jpeg(a.image)), cv2.ROTATE_90_COUNTERCLOCKWISE),
                 id="exif-orientation-8-turned-left"),
    pytest.param(lambda a: a.image, lambda a: a.image, id="uint8-bgr-array"),
    pytest.param(lambda a: a.image[:, ::-1], lambda a: a.image[:, ::-1], id="non-contiguous-array"),
    pytest.param(lambda a: a.image[:, :, 0], lambda a: np.repeat(a.image[:, :, :1], 3, axis=2), id="2-d-grayscale"),
    pytest.param(lambda a: a.image[:, :, :1], lambda a: np.repeat(a.image[:, :, :1], 3, axis=2), id="hxwx1-grayscale"),
    pytest.param(lambda a: np.dstack([a.image, np.zeros(a.image.shape[:2], np.uint8)]), lambda a: a.image,
                 id="bgra-array"),
    pytest.param(lambda a: a.image.astype(np.float32) / 255.0, lambda a: a.image, id="float32-0-to-1"),
    pytest.param(lambda a: a.image.astype(np.float64), lambda a: a.image, id="float64-0-to-255"),
    pytest.param(lambda a: a.image.astype(np.float16), lambda a: a.image, id="float16-0-to-255"),
    pytest.param(lambda a: a.image.astype(np.int64), lambda a: a.image, id="int64-0-to-255"),
    pytest.param(lambda a: a.image.astype(np.uint16) * 257, lambda a: a.image, id="uint16-full-range"),
    pytest.param(lambda a: np.eye(4, dtype=bool), lambda a: np.repeat(np.eye(4, dtype=np.uint8)[:, :, None] * 255,
                                                                     3, axis=2), id="bool-mask"),
    pytest.param(lambda a: np.full((1, 1, 3), 7, np.uint8), lambda a: np.full((1, 1, 3), 7, np.uint8),
                 id="1x1-array"),
]


@pytest.mark.parametrize("build, error, fragment", BAD_INPUTS)
def test_bad_input_raises_typed_error(assets: Assets, build: Builder, error: type, fragment: str) -> None:
    with pytest.raises(error, match=re.escape(fragment)):
        load_image(build(assets))


@pytest.mark.parametrize("build, error, fragment", BAD_INPUTS)
def test_bad_input_in_a_batch_is_named_by_index(assets: Assets, build: Builder, error: type, fragment: str) -> None:
    with pytest.raises(error) as caught:
        deepbatch.extract_faces([assets.image, build(assets)], detector_backend="skip")
    assert caught.value.index == 1
    assert str(caught.value).startswith("image 1")


@pytest.mark.parametrize("build, expected", CONVERTED_INPUTS)
def test_convertible_input_becomes_bgr_uint8(assets: Assets, build: Builder, expected: Builder) -> None:
    image = load_image(build(assets))
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, expected(assets))


def test_sixteen_bit_png_is_scaled_to_eight_bits(assets: Assets) -> None:
    image = load_image(assets.path("deep.png"))
    assert image.dtype == np.uint8
    assert np.abs(image.astype(int) - assets.image.astype(int)).max() <= UINT16_TO_UINT8_ERROR


@pytest.mark.parametrize("error", [ImageNotFoundError, ImageReadError, ImageDecodeError, ImageFormatError])
def test_image_errors_are_value_errors_for_deepface_callers(error: type) -> None:
    assert issubclass(error, ImageError) and issubclass(error, DeepbatchError) and issubclass(error, ValueError)


def test_missing_file_is_also_a_file_not_found_error(assets: Assets) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(assets.path("missing.jpg"))


def test_error_names_the_path(assets: Assets) -> None:
    path = assets.path("truncated.jpg")
    with pytest.raises(ImageDecodeError) as caught:
        deepbatch.extract_faces([path], detector_backend="skip")
    assert caught.value.source == path and path in str(caught.value)


def test_single_image_error_has_no_index(assets: Assets) -> None:
    with pytest.raises(ImageNotFoundError) as caught:
        deepbatch.extract_faces(assets.path("missing.jpg"), detector_backend="skip")
    assert caught.value.index is None
    assert str(caught.value).startswith(assets.path("missing.jpg"))


def test_long_base64_input_is_shortened_in_messages(assets: Assets) -> None:
    uri = "data:image/jpeg;base64," + "A" * 10_001
    with pytest.raises(ImageDecodeError) as caught:
        load_image(uri)
    assert len(str(caught.value)) < 300


def test_empty_list_gives_empty_result() -> None:
    assert deepbatch.extract_faces([], detector_backend="skip") == []


def test_empty_4d_array_gives_empty_result() -> None:
    assert deepbatch.extract_faces(np.zeros((0, 16, 16, 3), np.uint8), detector_backend="skip") == []


def test_4d_array_with_wrong_last_axis_raises() -> None:
    with pytest.raises(ImageFormatError, match=re.escape("transpose(0, 2, 3, 1)")):
        as_batch(np.zeros((2, 3, 32, 32), np.uint8))


def test_none_in_a_list_is_named_by_index(assets: Assets) -> None:
    with pytest.raises(ImageFormatError, match="^image 2: got None"):
        deepbatch.extract_faces([assets.image, assets.image, None], detector_backend="skip")


def test_detector_rejects_a_path_in_its_array_list(assets: Assets) -> None:
    detector = deepbatch.build_detector("skip")
    with pytest.raises(ImageFormatError, match="^image 1: expected a numpy array, got str"):
        detector.detect_faces([assets.image, assets.path("face.jpg")])


def test_jpeg_truncation_check_skips_the_thumbnail_end_marker(assets: Assets) -> None:
    data = Path(assets.path("thumbnail_truncated.jpg")).read_bytes()
    assert b"\xff\xd9" in data  # the thumbnail's end marker is there, the photo's is not
    assert jpeg_is_truncated(data)


def test_exif_rotated_photo_is_detected_upright(dataset_dir: Path, tmp_path: Path) -> None:
    photo = cv2.imread(str(dataset_dir / "img1.jpg"))
    stored_sideways = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)  # a camera held on its side stores this
    path = tmp_path / "sideways.jpg"
    path.write_bytes(with_exif(jpeg(stored_sideways), orientation=6))  # 6: turn right 90 degrees to display
    faces = deepbatch.extract_faces(str(path), detector_backend="scrfd")
    (left_x, left_y), (right_x, right_y) = faces[0]["facial_area"]["left_eye"], faces[0]["facial_area"]["right_eye"]
    assert abs(left_y - right_y) < UPRIGHT_EYE_SLOPE * abs(left_x - right_x)


@pytest.fixture(scope="module")
def large_photo(dataset_dir: Path) -> np.ndarray:
    """couple.jpg enlarged to 12000x9000 (two faces of about 3700 pixels)."""
    return cv2.resize(cv2.imread(str(dataset_dir / "couple.jpg")), LARGE_SIZE, interpolation=cv2.INTER_LINEAR)


def test_very_large_jpeg_file_is_detected(large_photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    path.write_bytes(jpeg(large_photo, quality=80))
    faces = deepbatch.extract_faces(str(path), detector_backend="scrfd")
    assert len(faces) == 2


def test_very_large_array_is_detected_by_opencv_within_its_pixel_budget(large_photo: np.ndarray) -> None:
    faces = deepbatch.build_detector("opencv").detect_faces([large_photo])[0]
    assert len(faces) == 2
    assert np.all(faces.boxes[:, 2:] <= np.array(LARGE_SIZE, np.float32))
