"""SIGTERM, SIGHUP and Ctrl-C stop a run as Ctrl-C does, whatever the shell left them as."""

from __future__ import annotations

import signal
import threading
from typing import Any, Dict

_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> Dict[int, Any]:
    """Make SIGTERM and SIGHUP stop the run as Ctrl-C does (outputs closed, exit 130), and Ctrl-C itself stop it
    whatever was inherited: a background job of a non-interactive shell (many CI scripts) starts with SIGINT
    ignored, and Python then leaves it so. Returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}
    handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    return handlers


def restore_signals(handlers: Dict[int, Any]) -> None:
    for signum, previous in handlers.items():
        signal.signal(signum, previous)
