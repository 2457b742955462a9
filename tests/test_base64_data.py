"""Base64 image data decodes to the same bytes, and fails with the standard library's message, whether or not the
fast decoder (``pybase64``, the ``serve`` extra) is installed."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Optional

import pytest

from deepbatch.errors import ImageDecodeError
from deepbatch.io import base64_data
from deepbatch.io.data_uri import read_data_uri

PAYLOAD = bytes(range(256)) * 3
TEXT = base64.b64encode(PAYLOAD).decode("ascii")
URL_SAFE = base64.urlsafe_b64encode(PAYLOAD).decode("ascii")

# (text, altchars, expected bytes, or the standard library's message for text it refuses)
CASES = [
    (TEXT, None, PAYLOAD, None),
    (TEXT.encode("ascii"), None, PAYLOAD, None),
    (URL_SAFE, b"-_", PAYLOAD, None),
    ("YWI=", None, b"ab", None),
    ("", None, b"", None),
    ("YWJ", None, None, "Incorrect padding"),
    ("YW Jj", None, None, "Only base64 data is allowed"),
    ("Y===", None, None, "cannot be 1 more than a multiple of 4"),
    ("@@@@", None, None, "Only base64 data is allowed"),
]


@pytest.fixture(params=["fast", "standard"])
def decoder(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fast":
        pytest.importorskip("pybase64", reason="the fast decoder comes with the serve extra")
    else:
        monkeypatch.setattr(base64_data, "_FAST", [None])
    return str(request.param)


@pytest.mark.parametrize("text, altchars, expected, message", CASES)
def test_b64decode(decoder: str, text: Any, altchars: Optional[bytes], expected: Optional[bytes],
                   message: Optional[str]) -> None:
    if message is None:
        assert base64_data.b64decode(text, altchars) == expected
    else:
        with pytest.raises(binascii.Error, match=message):
            base64_data.b64decode(text, altchars)


# (data URI, expected bytes, or the start of the error message)
URIS = [
    ("data:image/jpeg;base64," + TEXT, PAYLOAD, None),
    ("data:image/jpeg;base64," + "\n".join(TEXT[i : i + 76] for i in range(0, len(TEXT), 76)), PAYLOAD, None),
    ("data:image/jpeg;base64," + TEXT.rstrip("="), PAYLOAD, None),
    ("data:image/jpeg;base64,@@@@", None, "format error in base64 encoded string: invalid base64 data (Only base64"),
]


@pytest.mark.parametrize("uri, expected, message", URIS)
def test_read_data_uri(decoder: str, uri: str, expected: Optional[bytes], message: Optional[str]) -> None:
    if message is None:
        assert read_data_uri(uri, None) == expected
    else:
        with pytest.raises(ImageDecodeError, match=message.replace("(", r"\(")):
            read_data_uri(uri, None)
