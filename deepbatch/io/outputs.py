"""Writing results so that nothing is destroyed and nothing is mismatched.

* Output folders never overlap input folders (:func:`check_separate`), so annotated copies cannot replace photos.
* Every file is written under a temporary name and renamed into place when it is complete (:func:`write_atomic`,
  :class:`LineFile`): a run that is killed leaves the previous complete result, plus a file ``NAME.partial`` that
  holds the rows written so far and that the next run reports (:func:`warn_if_left_partial`).
* Rows are whole: a row is one ``write`` to the file, and a failed write (full disk) is cut back to the last whole row.
* File names given out in one run are unique (:class:`UniqueNames`): two inputs never write the same output file.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Set

from ..errors import ArgumentError

logger = logging.getLogger(__name__)

PARTIAL = ".partial"
RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENOMEM})


def is_resource_error(exc: BaseException) -> bool:
    """True for an ``OSError`` that says the machine ran out of something (disk space, quota, memory)."""
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


def partial_path(target: Path) -> Path:
    """Where the rows of ``target`` are written until the run completes."""
    return target.with_name(target.name + PARTIAL)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_separate(inputs: Iterable[Path], outputs: Dict[str, Path]) -> None:
    """Refuse output folders that are, or are inside, an input folder, and inputs inside an output folder.

    ``outputs`` maps an option name (``--draw``) to its folder. Paths are compared after resolving links, so a
    link to the input folder is caught too. Raises :class:`ArgumentError` naming the option and both paths.
    """
    resolved_inputs = [(Path(p), Path(os.path.realpath(p))) for p in inputs]
    for option, folder in outputs.items():
        out = Path(os.path.realpath(folder))
        for given, source in resolved_inputs:
            if _inside(out, source) or _inside(source, out):
                raise ArgumentError(
                    f"{option} {folder} overlaps the input {given}: files written there could replace or mix with "
                    f"the inputs; choose a folder outside the inputs (e.g. {Path(folder).name}-out beside them)"
                )


class UniqueNames:
    """Relative output names, each given out once per run: a repeated name gets ``_2``, ``_3``, ... before its
    suffix (compared case-insensitively, for file systems that ignore case)."""

    def __init__(self) -> None:
        self._taken: Set[str] = set()

    def claim(self, name: Path) -> Path:
        candidate, number = name, 1
        while candidate.as_posix().lower() in self._taken:
            number += 1
            candidate = name.with_name(f"{name.stem}_{number}{name.suffix}")
        if number > 1:
            logger.warning("%s is already written by this run; writing %s instead", name, candidate)
        self._taken.add(candidate.as_posix().lower())
        return candidate


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so ``path`` is either
    its old content or all of ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def warn_if_left_partial(target: Path) -> None:
    """Log a warning when an earlier run into ``target`` was interrupted (its ``.partial`` file is still there)."""
    left = partial_path(target)
    if left.exists():
        logger.warning("%s was left by an interrupted run (incomplete results); this run replaces it", left)


class LineFile:
    """Text lines written to ``NAME.partial`` with one system call each, renamed to ``NAME`` by :meth:`commit`.

    :meth:`abort` (a failed or interrupted run) leaves ``NAME`` untouched and ``NAME.partial`` cut back to its last
    whole line. A write that fails (full disk) is cut back the same way before the error is raised.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.partial = partial_path(self.target)
        warn_if_left_partial(self.target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._fd: Optional[int] = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._whole = 0  # bytes of whole lines in the file
        self._pending = 0  # bytes of the line being written
        self.lines = 0

    def write(self, line: str) -> None:
        if self._fd is None:
            raise RuntimeError(f"{self.target} is already closed")
        data = (line + "\n").encode("utf-8")
        self._pending = len(data)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException as exc:
            self._cut_back()
            if isinstance(exc, OSError) and is_resource_error(exc):
                raise OSError(exc.errno, f"{os.strerror(exc.errno or 0)} while writing {self.partial} (it keeps "
                              f"the {self.lines} whole row(s) written before)") from exc
            raise
        self._accept()

    def _accept(self) -> None:
        self._whole += self._pending
        self._pending = 0
        self.lines += 1

    def _cut_back(self) -> None:
        """Keep the row being written if it reached the file whole (a stop can land just after its last byte),
        otherwise cut the file back to the last whole row."""
        if self._fd is None:
            return
        try:
            size = os.fstat(self._fd).st_size
            if self._pending and size == self._whole + self._pending:
                self._accept()
            elif size != self._whole:
                os.ftruncate(self._fd, self._whole)
        except OSError:
            logger.warning("could not cut %s back to its last whole row", self.partial)

    def commit(self) -> None:
        """The run completed: flush to disk and rename ``NAME.partial`` to ``NAME``."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        """The run stopped early: keep ``NAME`` as it was and ``NAME.partial`` with the whole rows written."""
        if self._fd is None:
            return
        self._cut_back()
        fd, self._fd = self._fd, None
        os.close(fd)
        if self._whole:
            logger.warning("incomplete results (%d row(s)) are in %s; %s was left as it was", self.lines,
                           self.partial, self.target)
        else:
            self.partial.unlink(missing_ok=True)
