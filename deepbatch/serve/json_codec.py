"""JSON in and out of the service, by ``orjson`` where it is installed (the ``serve`` extra), with the standard
library's results wherever the two could differ.

A photo sent as base64 makes a request body of megabytes, nearly all of it one string: a parser spends 4 to 6 ms
on 3.3 MB (``orjson``, the standard library) checking it character by character. :func:`parse_json` takes such a
string as it is when nothing in it needs a parser (no escape, no control character, ASCII only) and parses the
rest: 2.2 ms in all, most of it making the string. ``orjson`` writes an answer with one 512-float embedding in
0.04 ms instead of 0.7.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from starlette.responses import JSONResponse

LONG_STRING = 1 << 16  # bytes between two quotes: a string this long (an image as base64) is taken as it is
MAX_QUOTES = 4096  # quotes looked at before a body is left to the parser whole


def _orjson() -> Optional[Any]:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


def parse_json(body: bytes) -> Any:
    """``json.loads(body)``, its long strings taken as they are (:func:`_parse_around_long_strings`), the rest
    parsed by :func:`_parse`."""
    if len(body) > LONG_STRING:
        parsed = _parse_around_long_strings(body)
        if parsed is not _UNSURE:
            return parsed
    return _parse(body)


_UNSURE = object()


def _parse_around_long_strings(body: bytes) -> Any:
    """``json.loads(body)`` with each run of over :data:`LONG_STRING` bytes between two consecutive quotes that holds
    no backslash, no control character and only ASCII swapped for a short unique placeholder before parsing, and
    put back after; :data:`_UNSURE` when that cannot be shown to give ``json.loads(body)``.

    Why it gives the same value: the bytes before a run are the same in both bodies, so the quote opening the run
    opens a string in one exactly when it does in the other. When a placeholder comes out of the parser as a whole
    string, that quote opened a string, and in the original body the string ends at the next quote (nothing between
    escapes it), so the string was the run, which needs no unescaping. A run that was not a whole string (numbers
    between two strings, a string that starts with an escaped quote) leaves its placeholder inside a longer string
    or breaks the parse: :data:`_UNSURE`, and the body is parsed whole."""
    runs: List[Tuple[int, int]] = []
    quote = body.find(b'"')
    for _ in range(MAX_QUOTES):
        if quote < 0:
            break
        after = body.find(b'"', quote + 1)
        if after < 0:
            break
        if after - quote - 1 > LONG_STRING and _plain(body, quote + 1, after):
            runs.append((quote + 1, after))
        quote = after
    else:
        return _UNSURE
    if not runs:
        return _UNSURE
    token = "deepbatch-" + secrets.token_hex(16)  # random: a body holds it only by a 2**-128 chance
    pieces: List[bytes] = []
    strings: Dict[str, str] = {}
    start = 0
    view = memoryview(body)
    for number, (first, end) in enumerate(runs):
        placeholder = f"{token}-{number}"
        strings[placeholder] = str(view[first:end], "ascii")  # one copy: no bytes slice on the way
        pieces += [body[start:first], placeholder.encode()]
        start = end
    pieces.append(body[start:])
    try:
        parsed = _parse(b"".join(pieces))
    except (ValueError, RecursionError):
        return _UNSURE
    return _put_back(parsed, strings, token)


def _plain(body: bytes, first: int, end: int) -> bool:
    """Whether ``body[first:end]`` is string content JSON takes as it is: no backslash, no control character
    (below 0x20), ASCII only."""
    if body.find(b"\\", first, end) >= 0:
        return False
    run = np.frombuffer(body, np.uint8, count=end - first, offset=first)
    return bool(run.min() >= 0x20 and run.max() < 0x80)


def _put_back(parsed: Any, strings: Dict[str, str], token: str) -> Any:
    """``parsed`` with each placeholder string value replaced by its string; :data:`_UNSURE` unless every
    placeholder is found once, as a whole value."""
    found = 0
    root = [parsed]
    stack: List[Any] = [root]
    while stack:
        container = stack.pop()
        if isinstance(container, dict):
            if any(token in key for key in container):
                return _UNSURE
            places: Any = container.items()
        else:
            places = enumerate(container)
        for place, value in list(places):
            if isinstance(value, str):
                if token not in value:
                    continue
                if value not in strings:
                    return _UNSURE
                container[place] = strings[value]
                found += 1
            elif isinstance(value, (dict, list)):
                stack.append(value)
    return root[0] if found == len(strings) else _UNSURE


def _parse(body: bytes) -> Any:
    """``json.loads(body)``, by ``orjson`` where it is installed. The standard library parses the body again where
    ``orjson`` could differ from it: a body ``orjson`` refuses (``NaN``, lone surrogates: accepted the same, and an
    error carries the standard library's message), and one with a number beyond 64-bit integers (which ``orjson``
    reads as a float, the standard library as an exact ``int``)."""
    fast = _orjson()
    if fast is None:
        return json.loads(body)
    try:
        parsed = fast.loads(body)
    except ValueError:
        return json.loads(body)
    return json.loads(body) if _any_float(parsed, lambda x: abs(x) >= 2.0**63) else parsed


class JSONAnswer(JSONResponse):
    """Starlette's ``JSONResponse``, rendered by ``orjson``; an answer holding a non-finite float (which
    Starlette refuses and ``orjson`` would write as ``null``) or anything ``orjson`` cannot write is rendered by
    Starlette, so every answer is the same JSON value either way."""

    def render(self, content: Any) -> bytes:
        fast = _orjson()
        if fast is None or _any_float(content, lambda x: not math.isfinite(x)):
            return super().render(content)
        try:
            return bytes(fast.dumps(content))
        except TypeError:
            return super().render(content)


def _any_float(value: Any, test: Callable[[float], bool]) -> bool:
    """Whether a JSON value (dicts, lists, scalars) holds a float for which ``test`` is true."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if test(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
