"""Where the rows of ``detect`` and ``represent`` go: the output writer, crops, drawn copies, the tally."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..io.outputs import OutputFolder, OutputRefusedError, PathClaims, is_resource_error
from ..io.writers import VideoFile, encode_image, open_rows
from ..plan import RunPlan
from ..records import ImageRecord
from ..rows import image_row
from ..sources import Source, WorkItem, printable
from ..structures import Faces
from ..summary import run_summary

logger = logging.getLogger("deepbatch.cli")


@dataclass
class Tally:
    """Counts for the summary line, and the failures to list."""

    items: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, item: WorkItem, row: Dict[str, Any]) -> None:
        self.items += 1
        self.frames += int(item.source.video and item.frame is not None)
        if row["error"] is not None:
            where = printable(item.source.location) + (f" frame {item.frame}" if item.frame is not None else "")
            self.failures.append((where, row["error"]))
            return
        self.faces += len(row["faces"])
        self.no_face += int(not row["faces"])

    def summary(self, verb: str) -> str:
        return run_summary(verb, self.items - self.frames, self.faces, self.no_face, len(self.failures),
                           time.perf_counter() - self.started, frames=self.frames)


class Sink:
    """Where the rows of ``detect`` and ``represent`` go: the ``--output`` writer, face crops and annotated copies
    (``detect``), the progress bar and the tally, as the run ``plan`` says. A row names the files written for it
    (``drawn``, and ``crop`` per face); no two files of a run share a name, annotated copies and crops included; the
    frames of a video are drawn into one annotated video. An image whose files cannot be written (a name too long
    for the file system, a link in the way) gets an error row, and the run goes on."""

    def __init__(self, plan: RunPlan, total: Optional[int], embedding_size: int = 0):
        from tqdm import tqdm

        outputs = plan.outputs
        self.rows = open_rows(None if outputs.rows is None else str(outputs.rows), outputs.kind, embedding_size)
        self.crops = None if outputs.crops is None else OutputFolder(outputs.crops, plan.inputs)
        self.draw = None if outputs.draw is None else OutputFolder(outputs.draw, plan.inputs)
        self.claims = PathClaims()
        self.frame_step = plan.frame_step
        self.video: Optional[Tuple[Source, VideoFile]] = None
        self.tally = Tally()
        self.progress = tqdm(total=total, unit="img", file=sys.stderr, disable=not plan.progress, dynamic_ncols=True,
                             desc=plan.command)

    def add(self, item: WorkItem, record: Optional[ImageRecord]) -> None:
        """Record one image or frame: the row of its ``record`` (the ``item``'s own error when it could not be
        read), and the drawn copy and crops ``detect`` asks for."""
        location = printable(item.source.location)
        if record is None:
            row = image_row(location, None, None, item.error, item.frame, item.timestamp)
        else:
            row = record.row(location, item.frame, item.timestamp)
            if record.error is None and record.image is not None and record.faces is not None:
                try:
                    self._write_images(item, record.image, record.faces, record.crops, row)
                except (OSError, OutputRefusedError) as exc:
                    if is_resource_error(exc):
                        raise
                    row = image_row(location, None, None, exc, item.frame, item.timestamp)
        self.rows.write(row)
        self.tally.add(item, row)
        self.progress.update(1)

    def _claim(self, folder: OutputFolder, relative: Path, count: int = 0) -> Path:
        """A relative name under ``folder`` that no other file of this run has: ``relative`` itself (``count`` > 0:
        the crop stem of ``count`` faces), else with ``_2``, ``_3``, ... before its suffix."""
        number = 1
        while True:
            candidate = relative if number == 1 else relative.with_name(
                f"{relative.stem}_{number}{relative.suffix}" if count == 0 else f"{relative.name}_{number}")
            files = [candidate] if count == 0 else [candidate.parent / f"{candidate.name}_face{k}.jpg"
                                                    for k in range(count)]
            full = [folder.path(f) for f in files]
            if self.claims.free(full):
                self.claims.claim(full)
                if number > 1:
                    logger.warning("%s is already written by this run; writing %s instead", relative, candidate)
                return candidate
            number += 1

    def _write_images(self, item: WorkItem, image: np.ndarray, faces: Faces, crops: Optional[List[np.ndarray]],
                      row: Dict[str, Any]) -> None:
        from ..visualize import draw_faces

        if self.draw is not None and item.source.video:
            row["drawn"] = str(self._video(item.source).path)
            self._video(item.source).write(draw_faces(image, faces))
        elif self.draw is not None:
            name = self._claim(self.draw, item.output_name())
            row["drawn"] = str(self.draw.write(name, encode_image(name, draw_faces(image, faces))))
        if self.crops is not None and crops:
            stem = self._claim(self.crops, item.crop_stem(), count=len(crops))
            for k, (pixels, entry) in enumerate(zip(crops, row["faces"])):
                name = stem.parent / f"{stem.name}_face{k}.jpg"
                entry["crop"] = str(self.crops.write(name, encode_image(name, pixels)))

    def _video(self, source: Source) -> VideoFile:
        """The annotated video of ``source`` (the previous one is finished when the next begins)."""
        if self.video is not None and self.video[0] == source:
            return self.video[1]
        from ..io.video import video_info

        self._finish_video(complete=True)
        if self.draw is None:
            raise RuntimeError("an annotated video needs --draw")
        name = self._claim(self.draw, source.name.with_suffix(".mp4"))
        writer = VideoFile(name, video_info(source.path).fps / self.frame_step, self.draw)
        self.video = (source, writer)
        return writer

    def _finish_video(self, complete: bool) -> None:
        if self.video is not None:
            self.video[1].close(complete)
            self.video = None

    def close(self, complete: bool = True) -> None:
        self.progress.close()
        try:
            self._finish_video(complete)
        finally:
            self.rows.close(complete)
