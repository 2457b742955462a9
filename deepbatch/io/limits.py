"""The bounds on one encoded input (pixels, bytes, URL time, private addresses), settable for the process."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Optional

from ..errors import ArgumentError


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


def too_many_bytes(size: int, limits: ImageLimits) -> str:
    return (f"{size} bytes, over the limit of {limits.max_bytes} bytes for one image; if the input is trusted, raise "
            "it with deepbatch.io.images.set_image_limits(max_bytes=...) or the command line's --max-bytes")
