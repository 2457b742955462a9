"""``deepbatch serve``: an HTTP service whose concurrent requests share batched model calls.

:func:`~deepbatch.serve.app.create_app` builds the ASGI application (FastAPI on Starlette, served by uvicorn: the
``serve`` extra); :class:`~deepbatch.serve.batcher.Batcher` gathers the images of concurrent requests into one
detector call and their faces into one recognizer call, on worker threads that own the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'deepbatch.serve' has no attribute {name!r}")
