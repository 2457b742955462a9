"""Reading a request: its fields from a JSON object or a form, and typed values from them."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..errors import ArgumentError, BadRequestError
from .json_codec import parse_json


def as_bool(value: Any, name: str) -> bool:
    """A boolean field from JSON (true/false) or a form ("true", "false", "1", "0", "yes", "no")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise ArgumentError(f"{name} must be true or false, got {value!r}")


def as_int(value: Any, name: str) -> int:
    """An integer field from JSON (3, 3.0) or a form ("3")."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be an integer, got {value!r}") from None


class Arguments:
    """The fields of one request, from a JSON object or a form (multipart uploads give bytes)."""

    def __init__(self, fields: Dict[str, Any]):
        self.fields = fields

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None or value == "" else value

    def flag(self, name: str, default: bool) -> bool:
        return as_bool(self.get(name, default), name)

    def integer(self, name: str, default: Optional[int]) -> Optional[int]:
        value = self.get(name)
        return default if value is None else as_int(value, name)

    def text(self, name: str, default: str) -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            raise ArgumentError(f"{name} must be a string, got {type(value).__name__}")
        return value

    def image(self, name: str) -> Any:
        if name not in self.fields or self.fields[name] is None or self.fields[name] == "":
            raise BadRequestError(f"'{name}' not found in the request: send it as a base64 string or data URI in a "
                                  "JSON body, or as a file in a multipart form")
        return self.fields[name]


async def read_arguments(request: Any) -> Arguments:
    """The request's JSON object or form fields; uploaded files become their bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        fields: Dict[str, Any] = {}
        for key, value in form.multi_items():
            value = await value.read() if hasattr(value, "read") else value
            if key in fields:  # repeated fields (several uploads under one name) make a list
                fields[key] = fields[key] if isinstance(fields[key], list) else [fields[key]]
                fields[key].append(value)
            else:
                fields[key] = value
        return Arguments(fields)
    body = await request.body()
    if not body:
        raise BadRequestError("empty request: send a JSON object or a multipart form")
    try:
        parsed = parse_json(body)
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise BadRequestError(f"the JSON body must be an object, got {type(parsed).__name__}")
    return Arguments(parsed)
