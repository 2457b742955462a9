"""What C and C++ libraries print to the process's standard error, captured so that deepbatch can say it once, in
its own words, about the input or model it concerns.

ONNX Runtime logs a provider that cannot start (no GPU, no CUDA libraries) from C++, in red, once per session;
libjpeg prints ``Corrupt JPEG data: ...`` for a damaged file that still decodes. Neither goes through Python, so
file descriptor 2 itself is pointed at a temporary file for the length of a block, and what else was written to
stderr meanwhile (by another thread, through Python) is written out again.

One :data:`STDERR` holds the redirection for the whole process: while any block runs, fd 2 goes to one file.
Blocks of :meth:`~Capture.shared` may run at once (images decode on several threads): one that ran alone gets
exactly the matching lines written during it; one that overlapped another and saw a matching line is told so
(``certain`` False) and can run again as an :meth:`~Capture.exclusive` block, which runs alone. That is rare, as
damaged files are; creating a model session, also rare, always runs alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Iterator, List, Optional, Pattern

_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")  # ONNX Runtime colours its errors


def _colour_only(line: str) -> bool:
    """A line of nothing but colour codes (what closes ONNX Runtime's red lines)."""
    return bool(_ESCAPES.search(line)) and not _ESCAPES.sub("", line).strip()


@dataclass
class Captured:
    """The lines a library wrote during a :class:`Capture` block that match its pattern (colour codes removed);
    filled when the block ends."""

    lines: List[str] = field(default_factory=list)
    certain: bool = True  # False: other blocks ran at the same time, so the lines may be theirs

    @property
    def text(self) -> str:
        return "; ".join(self.lines)


class Capture:
    """fd 2 captured while any :meth:`shared` or :meth:`exclusive` block runs; see the module's docstring.

    A block is handed the lines that match its pattern; lines that match the pattern of any block so far are kept
    off the terminal, and every other byte is written to the real stderr when a block ends (so a progress bar drawn
    meanwhile is late by at most one block).
    """

    def __init__(self) -> None:
        self._patterns: List[Pattern[str]] = []
        self._cond = threading.Condition()
        self._active = 0
        self._entered = 0  # blocks begun since fd 2 was redirected
        self._exclusive = False
        self._waiting = 0  # exclusive blocks waiting: shared ones wait behind them
        self._sink: Optional[IO[bytes]] = None
        self._saved = -1
        self._forwarded = 0

    @contextlib.contextmanager
    def shared(self, pattern: Pattern[str]) -> Iterator[Captured]:
        """A block that may run beside others; its :class:`Captured` says whether its lines are surely its own."""
        captured = Captured()
        with self._cond:
            self._keep_off(pattern)
            while self._exclusive or self._waiting:
                self._cond.wait()
            redirected = self._begin()
            start, entered, alone = self._size(), self._entered, self._active == 1
        if not redirected:
            yield captured
            return
        try:
            yield captured
        finally:
            with self._cond:
                captured.lines = self._matching(start, self._size(), pattern)
                captured.certain = not captured.lines or (alone and self._entered == entered)
                self._finish()

    @contextlib.contextmanager
    def exclusive(self, pattern: Pattern[str]) -> Iterator[Captured]:
        """A block that runs alone: its lines are its own."""
        captured = Captured()
        with self._cond:
            self._keep_off(pattern)
            self._waiting += 1
            while self._exclusive or self._active:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
            redirected = self._begin()
            if not redirected:
                self._exclusive = False
                self._cond.notify_all()
            start = self._size()
        if not redirected:
            yield captured
            return
        try:
            yield captured
        finally:
            with self._cond:
                captured.lines = self._matching(start, self._size(), pattern)
                self._exclusive = False
                self._finish()

    def _keep_off(self, pattern: Pattern[str]) -> None:
        if pattern not in self._patterns:
            self._patterns.append(pattern)

    def _captured(self, line: str) -> bool:
        return any(p.search(line) for p in self._patterns)

    def _begin(self) -> bool:
        """Count a block in, redirecting fd 2 for the first; False where fd 2 cannot be redirected."""
        if self._active == 0:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            try:
                self._saved = os.dup(2)
            except OSError:
                return False
            self._sink = tempfile.TemporaryFile()
            os.dup2(self._sink.fileno(), 2)
            self._forwarded, self._entered = 0, 0
        self._active += 1
        self._entered += 1
        return True

    def _finish(self) -> None:
        """Count a block out: pass on what is not a matching line, and restore fd 2 after the last."""
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        self._forward(self._size())
        self._active -= 1
        if self._active == 0 and self._sink is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._sink.close()
            self._sink = None
        self._cond.notify_all()

    def _size(self) -> int:
        return os.fstat(self._sink.fileno()).st_size if self._sink is not None else 0

    def _read(self, start: int, end: int) -> str:
        if self._sink is None or end <= start:
            return ""
        return os.pread(self._sink.fileno(), end - start, start).decode("utf-8", "replace")

    def _matching(self, start: int, end: int, pattern: Pattern[str]) -> List[str]:
        lines = (_ESCAPES.sub("", line).strip() for line in self._read(start, end).splitlines())
        return [line for line in lines if line and pattern.search(line)]

    def _forward(self, end: int) -> None:
        text = self._read(self._forwarded, end)
        self._forwarded = max(self._forwarded, end)
        others = "".join(line for line in text.splitlines(keepends=True)
                         if not self._captured(_ESCAPES.sub("", line).strip()) and not _colour_only(line))
        if others:
            with contextlib.suppress(OSError):
                os.write(self._saved, others.encode())


STDERR = Capture()  # the one redirection of fd 2 in this process
