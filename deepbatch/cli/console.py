"""What the command line says: results to stdout, diagnostics to stderr, around the progress bar."""

from __future__ import annotations

import io
import logging
import os
import sys


def say(text: str, err: bool = False) -> None:
    """Command output: results to stdout, summaries and diagnostics to stderr (through the progress bar)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr if err else sys.stdout)


class ProgressAwareHandler(logging.Handler):
    """Logs to stderr without breaking a progress bar that is being drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a logging handler must never raise
            self.handleError(record)


def silence_stdout() -> None:
    """Point stdout at the null device so that flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # stdout is not a real file (captured in a test)
        pass
