"""What a run reads: command-line paths expanded into image files, folder contents, video frames and URLs.

Shared by the command line and the Ray engine. :func:`plan_sources` checks every path before any model loads (a
missing file or an unexpanded glob is an :class:`~deepbatch.errors.ArgumentError`, exit code 2 on the command line);
``-`` reads more paths from standard input, one per line. :func:`iter_items` then yields one :class:`WorkItem` per
image and per video frame, lazily.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Optional, Sequence

from .errors import ArgumentError, ImageError, ImageReadError

logger = logging.getLogger(__name__)

URL_PREFIXES = ("http://", "https://")
GLOB_CHARACTERS = set("*?[")
_WRITABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_url(text: str) -> bool:
    return text.lower().startswith(URL_PREFIXES)


@dataclass(frozen=True)
class Source:
    """One input to process: an image file or URL, or a video whose frames are read in turn. ``location`` is the
    path or URL as given; ``name`` is the path relative to the folder it was found in (or its file name), used to
    name annotated copies and crops."""

    location: str
    name: Path
    video: bool = False

    @property
    def path(self) -> Path:
        return Path(self.location)


@dataclass
class WorkItem:
    """One image or video frame to process, in run order (``number``). ``payload`` is what the detector loads (the
    path or URL, or the decoded frame); ``error`` is set when the source could not be read at all."""

    number: int
    source: Source
    payload: Any = None
    frame: Optional[int] = None
    timestamp: Optional[float] = None
    error: Optional[Exception] = None

    def output_name(self) -> Path:
        """Relative file name for an annotated copy of this image: the input's relative path, with ``.jpg`` added
        when OpenCV cannot write its format (``x.pgm`` -> ``x.pgm.jpg``)."""
        suffix = self.source.name.suffix.lower()
        return self.source.name if suffix in _WRITABLE_SUFFIXES else self.source.name.with_name(
            self.source.name.name + ".jpg")

    def crop_stem(self) -> Path:
        """Relative name that this image's crop files start with: its path with the suffix folded in, so that the
        crops of ``x.jpg`` and ``x.png`` differ (``x_jpg_face0.jpg``, ``x_png_face0.jpg``); a video frame adds its
        index (``clip_mp4_frame000012``)."""
        name = self.source.name
        stem = f"{name.stem}_{name.suffix.lstrip('.').lower()}" if name.suffix else name.name
        if self.source.video:
            stem += f"_frame{self.frame or 0:06d}"
        return name.with_name(stem)


def _read_stdin_paths(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        if line.strip():
            yield line.strip()


def printable(text: str) -> str:
    """``text`` as valid UTF-8 for rows and messages: a file name that is not UTF-8 keeps its bytes as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def name_problem(location: str) -> Optional[str]:
    """Why the file ``location`` cannot be processed by name alone (its name is not UTF-8, which no row can hold),
    or None."""
    if is_url(location):
        return None
    try:
        location.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8; rename the file (e.g. with convmv) to process it"
    return None


def _url_name(url: str) -> Path:
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return Path(tail or "url")


def plan_sources(paths: Sequence[str], stdin: Optional[IO[str]] = None,
                 check: Optional[Callable[[str], None]] = None) -> List[Source]:
    """Expand command-line ``paths``: folders into their image files (recursive, sorted), video files by
    extension, ``http(s)://`` URLs as they are, ``-`` into the paths read from ``stdin`` (one per line).

    ``check`` is called with every path as it is read (those from ``stdin`` included, before the next line is
    read), then with every file a folder holds; it raises to refuse one (an output that overlaps it).
    Raises :class:`ArgumentError` naming every path that does not exist (and saying when it looks like a glob the
    shell did not expand), before anything is loaded.
    """
    from .io.images import list_image_files
    from .io.video import is_video

    texts: List[str] = []
    for text in paths:
        for given in (_read_stdin_paths(stdin or sys.stdin) if text == "-" else [text]):
            if check is not None and not is_url(given) and Path(given).expanduser().exists():
                check(given)
            texts.append(given)
    missing = [text for text in texts if not is_url(text) and not Path(text).expanduser().exists()]
    if missing:
        globs = [text for text in missing if GLOB_CHARACTERS & set(text)]
        hint = (f"; {globs[0]!r} looks like a pattern the shell did not expand (no file matches it)" if globs else "")
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ArgumentError(f"no such file or folder: {shown}{hint}")
    sources: List[Source] = []
    for text in texts:
        if is_url(text):
            sources.append(Source(text, _url_name(text)))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            found = list_image_files(path)
            if not found:
                logger.warning("no image files under %s", path)
            for found_path in found:
                if check is not None:
                    check(str(found_path))
                sources.append(Source(str(found_path), found_path.relative_to(path)))
        else:
            name = path if not path.is_absolute() and ".." not in path.parts else Path(path.name)
            sources.append(Source(str(path), name, video=is_video(path)))
    return sources


def count_items(sources: Sequence[Source], frame_step: int) -> Optional[int]:
    """How many images and frames the run will give, as declared (None when a video does not say)."""
    from .io.video import video_info

    total = 0
    for source in sources:
        if not source.video:
            total += 1
            continue
        try:
            frames = video_info(source.path).frame_count
        except ImageError:
            total += 1  # reported as one failed item
            continue
        if frames <= 0:
            return None
        total += -(-frames // frame_step)
    return total


def iter_items(sources: Sequence[Source], frame_step: int = 1) -> Iterator[WorkItem]:
    """One :class:`WorkItem` per image and per video frame, lazily (one frame decoded at a time)."""
    from .io.video import read_frames

    number = 0
    for source in sources:
        problem = name_problem(source.location)
        if problem is not None:
            yield WorkItem(number, source, error=ImageReadError(problem, source=printable(source.location)))
            number += 1
            continue
        if not source.video:
            yield WorkItem(number, source, payload=source.location)
            number += 1
            continue
        try:
            for frame in read_frames(source.path, step=frame_step):
                yield WorkItem(number, source, payload=frame.image, frame=frame.index, timestamp=frame.timestamp)
                number += 1
        except ImageError as exc:
            yield WorkItem(number, source, error=exc)
            number += 1
