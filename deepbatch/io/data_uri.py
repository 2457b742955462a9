"""The bytes of a ``data:`` URI (base64, as DeepFace reads it)."""

from __future__ import annotations

import binascii
from typing import Optional

from ..errors import ImageDecodeError
from .base64_data import b64decode
from .inputs import describe


def read_data_uri(uri: str, index: Optional[int]) -> bytes:
    """The bytes of a ``data:`` URI. As DeepFace, the payload is base64 whether or not the header says
    ``;base64`` (``data:image/jpeg,<base64>`` is accepted)."""
    header, comma, payload = uri.partition(",")
    source = describe(uri)
    if not comma:
        raise ImageDecodeError("format error in base64 encoded string: a data URI must look like "
                               "'data:image/jpeg;base64,<base64 data>'", index, source)
    try:
        return b64decode(payload)  # the usual payload: one line, padded
    except ValueError:
        pass
    payload = "".join(payload.split())  # line breaks of MIME-style base64
    payload += "=" * (-len(payload) % 4)
    try:
        return b64decode(payload)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"format error in base64 encoded string: invalid base64 data ({exc})", index,
                               source) from exc
