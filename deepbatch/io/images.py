"""Loading and validating images.

Accepted for one image: a path (``str`` or ``os.PathLike``), an ``http(s)://`` URL, a ``data:image/...;base64,``
URI, raw encoded bytes, a binary file object, or a numpy array. Everything becomes a C-contiguous HxWx3 uint8 BGR
array; conversions that have one sensible meaning are done, everything else raises a subclass of
:class:`~deepbatch.errors.ImageError` that names the image (its index in the batch and its path or kind):

* 2-D or HxWx1 grayscale is replicated to three channels; HxWx4 is taken as BGRA and the alpha channel is dropped
  (transparent pixels keep their colour values, as ``cv2.imread`` does);
* uint16 is scaled by 255/65535 (16-bit PNG and TIFF); float images in [0, 1] are scaled by 255, other float images
  must lie in [0, 255] (so an image whose values all lie in [0, 1] is always read as a [0, 1] image); other integer
  types must lie in [0, 255]; bool becomes 0/255;
* encoded files are decoded with their EXIF orientation applied, keeping 16-bit depth for the scaling above.

A truncated JPEG or PNG, an empty file, a non-image file, a directory, invalid base64, NaN pixels, a zero-sized
array, a channel count other than 1, 3 or 4, or ``None`` raise.

Encoded inputs are untrusted and bounded by :class:`ImageLimits` (:func:`set_image_limits` changes them): the first
bytes must be an image signature before the rest is read; the width x height the header declares must be at most
``max_pixels`` (200 million) before anything is decoded; a file, file object, data URI or URL body may hold at most
``max_bytes`` (256 MiB); a URL must arrive whole within ``url_deadline_s`` (60 s) and may redirect to http(s) only.
A URL may reach only global addresses: every connection, the first and each redirect's, is refused when its host
resolves to a loopback, private, link-local, shared, unspecified, multicast or reserved address (IPv4-mapped and
6to4 IPv6 forms included), unless ``allow_private_urls`` (or ``$DEEPBATCH_ALLOW_PRIVATE_URLS=1``) allows them; the
connection goes to the very address that was checked, so a name cannot resolve one way for the check and another
for the connection.
Formats whose header is not parsed here (EXR, HDR, AVIF) are bounded by OpenCV's own limit (2^30 pixels). Arrays
already in memory have no size limit. Running out of memory while decoding raises ``MemoryError``, not an
:class:`ImageError`, so ``on_error="skip"`` never drops a valid photo as corrupt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import io
import ipaddress
import logging
import os
import re
import socket
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import ArgumentError, ImageDecodeError, ImageError, ImageFormatError, ImageNotFoundError, ImageReadError
from ..native_stderr import STDERR
from .headers import HEAD_BYTES, declared_size, sniff

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm")
URL_TIMEOUT_S = 20.0  # the longest wait for any one network operation of a URL fetch
_READ_CHUNK = 1 << 20
_NOT_AN_IMAGE = "Failed to decode image: not a readable image (its first bytes match no image format OpenCV decodes)"
_SHOWN_CHARS = 120  # how much of a long string input an error message repeats

_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # markers without a length field
_JPEG_FILL = re.compile(rb"\xff+")
_JPEG_MAX_SEGMENTS = 4096  # a real JPEG has a few dozen segments before its first scan


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one encoded input (file, bytes, file object, URL or data URI); arrays in memory are not bounded.

    ``max_pixels``: width x height declared by the header, checked before decoding; ``max_bytes``: size of the
    encoded data; ``url_deadline_s``: total time for one URL, connection and body together; ``allow_private_urls``:
    let URLs reach loopback, private and other non-global addresses (off: a service fetching URLs for others must
    not be turned against its own network; ``$DEEPBATCH_ALLOW_PRIVATE_URLS=1`` turns it on too);
    ``max_pixels_in_flight``: the pixels of all the images a stream decodes at once, across its prefetch threads
    (an image larger than it is decoded alone; see :func:`declared_pixels`).
    """

    max_pixels: int = 200_000_000  # a 200-megapixel phone photo (16320x12240) fits
    max_bytes: int = 256 << 20
    url_deadline_s: float = 60.0
    allow_private_urls: bool = False
    max_pixels_in_flight: int = 256_000_000  # 768 MB of BGR pixels: one 200-megapixel photo runs with nothing else


_limits = ImageLimits()


def get_image_limits() -> ImageLimits:
    """The limits applied to every encoded input of this process."""
    return _limits


def set_image_limits(max_pixels: Optional[int] = None, max_bytes: Optional[int] = None,
                     url_deadline_s: Optional[float] = None, allow_private_urls: Optional[bool] = None,
                     max_pixels_in_flight: Optional[int] = None) -> ImageLimits:
    """Change the limits for the whole process (the arguments left ``None`` keep their value); returns the previous
    limits, which can be restored with ``set_image_limits(**dataclasses.asdict(previous))``."""
    global _limits
    changes: Dict[str, Any] = {k: v for k, v in dict(max_pixels=max_pixels, max_bytes=max_bytes,
                                     url_deadline_s=url_deadline_s,
                                     max_pixels_in_flight=max_pixels_in_flight).items() if v is not None}
    for name, value in changes.items():
        if not value > 0:
            raise ArgumentError(f"{name} must be positive, got {value!r}")
    if allow_private_urls is not None:
        if not isinstance(allow_private_urls, bool):
            raise ArgumentError(f"allow_private_urls must be True or False, got {allow_private_urls!r}")
        changes["allow_private_urls"] = allow_private_urls
    previous, _limits = _limits, replace(_limits, **changes)
    return previous


def describe(item: Any) -> Optional[str]:
    """A short name for an input in error messages: its path or URL (shortened when long), else its kind."""
    if isinstance(item, os.PathLike):
        item = os.fsdecode(item)
    if isinstance(item, str):
        if item[:5].lower() == "data:":
            header, comma, _ = item.partition(",")
            return f"{header[:_SHOWN_CHARS]}{comma}... ({len(item)} characters)"
        return item if len(item) <= _SHOWN_CHARS else f"{item[:_SHOWN_CHARS]}... ({len(item)} characters)"
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape} and dtype {item.dtype}"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"{type(item).__name__} ({len(item)} bytes)"
    if item is None:
        return None
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else type(item).__name__


def to_bgr(array: np.ndarray, index: Optional[int] = None, source: Optional[str] = None) -> np.ndarray:
    """``array`` as a C-contiguous HxWx3 uint8 BGR image (see the module doc for the conversions).

    Raises :class:`ImageFormatError` naming ``index``/``source`` when the array cannot be converted.
    """
    if not isinstance(array, np.ndarray):
        kind = "None" if array is None else type(array).__name__
        raise ImageFormatError(f"expected a numpy array, got {kind}", index, source)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageFormatError(
            f"expected an HxW grayscale or HxWx3 (BGR) / HxWx4 (BGRA) image, got shape {array.shape}"
            f"{_layout_hint(array.shape)}", index, source
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"image has zero size (shape {array.shape})", index, source)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    array = _to_uint8(array, index, source)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def _layout_hint(shape: Tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[0] in (1, 3, 4):
        return "; a channels-first (C, H, W) array needs array.transpose(1, 2, 0)"
    if len(shape) == 4:
        return "; a 4-D array is a batch: pass it as the whole input, not as one image"
    return ""


def _to_uint8(array: np.ndarray, index: Optional[int], source: Optional[str]) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype == np.uint16:
        return (array.astype(np.float32) * np.float32(255.0 / 65535.0) + np.float32(0.5)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageFormatError("float image contains NaN or infinite values", index, source)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 255.0:
            raise ImageFormatError(
                f"float image values must lie in [0, 1] or [0, 255], got [{low:g}, {high:g}]; rescale it first",
                index, source,
            )
        scale = np.float32(255.0 if high <= 1.0 else 1.0)
        return (array.astype(np.float32) * scale + np.float32(0.5)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageFormatError(
                f"{array.dtype} image values must lie in [0, 255], got [{low}, {high}]; convert it to uint8 (or "
                "uint16 for 16-bit data) first", index, source,
            )
        return array.astype(np.uint8)
    raise ImageFormatError(
        f"unsupported dtype {array.dtype}; use uint8, uint16, another integer type in [0, 255], float or bool",
        index, source,
    )


def jpeg_is_truncated(data: bytes) -> bool:
    """True when a JPEG stream ends before its end-of-image marker.

    The marker segments are walked to the first start-of-scan (so thumbnails inside EXIF data, which carry their
    own end markers, are skipped), then the end marker is searched for in the compressed data, where it cannot occur
    by accident (0xFF is always escaped there). Data after the end marker (e.g. a motion photo's video) is allowed.
    A header this walk cannot follow is left for the decoder to judge. Runs of fill bytes are skipped in one step and
    the walk stops after a bounded number of segments, so the check costs no more than a search through the bytes.
    """
    pos, size = 2, len(data)
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 4 > size:
            return True
        if data[pos] != 0xFF:
            return False
        fill = _JPEG_FILL.match(data, pos)
        pos = fill.end() - 1 if fill else pos  # the last 0xFF of a run of fill bytes starts the marker
        if pos + 4 > size:
            return True
        marker = data[pos + 1]
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == _JPEG_EOI[1]:
            return False
        segment_end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == _JPEG_SOS:
            return data.find(_JPEG_EOI, segment_end) < 0
        pos = segment_end
    return False


def decode(data: bytes, index: Optional[int] = None, source: Optional[str] = None,
           limits: Optional[ImageLimits] = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, TIFF, ...) to HxWx3 uint8 BGR, EXIF orientation applied.

    The format is recognised from its signature and the declared size is checked against ``limits.max_pixels``
    before anything is decoded. Running out of memory while decoding raises ``MemoryError``, not an image error.
    """
    import cv2

    limits = limits or get_image_limits()
    if not data:
        raise ImageDecodeError("no image data (0 bytes)", index, source)
    if len(data) > limits.max_bytes:
        raise ImageReadError(_too_many_bytes(len(data), limits), index, source)
    kind = sniff(data[:32])
    if kind is None:
        raise ImageDecodeError(_NOT_AN_IMAGE, index, source)
    _check_declared_size(data, kind, limits, index, source)
    if kind == "jpeg" and jpeg_is_truncated(data):
        raise ImageDecodeError("JPEG is truncated (it ends before its end-of-image marker)", index, source)
    # IMREAD_COLOR gives 3 channels and applies the EXIF orientation; ANYDEPTH keeps 16-bit data for to_bgr to scale.
    try:
        image, said = _imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, kind)
    except cv2.error as exc:
        if "Insufficient memory" in str(exc) or "Failed to allocate" in str(exc):
            raise MemoryError(f"out of memory while decoding {source or 'an image'}") from exc
        raise ImageDecodeError(_opencv_problem(exc), index, source) from exc
    if image is None:
        if kind == "png" and b"IEND" not in data[-64:]:
            raise ImageDecodeError("PNG is truncated (it ends before its IEND chunk)", index, source)
        raise ImageDecodeError(f"Failed to decode image: not a readable image (a corrupt or truncated {kind} file"
                               + (f"; libjpeg: {said}" if said else "") + ")", index, source)
    _warn_damaged(said, index, source)
    return to_bgr(image, index, source)


# libjpeg's warnings (JWRN_* of libjpeg-turbo's jerror.h): printed to stderr by the library for a damaged file that
# it still decodes, and taken from there to be said about the input they concern.
LIBJPEG_WARNINGS = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Warning: unknown JFIF revision|"
    r"Warning: thumbnail image size|Inconsistent progression sequence|Application transferred too many scanlines|"
    r"Arithmetic table 0x)"
)


def _imdecode(data: bytes, flag: int, kind: Optional[str]) -> Tuple[Optional[np.ndarray], str]:
    """``cv2.imdecode`` and, for a JPEG, what libjpeg printed while decoding it (empty when nothing).

    Decodes run on several threads at once; in the rare case that libjpeg spoke while another decode ran too, the
    image is decoded again alone, so that the words are surely its own (see :mod:`deepbatch.native_stderr`).
    """
    import cv2

    buffer = np.frombuffer(data, np.uint8)
    if kind != "jpeg":
        return cv2.imdecode(buffer, flag), ""
    with STDERR.shared(LIBJPEG_WARNINGS) as said:
        image = cv2.imdecode(buffer, flag)
    if not said.certain:
        with STDERR.exclusive(LIBJPEG_WARNINGS) as said:
            image = cv2.imdecode(buffer, flag)
    return image, said.text


def _warn_damaged(said: str, index: Optional[int], source: Optional[str]) -> None:
    """Log, naming the input, what libjpeg said about a file it decoded all the same."""
    if said:
        where = source or (f"image {index}" if index is not None else "an image")
        logger.warning("%s: decoded, but libjpeg says: %s", where, said)


def _check_declared_size(data: bytes, kind: str, limits: ImageLimits, index: Optional[int],
                         source: Optional[str]) -> None:
    size = declared_size(data, kind)
    if size is not None and size[0] * size[1] > limits.max_pixels:
        width, height = size
        raise ImageDecodeError(
            f"image declares {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the decoding limit of "
            f"{limits.max_pixels} pixels; if the file is trusted, raise the limit with "
            "deepbatch.io.images.set_image_limits(max_pixels=...) or the command line's --max-pixels",
            index, source,
        )


def _too_many_bytes(size: int, limits: ImageLimits) -> str:
    return (f"{size} bytes, over the limit of {limits.max_bytes} bytes for one image; if the input is trusted, raise "
            "it with deepbatch.io.images.set_image_limits(max_bytes=...) or the command line's --max-bytes")


def _opencv_problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "MAX_IMAGE_PIXELS" in text or "MAX_IMAGE_WIDTH" in text or "MAX_IMAGE_HEIGHT" in text:
        return ("image is larger than OpenCV's decoding limit (2^30 pixels by default); downscale the file, or raise "
                "the limit with the environment variable OPENCV_IO_MAX_IMAGE_PIXELS before the program starts")
    return f"OpenCV could not decode it ({text})"


def _read_path(text: str, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    if not text:
        raise ImageNotFoundError("an empty string was given as the image path", index, "''")
    path = Path(os.path.expanduser(text))
    missing = f"Confirm that {text} exists: the file does not exist (working directory: {os.getcwd()})"
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except ValueError:  # an embedded NUL character: no such file can exist
        info = None
    except OSError as exc:
        raise ImageReadError(f"cannot be read: {exc.strerror or exc}", index, source) from exc
    if info is None:
        raise ImageNotFoundError(missing, index, source)
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(
            "is a directory, not an image file; list its images with deepbatch.io.images.list_image_files(folder)",
            index, source,
        )
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError("is not a regular file (a device, pipe or socket)", index, source)
    if info.st_size > limits.max_bytes:
        raise ImageReadError("file is " + _too_many_bytes(info.st_size, limits), index, source)
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) == 32 and sniff(head) is None:  # refused before the rest is read
                raise ImageDecodeError(_NOT_AN_IMAGE, index, source)
            f.seek(0)
            data = f.read(info.st_size + 1)  # one buffer of the measured size: no second copy of a large file
            if len(data) > info.st_size:  # the file grew after it was measured
                data += f.read(limits.max_bytes + 1 - len(data))
    except OSError as exc:
        raise ImageReadError(f"cannot be read: {exc.strerror or exc}", index, source) from exc
    if len(data) > limits.max_bytes:
        raise ImageReadError("file holds at least " + _too_many_bytes(len(data), limits), index, source)
    return data


def _read_bounded(read: Any, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    """All bytes ``read(n)`` gives until it returns empty, refusing data whose first bytes are no image format or
    more than ``limits.max_bytes``."""
    parts: List[bytes] = []
    total = 0
    while True:
        block = read(HEAD_BYTES if not parts else _READ_CHUNK)
        if isinstance(block, str):
            raise ImageFormatError("file object is open in text mode; open it with mode 'rb'", index, source)
        if not isinstance(block, (bytes, bytearray, memoryview)):
            raise ImageFormatError(f"file object's read() returned {type(block).__name__}, not bytes", index, source)
        if not block:
            break
        if not parts and sniff(bytes(block[:32])) is None and len(block) >= 32:
            raise ImageDecodeError(_NOT_AN_IMAGE, index, source)
        total += len(block)
        if total > limits.max_bytes:
            raise ImageReadError("at least " + _too_many_bytes(total, limits), index, source)
        parts.append(bytes(block))
    return b"".join(parts)


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib also follows ``ftp://``)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a {scheme or 'relative'} URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """Closes every connection of one URL fetch when its time is up, so that no wait (connecting, headers or body,
    however slowly a server trickles bytes) outlasts the fetch's total deadline."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv at once
                except OSError:
                    pass

    def opener(self, guard: Optional[Callable[[str, Tuple[str, int], Any], socket.socket]] = None,
               ) -> urllib.request.OpenerDirector:
        """A urllib opener whose connections this deadline watches, following http(s) redirects only; ``guard``
        (``guard(url, (host, port), timeout) -> socket``) opens every connection, the redirects' included."""
        deadline = self

        def connector(url: str) -> Any:
            if guard is None:
                return socket.create_connection
            return lambda address, timeout=None, source_address=None: guard(url, address, timeout)

        class Connection(http.client.HTTPConnection):
            def __init__(self, *args: Any, url: str = "", **kwargs: Any):
                super().__init__(*args, **kwargs)
                self._create_connection = connector(url)

            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class SecureConnection(http.client.HTTPSConnection):
            def __init__(self, *args: Any, url: str = "", **kwargs: Any):
                super().__init__(*args, **kwargs)
                self._create_connection = connector(url)

            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class Handler(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(functools.partial(Connection, url=req.full_url), req)

        class SecureHandler(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                return self.do_open(functools.partial(SecureConnection, url=req.full_url), req,
                                    context=getattr(self, "_context", None))

        return urllib.request.build_opener(Handler, SecureHandler, _WebRedirects)


PRIVATE_URLS_ENV = "DEEPBATCH_ALLOW_PRIVATE_URLS"


def private_urls_allowed(limits: ImageLimits) -> bool:
    """Whether URLs may reach non-global addresses: ``limits.allow_private_urls`` or
    ``$DEEPBATCH_ALLOW_PRIVATE_URLS=1``."""
    return limits.allow_private_urls or os.environ.get(PRIVATE_URLS_ENV, "").strip() == "1"


def non_global_reason(address: str) -> Optional[str]:
    """Why ``address`` (an IP address as text) is not a public internet address, or None when it is one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = non_global_reason(str(embedded))
            return f"{inner} inside an IPv6 address" if inner else None
    for name, flag in (("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local),
                       ("an unspecified", ip.is_unspecified), ("a multicast", ip.is_multicast),
                       ("a reserved", ip.is_reserved), ("a private", ip.is_private)):
        if flag:
            return f"{name} address"
    return None if ip.is_global else "a non-global address"


def _url_guard(index: Optional[int], source: Optional[str]) -> Callable[[str, Tuple[str, int], Any], socket.socket]:
    """Opens a connection for a URL fetch only to global addresses (see :func:`non_global_reason`), connecting to the
    address it checked; a refusal is an :class:`ImageReadError` naming the URL and the hop that was refused."""

    def connect(url: str, address: Tuple[str, int], timeout: Any) -> socket.socket:
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from exc
        hop = "" if describe(url) == source else f" (redirected to {describe(url)})"
        for *_, sockaddr in infos:
            reason = non_global_reason(str(sockaddr[0]))
            if reason is not None:
                raise ImageReadError(
                    f"refused to fetch URL{hop}: {host} is {reason} ({sockaddr[0]}), and URLs may reach only public "
                    f"addresses; allow them with set_image_limits(allow_private_urls=True) or "
                    f"{PRIVATE_URLS_ENV}=1 if this is intended", index, source)
        last: Optional[OSError] = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None and timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"cannot connect to {host}")

    return connect


def _read_url(url: str, index: Optional[int], limits: ImageLimits) -> bytes:
    source = describe(url)
    late = f"the download took longer than {limits.url_deadline_s:g} s"
    guard = None if private_urls_allowed(limits) else _url_guard(index, source)
    try:
        with _Deadline(limits.url_deadline_s) as deadline:
            try:
                with deadline.opener(guard).open(url, timeout=min(URL_TIMEOUT_S,
                                                                  limits.url_deadline_s)) as response:
                    length = response.headers.get("Content-Length")
                    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                        raise ImageReadError("the server announces " + _too_many_bytes(int(length), limits), index,
                                             source)
                    data = _read_bounded(response.read1, index, source, limits)
            except ImageError:
                raise
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                if deadline.expired:
                    raise ImageReadError(late, index, source) from exc
                raise
            if deadline.expired:  # the connection was cut: what arrived is incomplete
                raise ImageReadError(late, index, source)
            return data
    except ImageError:
        raise
    except urllib.error.HTTPError as exc:
        raise ImageReadError(f"could not fetch URL (HTTP {exc.code} {exc.reason})", index, source) from exc
    except TimeoutError as exc:
        raise ImageReadError(f"the server did not answer within {min(URL_TIMEOUT_S, limits.url_deadline_s):g} s",
                             index, source) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageReadError(f"could not fetch URL ({reason}); check the address and the network", index,
                             source) from exc


def _read_data_uri(uri: str, index: Optional[int]) -> bytes:
    """The bytes of a ``data:`` URI. As DeepFace, the payload is base64 whether or not the header says
    ``;base64`` (``data:image/jpeg,<base64>`` is accepted)."""
    header, comma, payload = uri.partition(",")
    source = describe(uri)
    if not comma:
        raise ImageDecodeError("format error in base64 encoded string: a data URI must look like "
                               "'data:image/jpeg;base64,<base64 data>'", index, source)
    payload = "".join(payload.split())  # line breaks of MIME-style base64
    payload += "=" * (-len(payload) % 4)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"format error in base64 encoded string: invalid base64 data ({exc})", index,
                               source) from exc


def _read_file_object(item: Any, index: Optional[int], source: Optional[str], limits: ImageLimits) -> bytes:
    try:
        return _read_bounded(item.read, index, source, limits)
    except ImageError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"reading the file object failed ({exc})", index, source) from exc


def load_image(item: Any, index: Optional[int] = None, limits: Optional[ImageLimits] = None) -> np.ndarray:
    """One input of any accepted kind as an HxWx3 uint8 BGR image; raises :class:`ImageError` naming it.

    ``index`` is the input's position in its batch (``None`` for a single image), repeated in error messages;
    ``limits`` bound encoded inputs (default: :func:`get_image_limits`).
    """
    limits = limits or get_image_limits()
    source = describe(item)
    data = read_encoded(item, index, source, limits)
    return to_bgr(item, index, source) if data is None else decode(data, index, source, limits)


def read_encoded(item: Any, index: Optional[int] = None, source: Optional[str] = None,
                 limits: Optional[ImageLimits] = None) -> Optional[bytes]:
    """The encoded bytes of a path, URL, data URI, bytes or file object input (bounded by ``limits``); ``None`` for
    a numpy array. Raises :class:`ImageError` naming ``index``/``source`` when the input cannot be read or is of no
    accepted kind."""
    limits = limits or get_image_limits()
    if item is None:
        raise ImageFormatError("got None instead of an image", index)
    if isinstance(item, np.ndarray):
        return None
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, os.PathLike):
        item = os.fsdecode(item)
    if isinstance(item, str):
        lowered = item[:16].lower()
        if lowered.startswith("data:"):
            if len(item) > limits.max_bytes // 3 * 4 + HEAD_BYTES:  # base64 takes 4 characters per 3 bytes
                raise ImageReadError("data URI holds " + _too_many_bytes(len(item) // 4 * 3, limits), index, source)
            return _read_data_uri(item, index)
        if lowered.startswith(("http://", "https://")):
            return _read_url(item, index, limits)
        return _read_path(item, index, source, limits)
    if isinstance(item, io.IOBase) or hasattr(item, "read"):
        return _read_file_object(item, index, source, limits)
    hint = "; a stream of images goes to deepbatch.iter_extract_faces" if hasattr(item, "__next__") else ""
    raise ImageFormatError(
        f"unsupported input type {type(item).__name__}; pass a path, URL, base64 data URI, bytes, binary file "
        f"object or numpy array, or a list of those{hint}",
        index,
    )


def as_batch(inputs: Any) -> Tuple[List[Any], bool]:
    """Split an API input into ``(items, single)``.

    A list or tuple, or a 4-D array (N, H, W, C) with C in 1, 3 or 4, is a batch (possibly empty); anything else is
    one image (``single=True``).
    """
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        if inputs.shape[-1] not in (1, 3, 4):
            hint = "; a channels-first (N, C, H, W) array needs array.transpose(0, 2, 3, 1)" if inputs.shape[1] in (
                1, 3, 4) else ""
            raise ImageFormatError(
                f"a 4-D array must be (N, H, W, C) with C in 1, 3 or 4 channels, got shape {inputs.shape}{hint}"
            )
        return list(inputs), False
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    return [inputs], True


def validate_arrays(images: Any) -> List[np.ndarray]:
    """A detector's input (a list of arrays or a 4-D array) as a list of HxWx3 uint8 BGR arrays."""
    items, single = as_batch(images)
    if single:
        raise ImageFormatError(
            "detect_faces takes a list of images or a 4-D (N, H, W, 3) array; wrap a single image in a list"
        )
    return [to_bgr(item, index) for index, item in enumerate(items)]


def list_image_files(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Path]:
    """Image files under ``folder`` (recursive), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in extensions)


# Reduced decoding for detection: libjpeg scales the DCT by 1/2, 1/4 or 1/8 while decoding, which costs a fraction
# of a full decode followed by a resize. Only JPEG decodes this way; other formats decode in full.
REDUCED_FACTORS = (8, 4, 2)


class CanvasImage(NamedTuple):
    """An image decoded for a detection canvas: ``image`` HxWx3 uint8 BGR at ``1 / factor`` of the original size,
    and the original's ``shape`` ``(height, width)`` after EXIF orientation. An original pixel coordinate is
    ``factor`` times a decoded one."""

    image: np.ndarray
    factor: int
    shape: Tuple[int, int]

    @classmethod
    def full(cls, image: np.ndarray) -> CanvasImage:
        return cls(image, 1, (image.shape[0], image.shape[1]))


def reduction_factor(height: int, width: int, canvas: Tuple[int, int], keep_ratio: bool = True) -> int:
    """The largest of 8, 4, 2 by which an image can shrink and still cover its fit on a ``(width, height)`` canvas
    (:func:`deepbatch.ops.letterbox.shrink_factor`, at most 8), 1 when none does.

    Letterboxing averages a larger image down by the same power of two (or a larger one, after a reduced decode
    too) before resizing it, so a photo decoded at ``1 / factor`` reaches the detector as nearly the same picture
    as one decoded in full: the two differ only by the decoder's scaled IDCT against a block mean.
    """
    from ..ops.letterbox import shrink_factor

    return min(shrink_factor(height, width, canvas, keep_ratio), REDUCED_FACTORS[0])


def decode_for_canvas(data: bytes, canvas: Tuple[int, int], index: Optional[int] = None,
                      source: Optional[str] = None, keep_ratio: bool = True,
                      limits: Optional[ImageLimits] = None) -> CanvasImage:
    """Encoded bytes decoded at ``1 / factor`` of their size, as small as a ``(width, height)`` canvas allows (see
    :func:`reduction_factor`), EXIF orientation applied.

    A JPEG much larger than the canvas is decoded by libjpeg at a reduced scale (``cv2.IMREAD_REDUCED_COLOR_*``)
    after the same checks as :func:`decode` (size, declared pixels, truncation); anything else, or a JPEG near the
    canvas size, goes through :func:`decode` in full (``factor`` 1). Errors are those of :func:`decode`.
    """
    import cv2

    limits = limits or get_image_limits()
    stored = declared_size(data, "jpeg") if sniff(data[:32]) == "jpeg" else None
    width, height = stored or (0, 0)
    factor = reduction_factor(height, width, canvas, keep_ratio) if width and height else 1
    if factor == 1 or len(data) > limits.max_bytes or width * height > limits.max_pixels or jpeg_is_truncated(data):
        return CanvasImage.full(decode(data, index, source, limits))  # decode names any problem
    flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    try:
        image, said = _imdecode(data, flag, "jpeg")  # applies the EXIF orientation, like IMREAD_COLOR
    except cv2.error:
        image, said = None, ""
    if image is None:
        return CanvasImage.full(decode(data, index, source, limits))
    _warn_damaged(said, index, source)
    image = to_bgr(image, index, source)
    # libjpeg rounds reduced sides up; a quarter turn from EXIF shows as the decoded sides matching swapped ones.
    turned = height != width and (image.shape[0], image.shape[1]) == (-(-width // factor), -(-height // factor))
    return CanvasImage(image, factor, (width, height) if turned else (height, width))


def declared_pixels(item: Any, canvas: Optional[Tuple[int, int]] = None, keep_ratio: bool = True) -> int:
    """The pixels ``item`` will decode to, read cheaply before it is decoded: from the header of a regular file or
    of encoded bytes (divided by the square of the reduced-decoding factor for a JPEG fitted to a ``(width,
    height)`` ``canvas``), the shape of an array; 0 when it cannot be known without fetching or decoding it (URLs,
    file objects, unreadable or unknown files: their own checks refuse them when they are loaded) and when it
    declares more than ``max_pixels`` (it is refused before it is decoded)."""
    if isinstance(item, np.ndarray):
        return int(item.shape[0] * item.shape[1]) if item.ndim >= 2 else 0
    head: Optional[bytes] = None
    if isinstance(item, (bytes, bytearray, memoryview)):
        head = bytes(item[:HEAD_BYTES])
    elif isinstance(item, os.PathLike) or (isinstance(item, str) and not re.match(r"(?i)^(https?|data):", item)):
        try:
            path = os.path.expanduser(os.fspath(item))
            if not stat.S_ISREG(os.stat(path).st_mode):
                return 0
            with open(path, "rb") as f:
                head = f.read(HEAD_BYTES)
        except (OSError, ValueError):
            return 0
    if not head:
        return 0
    kind = sniff(head[:32])
    size = declared_size(head, kind) if kind is not None else None
    if size is None:
        return 0
    width, height = size
    if width * height > get_image_limits().max_pixels:
        return 0  # refused before it is decoded
    if canvas is not None and kind == "jpeg":
        factor = reduction_factor(height, width, canvas, keep_ratio)
        return int(width * height) // (factor * factor)
    return int(width * height)


def load_image_for_canvas(item: Any, canvas: Tuple[int, int], index: Optional[int] = None,
                          keep_ratio: bool = True, limits: Optional[ImageLimits] = None) -> CanvasImage:
    """:func:`load_image` for detection on a ``(width, height)`` canvas: encoded inputs may be decoded at a
    reduced scale (see :func:`decode_for_canvas`); arrays come back as they are (``factor`` 1)."""
    limits = limits or get_image_limits()
    source = describe(item)
    data = read_encoded(item, index, source, limits)
    if data is None:
        return CanvasImage.full(to_bgr(item, index, source))
    return decode_for_canvas(data, canvas, index, source, keep_ratio, limits)
