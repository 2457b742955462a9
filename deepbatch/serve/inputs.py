"""The images of a request: base64, data URIs, uploads, URLs and server-side paths, turned into what the library
loads under the operator's rules, and decoded under the service's limits."""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ArgumentError, ImageError, PathRefusedError, RequestLimitError
from ..io.base64_data import b64decode
from ..io.headers import declared_size, sniff
from ..io.images import decode, describe, read_encoded
from .config import ServeConfig

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


def _looks_base64(value: str) -> bool:
    """Whether a string is base64 image data rather than a path: it starts with base64 characters that decode to an
    image format's signature (a path never does); the whole string is checked when it is decoded."""
    if len(value) < 64 or not _BASE64.match(value[:128]):  # the rest is checked when it is decoded
        return False
    head = "".join(value[:128].split())[:64]
    try:
        data = base64.b64decode(head, altchars=b"-_" if "-" in head or "_" in head else None)
    except (binascii.Error, ValueError):
        return False
    return sniff(data[:32]) is not None


class Inputs:
    """Turns request values into what the library loads, under the operator's rules for paths and URLs, and decodes
    them with the service's limits."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.folder = None if config.allow_path is None else Path(config.allow_path).resolve()

    def item(self, value: Any, name: str) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if not isinstance(value, str):
            raise ArgumentError(f"{name} must be a base64 string, a data URI, a URL or an uploaded file, got "
                                  f"{type(value).__name__}")
        head = value[:16].lower()
        if head.startswith("data:"):
            return value
        if head.startswith(("http://", "https://")):
            if not self.config.allow_urls:
                raise PathRefusedError(f"{name}: URLs are not accepted by this service (started with --no-urls)")
            return value
        if _looks_base64(value):
            return self._base64(value, name)
        return self._path(value, name)

    def _base64(self, value: str, name: str) -> bytes:
        altchars = b"-_" if "-" in value or "_" in value else None
        try:
            return b64decode(value, altchars)  # the usual value: one line, padded
        except ValueError:
            pass
        text = "".join(value.split())
        try:
            return b64decode(text + "=" * (-len(text) % 4), altchars)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"format error in base64 encoded string: invalid base64 data ({exc})", None,
                             describe(value)) from exc

    def _path(self, value: str, name: str) -> str:
        if self.folder is None:
            raise PathRefusedError(f"{name}: server-side file paths are refused ({describe(value)}); send the image "
                                   "itself (base64, data URI or upload), or start the service with --allow-path DIR")
        path = (self.folder / value).resolve() if not os.path.isabs(value) else Path(value).resolve()
        if path != self.folder and self.folder not in path.parents:
            raise PathRefusedError(f"{name}: {describe(value)} is outside the folder this service may read "
                                   f"({self.folder})")
        return str(path)

    def decode(self, item: Any, index: Optional[int] = None) -> np.ndarray:
        """One input as a BGR image, by the library's loader under the service's limits; an image over the pixel
        limit raises :class:`RequestLimitError` with the library's message."""
        return self.decode_data(self.read(item, index), index, describe(item))

    def read(self, item: Any, index: Optional[int] = None) -> bytes:
        """One input's encoded bytes (fetched, for a URL), under the service's limits."""
        data = read_encoded(item, index, describe(item), self.config.limits)
        assert data is not None
        return data

    def decode_data(self, data: bytes, index: Optional[int], source: Optional[str]) -> np.ndarray:
        """Encoded ``data`` as a BGR image, as :meth:`decode`."""
        limits = self.config.limits
        kind = sniff(data[:32])
        size = declared_size(data, kind) if kind is not None else None
        try:
            return decode(data, index, source, limits)
        except ImageError as exc:
            if size is not None and size[0] * size[1] > limits.max_pixels:
                raise RequestLimitError(str(exc)) from exc
            raise
