"""Whether a JPEG stream is whole: a walk of its marker segments, as cheap as a search through its bytes."""

from __future__ import annotations

import re

_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # markers without a length field
_JPEG_FILL = re.compile(rb"\xff+")
_JPEG_MAX_SEGMENTS = 4096  # a real JPEG has a few dozen segments before its first scan


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
