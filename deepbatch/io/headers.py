"""What an encoded image says about itself, read from its first bytes without decoding it.

:func:`sniff` names the format from the file signature; :func:`declared_size` reads the width and height the header
declares (JPEG SOF, PNG IHDR, GIF, BMP, WebP, TIFF, JPEG 2000, PNM), so that an image too large to decode safely is
refused before any pixel memory is allocated. Both work on a prefix of the file and never raise on malformed data.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

HEAD_BYTES = 1 << 16  # enough for the size of every parsed format except a JPEG with a large EXIF block first
_JPEG_MAX_SEGMENTS = 4096  # a real JPEG has a few dozen segments before its first scan
_FILL = re.compile(rb"\xff+")
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)

# (format, signature at offset 0); the formats OpenCV's imdecode reads
_SIGNATURES: Tuple[Tuple[str, bytes], ...] = (
    ("jpeg", b"\xff\xd8\xff"),
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("gif", b"GIF87a"),
    ("gif", b"GIF89a"),
    ("bmp", b"BM"),
    ("tiff", b"II*\x00"),
    ("tiff", b"MM\x00*"),
    ("jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n"),
    ("j2k", b"\xff\x4f\xff\x51"),
    ("exr", b"\x76\x2f\x31\x01"),
    ("hdr", b"#?RADIANCE"),
    ("hdr", b"#?RGBE"),
    ("ras", b"\x59\xa6\x6a\x95"),
)
_PNM = re.compile(rb"P[1-7]\s")
_PFM = re.compile(rb"P[Ff]\s")


def sniff(head: bytes) -> Optional[str]:
    """The image format named by the first bytes of a file (``"jpeg"``, ``"png"``, ...), or ``None``."""
    for name, signature in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return "avif"
    if _PNM.match(head):
        return "pnm"
    if _PFM.match(head):
        return "pfm"
    return None


def declared_size(data: bytes, kind: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """``(width, height)`` as declared by the header in ``data`` (a whole file or its first bytes), or ``None``
    when the format's header is not parsed here or is not (yet) in ``data``."""
    kind = kind or sniff(data[:32])
    reader = _READERS.get(kind or "")
    if reader is None:
        return None
    try:
        return reader(data)
    except (IndexError, ValueError):
        return None


def _be(data: bytes, start: int, size: int) -> int:
    if start + size > len(data):
        raise IndexError("header cut short")
    return int.from_bytes(data[start : start + size], "big")


def _le(data: bytes, start: int, size: int) -> int:
    if start + size > len(data):
        raise IndexError("header cut short")
    return int.from_bytes(data[start : start + size], "little")


def _jpeg(data: bytes) -> Optional[Tuple[int, int]]:
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            return None
        fill = _FILL.match(data, pos)
        pos = fill.end() - 1 if fill else pos  # the last 0xFF of a run of fill bytes starts the marker
        marker = data[pos + 1] if pos + 1 < len(data) else None
        if marker is None or marker == 0xDA or marker == 0xD9:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 2
            continue
        if marker in _JPEG_SOF:
            return _be(data, pos + 7, 2), _be(data, pos + 5, 2)
        pos += 2 + _be(data, pos + 2, 2)
    return None


def _png(data: bytes) -> Optional[Tuple[int, int]]:
    if data[12:16] != b"IHDR":
        return None
    return _be(data, 16, 4), _be(data, 20, 4)


def _gif(data: bytes) -> Optional[Tuple[int, int]]:
    return _le(data, 6, 2), _le(data, 8, 2)


def _bmp(data: bytes) -> Optional[Tuple[int, int]]:
    if _le(data, 14, 4) == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return _le(data, 18, 2), _le(data, 20, 2)
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    if len(data) < 26:
        return None
    return abs(width), abs(height)


def _webp(data: bytes) -> Optional[Tuple[int, int]]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return _le(data, 24, 3) + 1, _le(data, 27, 3) + 1
    if chunk == b"VP8L":
        bits = _le(data, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return _le(data, 26, 2) & 0x3FFF, _le(data, 28, 2) & 0x3FFF
    return None


def _tiff(data: bytes) -> Optional[Tuple[int, int]]:
    read = _le if data[:2] == b"II" else _be
    ifd = read(data, 4, 4)
    entries = read(data, ifd, 2)
    size = {}
    for k in range(min(entries, 512)):
        entry = ifd + 2 + 12 * k
        tag, kind = read(data, entry, 2), read(data, entry + 2, 2)
        if tag in (256, 257):
            size[tag] = read(data, entry + 8, 2) if kind == 3 else read(data, entry + 8, 4)
            if len(size) == 2:
                return size[256], size[257]
    return None


def _jp2(data: bytes) -> Optional[Tuple[int, int]]:
    at = data.find(b"ihdr", 0, HEAD_BYTES)
    if at < 0:
        return None
    return _be(data, at + 8, 4), _be(data, at + 4, 4)


def _j2k(data: bytes) -> Optional[Tuple[int, int]]:
    return _be(data, 8, 4) - _be(data, 16, 4), _be(data, 12, 4) - _be(data, 20, 4)


def _pnm(data: bytes) -> Optional[Tuple[int, int]]:
    head = data[:1024]
    if head[:2] == b"P7":
        width = re.search(rb"\bWIDTH\s+(\d+)", head)
        height = re.search(rb"\bHEIGHT\s+(\d+)", head)
        return (int(width.group(1)), int(height.group(1))) if width and height else None
    numbers = re.findall(rb"\d+", re.sub(rb"#[^\n]*", b" ", head[2:]))
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


_READERS = {"jpeg": _jpeg, "png": _png, "gif": _gif, "bmp": _bmp, "webp": _webp, "tiff": _tiff, "jp2": _jp2,
            "j2k": _j2k, "pnm": _pnm, "pfm": _pnm}
