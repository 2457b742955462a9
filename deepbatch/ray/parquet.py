"""Writing a Dataset as a Parquet dataset folder, with the marker that says deepbatch wrote it, and reading its
summary back."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..errors import ArgumentError
from ..rows import import_pyarrow

logger = logging.getLogger(__name__)


DATASET_MARKER = "_deepbatch_dataset"  # written first into every dataset folder deepbatch writes


def parquet_target(output: Union[str, Path]) -> Path:
    """``output`` checked as a Parquet dataset folder to write: named ``*.parquet`` (so that a mistyped folder is
    never replaced), not an existing file, not a symbolic link (deepbatch never writes through one, and a folder
    cannot replace a link), and, when it exists, a folder deepbatch wrote (:func:`ours`)."""
    target = Path(output).expanduser()
    if target.suffix.lower() != ".parquet":
        raise ArgumentError(
            f"Parquet output must be named *.parquet, got {str(output)!r}; e.g. --output results.parquet"
        )
    if target.is_symlink():
        raise ArgumentError(
            f"{target} is a symbolic link; deepbatch does not write a dataset through a link (it would replace what "
            "the link points to): remove the link or pick another name"
        )
    if target.is_file():
        raise ArgumentError(
            f"{target} is a file; Ray writes a folder of Parquet part files: remove it or pick another name"
        )
    if target.is_dir() and not ours(target):
        raise ArgumentError(
            f"{target} is a folder that deepbatch did not write (no {DATASET_MARKER} marker, or other files in it); "
            "it is not replaced: remove it or pick another name"
        )
    return target


def ours(folder: Path) -> bool:
    """Whether ``folder`` is empty, or a dataset folder deepbatch wrote: its marker file, and nothing but plain
    ``.parquet`` part files beside it."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    if not entries:
        return True
    names = {e.name for e in entries}
    return DATASET_MARKER in names and all(
        e.is_file(follow_symlinks=False) and (e.name == DATASET_MARKER or e.name.endswith(".parquet"))
        for e in entries)


def _remove_ours(folder: Path) -> None:
    """Remove ``folder`` (not a link) if deepbatch wrote it; a link is removed as a name; else refuse."""
    if not os.path.lexists(folder):
        return
    if folder.is_symlink():
        folder.unlink()
        return
    if not folder.is_dir() or not ours(folder):
        raise ArgumentError(f"{folder} is in the way and deepbatch did not write it; remove it to run")
    shutil.rmtree(folder)


def check_plan_outputs(output: Optional[str], draw: Optional[str], crops: Optional[str]) -> Path:
    """Refuse, before anything runs, what ``--engine ray`` cannot do: no Parquet ``--output``, images written on
    this machine (``--draw``, ``--save-crops``); the dataset folder to write."""
    if output in (None, "-"):
        raise ArgumentError("--engine ray writes a Parquet dataset: pass --output results.parquet")
    for option, value in (("draw", draw), ("save_crops", crops)):
        if value:
            raise ArgumentError(f"--{option.replace('_', '-')} needs the images on this machine; use --engine local")
    return parquet_target(str(output))


def write_parquet(ds: Any, output: Union[str, Path]) -> Path:
    """Run ``ds`` and write it as a Parquet dataset: a folder ``output`` of part files and a marker file.

    The dataset is written to a new sibling folder ``.NAME.partial`` (its marker first) and swapped in only when the
    whole run succeeded, so a failed or interrupted run leaves the previous ``output`` as it was (and a failed one
    no partial folder; a killed one leaves ``.NAME.partial``, which the next run reports and replaces). An old
    folder is removed only when deepbatch wrote it (:func:`ours`). pyarrow, pandas, Spark and DuckDB read the folder
    as one table (``pyarrow.parquet.read_table(output)``)."""
    given = parquet_target(output)
    target = Path(os.path.realpath(given.parent)) / given.name
    staging = target.with_name(f".{target.name}.partial")
    previous = target.with_name(f".{target.name}.previous")
    if os.path.lexists(staging):
        logger.warning("%s was left by an interrupted run (incomplete results); this run replaces it", staging)
        _remove_ours(staging)
    _remove_ours(previous)
    os.mkdir(staging)
    from ..io.outputs import create_new

    os.close(create_new(str(staging / DATASET_MARKER)))
    from ray.data import SaveMode

    try:
        ds.write_parquet(str(staging), mode=SaveMode.APPEND)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if os.path.lexists(target):
        parquet_target(target)  # still ours: checked again just before it is moved aside
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def summarize(output: Union[str, Path]) -> Tuple[int, int, int, List[Tuple[str, str]]]:
    """``(images, faces, images without a face, [(path, error), ...])`` read back from a written Parquet dataset."""
    import_pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(str(output), columns=["path", "faces", "error"])
    counts = pc.fill_null(pc.list_value_length(table["faces"]), 0).to_numpy()
    errors = table["error"].to_pylist()
    failed = [(str(path), error) for path, error in zip(table["path"].to_pylist(), errors) if error]
    ok = np.array([not e for e in errors], bool)
    return table.num_rows, int(counts[ok].sum()), int(((counts == 0) & ok).sum()), failed
