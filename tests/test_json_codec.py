"""Request bodies parse to the same values, and fail with the standard library's message, and answers are the same
JSON values, whether or not ``orjson`` (the ``serve`` extra) is installed."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Optional

import pytest
from starlette.responses import JSONResponse

from deepbatch.serve import json_codec
from deepbatch.serve.json_codec import JSONAnswer, parse_json

LONG = "QUJD" * 20_000  # 80,000 characters: longer than LONG_STRING, taken as it is where nothing needs parsing

# (body, the standard library's message for a body it refuses, or None)
BODIES = [
    (f'{{"img1": "data:image/jpeg;base64,{LONG}", "img2": "{LONG[1:]}", "model_name": "Facenet"}}'.encode(), None),
    (f'{{"img": ["{LONG}", {{"nested": "{LONG}=="}}], "max_faces": 3}}'.encode(), None),
    (f'["{LONG}"]'.encode(), None),
    (f'"{LONG}"'.encode(), None),
    (f'{{"a": "\\"{LONG}", "b": "{LONG}"}}'.encode(), None),  # a run that starts with an escaped quote
    (f'{{"a": "x", "n": [{",".join(["1"] * 40_000)}], "b": "y"}}'.encode(), None),  # a run outside any string
    (f'{{"img": "{LONG}\\n{LONG}"}}'.encode(), None),  # an escape in the run
    (f'{{"img": "{"é" * 40_000}"}}'.encode(), None),  # not ASCII
    (f'{{"{LONG}": 1}}'.encode(), None),  # a long key
    (f'{{"img": "{LONG}", "img": "{LONG[2:]}"}}'.encode(), None),  # a repeated key: the last one counts
    (f'{{"img": "{LONG}\x01{LONG}"}}'.encode(), "Invalid control character"),
    (f'{{"img": "{LONG}", "max_faces": }}'.encode(), "Expecting value: line 1 column"),
    (f'{{"img": "{LONG}'.encode(), "Unterminated string starting at"),
    (b'{"img": "data:image/jpeg;base64,' + b"QUJD" * 50_000 + b'", "enforce_detection": false}', None),
    (b'{"threshold": NaN, "max_faces": 2}', None),
    (b'{"max_faces": 1180591620717411303424}', None),
    (b'{"img": "\\ud800"}', None),
    (b'{"img": "caf\\u00e9", "a": [1, 2.5, null, true]}', None),
    (b'{"img": ', "Expecting value: line 1 column 9"),
    (b"[1, 2,]", "Expecting value: line 1 column 7"),
    (b'{"a": 1, "a": 2, "b": -9223372036854775809, "c": 1e400}', None),
    (b'{"a": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]], "b": 18446744073709551615}', None),
    (b"\xff\xfe", None),  # not UTF-8: both refuse it; the message is the standard library's, whatever it says
]


@pytest.fixture(params=["fast", "standard"])
def parser(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fast":
        pytest.importorskip("orjson", reason="the fast parser comes with the serve extra")
    else:
        monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` raises ImportError
    return str(request.param)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("body, message", BODIES, ids=[f"body{i}" for i in range(len(BODIES))])
def test_parse_json_as_the_standard_library(parser: str, body: bytes, message: Optional[str]) -> None:
    try:
        expected = json.loads(body)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            parse_json(body)
        assert str(raised.value) == str(exc)
        assert message is None or str(exc).startswith(message)
        return
    assert message is None
    assert _same(parse_json(body), expected)


# answers as the routes give them, and values Starlette's renderer refuses
ANSWERS = [
    {"results": [{"embedding": [0.1, -2.5e-07, 1e16, 3.0], "facial_area": {"x": 1, "y": 2, "left_eye": [3, 4]},
                  "face_confidence": 0.99}]},
    {"verified": True, "distance": 0.4123456789, "threshold": 0.68, "facial_areas": {"img1": None}},
    {"error": "café ☕ \u2028 \"quoted\""},
    {"big": 2**70, "tuple": (1, 2)},
    {"nan": float("nan")},
    {"inf": [1.0, float("-inf")]},
]


@pytest.mark.parametrize("content", ANSWERS, ids=[f"answer{i}" for i in range(len(ANSWERS))])
def test_answers_render_as_starlette_does(parser: str, content: Any) -> None:
    try:
        expected = json.loads(JSONResponse(content).body)
    except ValueError as exc:
        with pytest.raises(ValueError, match="Out of range float values"):
            JSONAnswer(content)
        assert "Out of range" in str(exc)
        return
    answer = JSONAnswer(content)
    assert _same(json.loads(answer.body), expected)
    assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize("index, taken", [(0, True), (1, True), (2, True), (3, True), (4, False), (5, False),
                                          (6, False), (7, False), (8, False), (9, False), (10, False), (11, False)])
def test_long_strings_are_taken_as_they_are_only_where_that_is_sure(index: int, taken: bool) -> None:
    body = BODIES[index][0]
    assert len(body) > json_codec.LONG_STRING
    parsed = json_codec._parse_around_long_strings(body)
    assert (parsed is not json_codec._UNSURE) == taken
    if taken:
        assert parsed == json.loads(body)
