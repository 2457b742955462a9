"""``find``: the database folder is indexed once and updated incrementally; many queries are searched at once."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from deepbatch.api.find import (
    RESULT_COLUMNS,
    EmptyDatabaseError,
    IndexFormatError,
    find,
    update_index,
)

DB_PHOTOS = ["img1.jpg", "img2.jpg", "img17.jpg", "img22.jpg", "couple.jpg"]  # couple.jpg holds two faces
DB_FACES = 6
# A photo matched against its own stored embedding: the same pixels through the same models.
SELF_DISTANCE = 1e-6


@pytest.fixture()
def db(tmp_path: Path, dataset_dir: Path, weights_dir: Path) -> Path:
    folder = tmp_path / "db"
    (folder / "people").mkdir(parents=True)
    for name in DB_PHOTOS:
        shutil.copy(dataset_dir / name, folder / ("people" if name == "couple.jpg" else "") / name)
    return folder


def identities(table: List[dict]) -> List[str]:
    return [Path(row["identity"]).name for row in table]


def test_first_update_embeds_every_image_and_the_next_none(db: Path) -> None:
    index, first = update_index(db, silent=True)
    _, second = update_index(db, silent=True)
    assert (first.embedded, len(index), int(index.valid.sum())) == (len(DB_PHOTOS), DB_FACES, DB_FACES)
    assert (second.embedded, second.modified) == (0, False)


def test_images_in_subfolders_are_indexed_by_relative_path(db: Path) -> None:
    index, _ = update_index(db, silent=True)
    assert "people/couple.jpg" in index.identities.tolist()


@pytest.mark.parametrize("change, added, changed, removed", [
    ("add", ["img3.jpg"], [], []),
    ("remove", [], [], ["img2.jpg"]),
    ("rewrite", [], ["img2.jpg"], []),
])
def test_only_added_or_changed_images_are_embedded(db: Path, dataset_dir: Path, change: str, added: List[str],
                                                   changed: List[str], removed: List[str]) -> None:
    update_index(db, silent=True)
    if change == "add":
        shutil.copy(dataset_dir / "img3.jpg", db / "img3.jpg")
    elif change == "remove":
        (db / "img2.jpg").unlink()
    else:
        cv2.imwrite(str(db / "img2.jpg"), cv2.flip(cv2.imread(str(dataset_dir / "img2.jpg")), 1))
    index, update = update_index(db, silent=True)
    assert (update.added, update.changed, update.removed) == (added, changed, removed)
    assert update.embedded == len(added) + len(changed)
    assert sorted(set(index.identities.tolist())) == sorted(
        {*(n if n != "couple.jpg" else "people/couple.jpg" for n in DB_PHOTOS), *added} - set(removed))


@pytest.mark.parametrize("change_detection, embedded", [("stat", 1), ("content", 0)])
def test_touching_a_file_re_embeds_it_only_when_changes_are_read_from_file_stats(
        db: Path, change_detection: str, embedded: int) -> None:
    update_index(db, silent=True, change_detection=change_detection)
    stat = (db / "img1.jpg").stat()
    os.utime(db / "img1.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert update_index(db, silent=True, change_detection=change_detection)[1].embedded == embedded


def test_index_is_written_atomically_beside_the_photos(db: Path) -> None:
    _, update = update_index(db, silent=True)
    assert update.path.parent == db and update.path.is_file()
    assert [p.name for p in db.iterdir() if p.suffix == ".tmp"] == []


def test_an_image_without_a_face_is_kept_without_embedding_and_not_retried(db: Path) -> None:
    cv2.imwrite(str(db / "blank.png"), np.full((200, 200, 3), 127, np.uint8))
    index, first = update_index(db, silent=True)
    _, second = update_index(db, silent=True)
    assert "blank.png" in first.failed
    assert not index.valid[index.identities == "blank.png"].any()
    assert second.embedded == 0


def test_a_photo_finds_itself_first(db: Path, dataset_dir: Path) -> None:
    tables = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True)
    assert len(tables) == 1
    assert identities(tables[0])[0] == "img1.jpg" and tables[0][0]["distance"] < SELF_DISTANCE
    assert list(tables[0][0]) == list(RESULT_COLUMNS)


def test_rows_are_sorted_and_within_the_threshold(db: Path, dataset_dir: Path) -> None:
    table = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True)[0]
    distances = [row["distance"] for row in table]
    assert distances == sorted(distances) and all(d <= row["threshold"] for d, row in zip(distances, table))


def test_one_table_per_query_face(db: Path, dataset_dir: Path) -> None:
    tables = find(str(dataset_dir / "couple.jpg"), db, return_type="dict", silent=True)
    assert len(tables) == 2
    assert all(identities(t)[0] == "couple.jpg" for t in tables)


def test_many_queries_in_one_call_equal_one_call_each(db: Path, dataset_dir: Path) -> None:
    queries = [str(dataset_dir / name) for name in ("img1.jpg", "couple.jpg", "img22.jpg")]
    together = find(queries, db, return_type="dict", silent=True, similarity_search=True)
    for query, tables in zip(queries, together):
        alone = find(query, db, return_type="dict", silent=True, similarity_search=True)
        assert [identities(t) for t in tables] == [identities(t) for t in alone]
        for a, b in zip(tables, alone):
            np.testing.assert_allclose([r["distance"] for r in a], [r["distance"] for r in b], atol=1e-6)


@pytest.mark.parametrize("options, rows", [
    ({"similarity_search": True}, DB_FACES),
    ({"similarity_search": True, "k": 2}, 2),
    ({"threshold": SELF_DISTANCE}, 1),  # only the photo itself
])
def test_k_similarity_search_and_threshold(db: Path, dataset_dir: Path, options: dict, rows: int) -> None:
    assert len(find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True, **options)[0]) == rows


def test_dataframe_and_dicts_hold_the_same_rows(db: Path, dataset_dir: Path) -> None:
    pytest.importorskip("pandas")
    frame = find(str(dataset_dir / "img1.jpg"), db, return_type="pandas", silent=True)[0]
    rows = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True)[0]
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert frame.to_dict("records") == rows


@pytest.mark.parametrize("options, message", [
    ({"datastore_format": "parquet"}, "npz"),
    ({"anti_spoofing": True}, "anti_spoofing"),
    ({"k": 0}, "k must be"),
    ({"return_type": "arrow"}, "return_type"),
    ({"distance_metric": "manhattan"}, "distance_metric"),
])
def test_unsupported_options_are_refused_before_any_work(db: Path, dataset_dir: Path, options: dict,
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        find(str(dataset_dir / "img1.jpg"), db, silent=True, **options)
    assert not any(db.glob("*.npz"))


def test_without_pandas_tables_are_lists_of_dicts(db: Path, dataset_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    table = find(str(dataset_dir / "img1.jpg"), db, silent=True)[0]
    assert isinstance(table, list) and identities(table)[0] == "img1.jpg"


def test_asking_for_dataframes_without_pandas_names_the_extra(db: Path, dataset_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from deepbatch.errors import MissingDependencyError
    from deepbatch.optional import install_command

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("find"))):
        find(str(dataset_dir / "img1.jpg"), db, silent=True, return_type="pandas")


def test_an_empty_folder_is_refused(tmp_path: Path, dataset_dir: Path) -> None:
    with pytest.raises(EmptyDatabaseError, match="no image"):
        find(str(dataset_dir / "img1.jpg"), tmp_path, silent=True)


def test_an_unreadable_index_is_refused_when_it_may_not_be_rebuilt(db: Path) -> None:
    _, update = update_index(db, silent=True)
    update.path.write_bytes(b"not an index")
    with pytest.raises(IndexFormatError, match="refresh_database=True to rebuild") as info:
        update_index(db, silent=True, refresh_database=False)
    assert str(update.path) in str(info.value)


def test_confidence_is_verifys_for_the_same_distance(db: Path, dataset_dir: Path) -> None:
    from deepbatch.recognition import build_recognizer

    recognizer = build_recognizer("arcface_mbf")
    table = find(str(dataset_dir / "img1.jpg"), db, return_type="dict", silent=True, similarity_search=True)[0]
    for row in table:
        verified = row["distance"] <= row["threshold"]
        assert row["confidence"] == recognizer.confidence(row["distance"], "cosine", verified)
    assert {row["confidence"] > 50 for row in table} == {True, False}
