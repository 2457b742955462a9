"""What C and C++ libraries print to the process's standard error, captured so that deepbatch can say it once, in
its own words, about the input or model it concerns.

ONNX Runtime logs a provider that cannot start (no GPU, no CUDA libraries) from C++, in red, once per session;
libjpeg prints ``Corrupt JPEG data: ...`` for a damaged file that still decodes. Neither goes through Python, so
:func:`capture_fd2` points file descriptor 2 itself at a temporary file for the length of a block. File descriptors
belong to the whole process, so captures are taken one at a time, and whatever else was written to stderr meanwhile
(by another thread, through Python) is written out again when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Iterator, List, Pattern

_lock = threading.Lock()
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")  # ONNX Runtime colours its errors


@dataclass
class Captured:
    """The lines a library wrote during a :func:`capture_fd2` block that match its pattern (colour codes removed);
    filled when the block ends."""

    lines: List[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "; ".join(self.lines)


@contextlib.contextmanager
def capture_fd2(pattern: Pattern[str]) -> Iterator[Captured]:
    """Within the block, what is written to file descriptor 2 goes to a temporary file; at its end the lines that
    match ``pattern`` are handed back in the yielded :class:`Captured`, and the others are written to stderr as
    they came. Where stderr has no file descriptor (an embedding host), nothing is captured."""
    captured = Captured()
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno() if sys.stderr is not None else 2
    except (AttributeError, OSError, ValueError):
        fd = 2
    with _lock:
        try:
            saved = os.dup(fd)
        except OSError:
            yield captured
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield captured
            finally:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, fd)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
        others = []
        for line in text.splitlines(keepends=True):
            clean = _ESCAPES.sub("", line).strip()
            if clean and pattern.search(clean):
                captured.lines.append(clean)
            elif clean:
                others.append(line)
        if others:
            os.write(fd, "".join(others).encode())
