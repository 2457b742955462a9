"""The bytes of a ``data:`` URI (base64, as DeepFace reads it)."""

from __future__ import annotations

import base64
import binascii
from typing import Optional

from ..errors import ImageDecodeError
from .inputs import describe


def read_data_uri(uri: str, index: Optional[int]) -> bytes:
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
