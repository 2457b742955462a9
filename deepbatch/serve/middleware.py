"""ASGI middleware of the service: :class:`BodyLimit`."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict

from ..errors import RequestLimitError


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before it is all read (at once when its
    ``Content-Length`` says so; a chunked body fails its reading with :class:`RequestLimitError`)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = int(limit)
        self.state = getattr(app, "state", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Dict[str, Any]]],
                       send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestLimitError(self.message)
            return message

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"the request body is over this service's limit of {self.limit} bytes (--max-body-bytes)"

    async def _refuse(self, send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        import json

        body = json.dumps({"error": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

