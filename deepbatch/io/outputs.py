"""Writing results so that nothing is destroyed and nothing is mismatched.

* Output folders never overlap input folders (:func:`check_separate`), so annotated copies cannot replace photos.
* Every file is created new (exclusive create, links not followed) under a short temporary name beside its target
  and renamed into place when it is complete (:func:`write_atomic`, :class:`LineFile`, :class:`OutputFolder`): a
  name that exists as a symbolic link is replaced as a link, never written through, and files get the permissions
  the umask gives. A run that is killed leaves the previous complete result, plus a file ``NAME.partial`` that
  holds the rows written so far and that the next run reports (:func:`warn_if_left_partial`).
* Files under ``--draw`` and ``--save-crops`` stay inside the folder they were aimed at: a subfolder that is a
  symbolic link is refused, and so is a name that is (a hard link of) an input of the run (:class:`OutputFolder`).
* Rows are whole: a row is one ``write`` to the file, and a failed write (full disk) is cut back to the last whole row.
* File names given out in one run are unique (:class:`UniqueNames`, :class:`PathClaims`): two inputs never write the
  same output file, and an annotated copy never takes the name of a crop.
* One run per output at a time (:class:`RunLock`): a second run is refused, naming the first.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set, Tuple

from ..errors import ArgumentError
from ..errors import OutputBusyError as OutputBusyError
from ..errors import OutputRefusedError as OutputRefusedError

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


Inode = Tuple[int, int]
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def temporary_name(suffix: str = "") -> str:
    """A short hidden name for a file being written (never derived from the target: a long target name must not
    make the temporary one too long for the file system); ``suffix`` for writers that pick a format by it."""
    return f".deepbatch-{secrets.token_hex(6)}{PARTIAL}{suffix[:16]}"


def create_new(name: str, dir_fd: Optional[int] = None) -> int:
    """Open ``name`` for writing as a new file: fails if anything (a file or a link) is there, follows no link,
    mode 0o666 less the umask."""
    return os.open(name, _CREATE, 0o666, dir_fd=dir_fd)


def inode(path: os.PathLike, follow: bool = True) -> Optional[Inode]:
    """``(device, inode)`` of ``path``, or None when it does not exist."""
    try:
        info = os.stat(path, follow_symlinks=follow)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a new temporary file in the same folder and a rename, so ``path`` is either
    its old content or all of ``data``; a link at ``path`` is replaced, not written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temporary_name()
    fd = create_new(str(tmp))
    try:
        try:
            _write_fd(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class PathClaims:
    """Every output file given out in one run, by its absolute path (case-insensitively, for file systems that
    ignore case): an annotated copy and a crop can never be given the same file, in one folder or two."""

    def __init__(self) -> None:
        self._taken: Set[str] = set()

    @staticmethod
    def _key(path: Path) -> str:
        return os.path.normpath(os.path.abspath(path)).lower()

    def free(self, paths: Iterable[Path]) -> bool:
        return not any(self._key(p) in self._taken for p in paths)

    def claim(self, paths: Iterable[Path]) -> None:
        self._taken.update(self._key(p) for p in paths)


class OutputFolder:
    """A folder that ``--draw`` or ``--save-crops`` writes into, and nowhere else.

    Subfolders are created or entered one at a time without following links: a subfolder that is a symbolic link
    (``out/photos -> ../photos``) refuses the write with :class:`OutputRefusedError`. A file is created new under a
    temporary name and renamed over its target; a target that is an input of the run (``inputs``: their inodes) is
    refused. The folder itself may be a link the user gave; it is checked against the inputs before the run.
    """

    def __init__(self, root: Path, inputs: FrozenSet[Inode] = frozenset()):
        self.root = Path(root)
        self.inputs = inputs

    def _enter(self, relative: Path) -> int:
        """A descriptor of the folder ``relative`` under the root, created as needed, no link followed below it."""
        if relative.is_absolute() or ".." in relative.parts:
            raise OutputRefusedError(f"{relative} is not a name inside {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        walked = self.root
        try:
            for part in relative.parts:
                walked = walked / part
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    inner = os.open(part, _OPEN_DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise OutputRefusedError(
                            f"{walked} is a symbolic link or not a folder; deepbatch writes only inside "
                            f"{self.root} and never through links") from None
                    raise
                os.close(fd)
                fd = inner
        except BaseException:
            os.close(fd)
            raise
        return fd

    def path(self, relative: Path) -> Path:
        return self.root / relative

    def write(self, relative: Path, data: bytes) -> Path:
        """Write ``data`` as ``root/relative`` (whole or not at all); returns that path."""
        relative = Path(relative)
        fd = self._enter(relative.parent)
        try:
            return self._place(fd, relative, lambda tmp: self._fill(fd, tmp, data))
        finally:
            os.close(fd)

    @staticmethod
    def _fill(dir_fd: int, tmp: str, data: bytes) -> None:
        out = create_new(tmp, dir_fd)
        try:
            _write_fd(out, data)
        finally:
            os.close(out)

    def _place(self, dir_fd: int, relative: Path, fill: Callable[[str], None]) -> Path:
        """Fill a new temporary file in the folder ``dir_fd`` and rename it to ``relative``'s name."""
        name = relative.name
        try:
            there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and stat.S_ISDIR(there.st_mode):
            raise OutputRefusedError(f"{self.root / relative} is a folder; it is not replaced")
        if there is not None and (there.st_dev, there.st_ino) in self.inputs:
            raise OutputRefusedError(f"{self.root / relative} is an input of this run; it is not overwritten")
        tmp = temporary_name()
        try:
            fill(tmp)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        return self.root / relative

    def staging(self, relative: Path) -> Tuple[int, str, str]:
        """For writers that need a path (OpenCV's video writer): ``(folder descriptor, temporary name, its path)``;
        the temporary file is created new first. Finish with :meth:`finish_staging`."""
        relative = Path(relative)
        fd = self._enter(relative.parent)
        tmp = temporary_name(relative.suffix)
        os.close(create_new(tmp, fd))
        return fd, tmp, f"/proc/self/fd/{fd}/{tmp}" if os.path.isdir("/proc/self/fd") else str(
            Path(os.path.realpath(self.root / relative.parent)) / tmp)

    def finish_staging(self, fd: int, tmp: str, relative: Path, complete: bool) -> None:
        try:
            if complete:
                self._place(fd, Path(relative), lambda name: os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd))
            else:
                os.unlink(tmp, dir_fd=fd)
        finally:
            os.close(fd)


def _process_start(pid: int) -> Optional[str]:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``), or None where that is unknown:
    a pid reused by a later process is then told apart from the run that wrote a lock."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, start: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


class RunLock:
    """``NAME.lock`` beside an output (inside it for a folder): created new, holding the pid, host and start time
    of the run that writes the output. A second run is refused while that process lives; a lock of a process that
    is gone (on this host), or left by this very process, is taken over."""

    def __init__(self, target: Path, folder: bool = False):
        target = Path(os.path.realpath(target))
        self.path = target / ".deepbatch.lock" if folder else target.with_name(target.name + ".lock")
        self.target = target
        self._held = False

    def acquire(self, option: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "ticks": _process_start(os.getpid())}
        for _ in range(2):
            try:
                fd = create_new(str(self.path))
            except FileExistsError:
                self._take_over_if_stale(option)
                continue
            try:
                _write_fd(fd, (json.dumps(mine) + "\n").encode())
            finally:
                os.close(fd)
            self._held = True
            return
        raise OutputBusyError(f"{option} {self.target}: could not take the lock {self.path}")

    def _take_over_if_stale(self, option: str) -> None:
        try:
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise OutputBusyError(f"{self.path} is not a lock file deepbatch wrote; remove it")
            with open(self.path, "rb") as handle:
                owner = json.loads(handle.read(4096) or b"{}")
            pid, host = int(owner["pid"]), str(owner.get("host", ""))
        except (OSError, ValueError, KeyError, TypeError):
            owner, pid, host = {}, -1, ""
        same_host = host == socket.gethostname()
        ticks = owner.get("ticks")
        if pid > 0 and (not same_host or (pid != os.getpid() and _alive(pid, None if ticks is None else str(ticks)))):
            raise OutputBusyError(
                f"{option} {self.target} is being written by another deepbatch run (pid {pid} on "
                f"{host or 'this host'}, started {owner.get('started', '?')}); wait for it to finish, or remove "
                f"{self.path} if that run is gone")
        logger.warning("taking over %s, left by a run that is gone (pid %s)", self.path, pid if pid > 0 else "?")
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self._held:
            self._held = False
            self.path.unlink(missing_ok=True)


def warn_if_left_partial(target: Path) -> None:
    """Log a warning when an earlier run into ``target`` was interrupted (its ``.partial`` file is still there)."""
    left = partial_path(target)
    if os.path.lexists(left):
        logger.warning("%s was left by an interrupted run (incomplete results); this run replaces it", left)


def open_partial(partial: Path) -> int:
    """A new ``NAME.partial`` to write: what is there (an earlier run's rows, or a link) is removed first, as a name,
    never opened; then the file is created exclusively without following links."""
    try:
        os.unlink(partial)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise OutputRefusedError(f"{partial} is a folder; remove it or choose another --output") from None
    return create_new(str(partial))


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
        self._fd: Optional[int] = open_partial(self.partial)
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
