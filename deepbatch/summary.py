"""The one line a command-line run ends with, whatever engine ran it (local threads or Ray)."""

from __future__ import annotations

from typing import Any, Optional


def run_summary(verb: str, images: int, faces: int, no_face: int, failed: int, elapsed: float, *,
                frames: Optional[int] = None, workers: Optional[int] = None, output: Any = None) -> str:
    """``"detect: 3 image(s) and 0 video frame(s): 2 face(s), 1 without a face, 0 failed; 1.2 s (2.5 images/s)"``.

    ``images`` counts the still images, ``frames`` the video frames (left out when ``None``), ``workers`` the Ray
    workers (said when given); the rate is per image or frame over ``elapsed`` seconds; ``output`` is where the
    results went (said when given).
    """
    elapsed = max(elapsed, 1e-9)
    what = f"{images} image(s)"
    if frames is not None:
        what += f" and {frames} video frame(s)"
    if workers is not None:
        what += f" on {workers} Ray worker(s)"
    rate = (images + (frames or 0)) / elapsed
    line = (f"{verb} {what}: {faces} face(s), {no_face} without a face, {failed} failed; {elapsed:.1f} s "
            f"({rate:.1f} images/s)")
    return line if output is None else f"{line}; results in {output}"
