"""Decoding base64 image data: ``pybase64``'s vectorised decoder where it is installed (the ``serve`` extra), else
the standard library's.

Both give the same bytes for valid data. A payload the fast decoder refuses is decoded again by the standard
library, so an error always carries the standard library's message, whichever is installed. A photo of 2.3 MB sent
as base64 decodes in 0.5 ms instead of 21 (2 cores), which is what ``deepbatch serve`` pays per image it is sent.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, List, Optional

_FAST: List[Optional[Callable[..., bytes]]] = []  # pybase64's decoder, or None: looked up on first use


def _fast_decoder() -> Optional[Callable[..., bytes]]:
    if not _FAST:
        try:
            import pybase64
        except ImportError:
            _FAST.append(None)
        else:
            _FAST.append(pybase64.b64decode)
    return _FAST[0]


def b64decode(text: Any, altchars: Optional[bytes] = None) -> bytes:
    """``base64.b64decode(text, altchars, validate=True)``: strict (no whitespace, padding required), raising
    :class:`binascii.Error` (a ``ValueError``) with the standard library's message."""
    fast = _fast_decoder()
    if fast is not None:
        try:
            return fast(text, altchars=altchars, validate=True)
        except ValueError:
            pass  # the standard library says what is wrong
    return base64.b64decode(text, altchars=altchars, validate=True)
