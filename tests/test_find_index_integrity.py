"""``find`` answers from a read-only folder, and rebuilds an index that is damaged or was edited, with a warning.

Real photos, the real default models; the index file is damaged the way a crash, a disk or a person would.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest

from deepbatch.api.find import find, update_index

DB_PHOTOS = ["img1.jpg", "img2.jpg", "couple.jpg"]


@pytest.fixture
def db(tmp_path: Path, dataset_dir: Path, weights_dir: Path) -> Path:
    folder = tmp_path / "db"
    folder.mkdir()
    for name in DB_PHOTOS:
        shutil.copy(dataset_dir / name, folder / name)
    return folder


def identities(table: List[dict]) -> List[str]:
    return sorted({os.path.basename(row["identity"]) for row in table})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_still_searched(db: Path, dataset_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    db.chmod(0o555)
    try:
        with caplog.at_level(logging.WARNING, logger="deepbatch"):
            table = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True)[0]
    finally:
        db.chmod(0o755)
    assert "img1.jpg" in identities(table)
    warnings = [r for r in caplog.records if "could not save the face index" in r.getMessage()]
    assert len(warnings) == 1 and str(db) in warnings[0].getMessage()
    assert not list(db.glob("*.npz")) and not list(db.glob("*.tmp"))


def test_a_folder_where_the_index_cannot_be_written_is_still_searched(db: Path, dataset_dir: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The same refusal without relying on permissions (which root ignores): the index's name is a folder."""
    _, update = update_index(db, silent=True)
    update.path.unlink()
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        update.path.mkdir()  # os.replace cannot put a file where a folder is
        (update.path / "keep").write_bytes(b"")
        table = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True)[0]
    assert "img1.jpg" in identities(table)
    assert sum("could not save the face index" in r.getMessage() for r in caplog.records) == 1


def _arrays(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _rewrite(path: Path, change: Callable[[Dict[str, np.ndarray]], None]) -> None:
    arrays = _arrays(path)
    change(arrays)
    with open(path, "wb") as out:
        np.savez(out, **arrays)


def _drop_a_row(arrays: Dict[str, np.ndarray]) -> None:
    arrays["embeddings"] = arrays["embeddings"][:-1]  # mismatched arrays: IndexError before


def _edit_an_embedding(arrays: Dict[str, np.ndarray]) -> None:
    arrays["embeddings"] = arrays["embeddings"].copy()
    arrays["embeddings"][0] = arrays["embeddings"][-1]  # a hand edit that keeps every shape


def _rename_an_identity(arrays: Dict[str, np.ndarray]) -> None:
    arrays["identities"] = np.array(["someone_else.jpg"] + arrays["identities"].tolist()[1:])


def _flat_boxes(arrays: Dict[str, np.ndarray]) -> None:
    arrays["boxes"] = arrays["boxes"].ravel()


def _no_checksum(arrays: Dict[str, np.ndarray]) -> None:
    del arrays["checksum"]


def _not_an_index(path: Path) -> None:
    path.write_bytes(b"not an index")


DAMAGE = {
    "mismatched_arrays": lambda p: _rewrite(p, _drop_a_row),
    "edited_embedding": lambda p: _rewrite(p, _edit_an_embedding),
    "edited_identity": lambda p: _rewrite(p, _rename_an_identity),
    "flat_boxes": lambda p: _rewrite(p, _flat_boxes),
    "no_checksum": lambda p: _rewrite(p, _no_checksum),
    "not_an_index": _not_an_index,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_or_edited_index_is_rebuilt_with_a_warning(db: Path, damage: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    first, update = update_index(db, silent=True)
    DAMAGE[damage](update.path)
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        rebuilt, again = update_index(db, silent=True)
    assert sum("it is rebuilt from the images" in r.getMessage() and str(update.path) in r.getMessage()
               for r in caplog.records) == 1
    assert again.embedded == len(DB_PHOTOS)
    order = np.argsort(rebuilt.identities, kind="stable")
    expected = np.argsort(first.identities, kind="stable")
    assert rebuilt.identities[order].tolist() == first.identities[expected].tolist()
    np.testing.assert_allclose(rebuilt.embeddings[order], first.embeddings[expected], atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepbatch"):
        _, third = update_index(db, silent=True)  # healed: read as it is, nothing embedded
    assert third.embedded == 0 and not [r for r in caplog.records if "rebuilt" in r.getMessage()]
