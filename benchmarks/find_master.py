"""``find`` over DeepFace's test photos: time to index the folder, time per query batch, and top-1 identity accuracy.

    python benchmarks/find_master.py                      # arcface_mbf + SCRFD
    python benchmarks/find_master.py --model mobilefacenet_b1 --detector scrfd_2.5g --batch-size 16

The photos of ``--data`` (default ``$DEEPBATCH_TEST_DATA``, else ``../shared/dataset``) are copied into a temporary
folder, which becomes the database (the index is written there, never beside the originals). Models are built and
warmed up on one photo before any timing. Measured:

* ``index``: the first ``update_index`` (every photo detected, aligned and embedded, ``--batch-size`` per call, the
  index written);
* ``refresh``: the next call, with nothing changed (the folder is listed and compared with the index);
* ``incremental``: one photo added, and only it embedded;
* ``query batch``: every photo of the folder searched in one ``find`` call (one list of queries), and the same
  queries one ``find`` call each.

Top-1 identity accuracy: identities are the groups of photos joined by ``master.csv``'s same-person pairs. For every
photo in a same-person pair, its top-1 match is the nearest face in another photo of the database (over all of its
own faces, with ``similarity_search=True``: no threshold). It is correct when that photo is in the same group.
Measured twice: among every other photo (a match to a photo that no pair labels counts as wrong, even when it
shows the same person), and among the photos whose relation to the query ``master.csv`` states.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("DEEPBATCH_WEIGHTS", str(ROOT.parent / "shared" / "weights"))
os.environ.setdefault("DEEPBATCH_TEST_DATA", str(ROOT.parent / "shared" / "dataset"))

import deepbatch  # noqa: E402
from deepbatch.api.find import update_index  # noqa: E402

logger = logging.getLogger("find_master")


def identity_groups(csv_path: Path) -> Tuple[Dict[str, int], Set[Tuple[str, str]]]:
    """Photo name -> group id from the same-person pairs (union-find), and the different-person pairs."""
    parent: Dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    different: Set[Tuple[str, str]] = set()
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            a, b = row["file_x"], row["file_y"]
            if row["Decision"].strip().lower() == "yes":
                parent[root(a)] = root(b)
            else:
                different.update({(a, b), (b, a)})
    roots = sorted({root(name) for name in parent})
    return {name: roots.index(root(name)) for name in parent}, different


def top1(results: List[List[List[dict]]], queries: List[Path], groups: Dict[str, int],
         different: Set[Tuple[str, str]], labelled_only: bool = False) -> Tuple[int, int, List[str]]:
    """(correct, scored photos, the wrong matches as text). With ``labelled_only`` the candidates are the photos
    whose relation to the query ``master.csv`` states (same group, or a different-person pair)."""
    correct = scored = 0
    wrong: List[str] = []
    for query, tables in zip(queries, results):
        if query.name not in groups:
            continue
        best = None
        for table in tables:
            for row in table:
                name = Path(row["identity"]).name
                known = groups.get(name) == groups[query.name] or (query.name, name) in different
                if name != query.name and (known or not labelled_only):  # rows are sorted: first is nearest
                    if best is None or row["distance"] < best[1]:
                        best = (name, row["distance"])
                    break
        scored += 1
        if best is not None and groups.get(best[0]) == groups[query.name]:
            correct += 1
            continue
        match = best[0] if best else "nothing"
        label = "labelled different" if (query.name, match) in different else "unlabelled"
        wrong.append(f"{query.name} -> {match} ({label})")
    return correct, scored, wrong


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs, in seconds (other processes on a shared machine only slow runs down)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ["DEEPBATCH_TEST_DATA"])
    parser.add_argument("--model", default="arcface_mbf")
    parser.add_argument("--detector", default="scrfd")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="query timings: best of this many runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Path(args.data)
    photos = sorted(p for p in data.glob("*.jpg"))
    options = dict(model_name=args.model, detector_backend=args.detector, batch_size=args.batch_size, silent=True)
    groups, different = identity_groups(data / "master.csv")
    with tempfile.TemporaryDirectory() as temporary:
        db = Path(temporary) / "db"
        db.mkdir()
        held_back = photos[-1]
        for photo in photos[:-1]:
            shutil.copy(photo, db / photo.name)
        deepbatch.represent(str(photos[0]), model_name=args.model, detector_backend=args.detector)  # warm up

        start = time.perf_counter()
        index, update = update_index(db, args.model, args.detector, batch_size=args.batch_size, silent=True)
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        update_index(db, args.model, args.detector, batch_size=args.batch_size, silent=True)
        refresh_s = time.perf_counter() - start
        shutil.copy(held_back, db / held_back.name)
        start = time.perf_counter()
        index, added = update_index(db, args.model, args.detector, batch_size=args.batch_size, silent=True)
        incremental_s = time.perf_counter() - start

        queries = sorted(db.glob("*.jpg"))
        paths = [str(q) for q in queries]
        results = deepbatch.find(paths, db, return_type="dict", similarity_search=True, **options)
        batch_s = best_of(args.repeat, lambda: deepbatch.find(paths, db, return_type="dict",
                                                              similarity_search=True, **options))
        single_s = best_of(args.repeat, lambda: [deepbatch.find(p, db, return_type="dict", similarity_search=True,
                                                                **options) for p in paths])

    print(f"find over {len(queries)} photos ({len(index)} indexed faces, {int(index.valid.sum())} embedded), "
          f"model {args.model}, detector {args.detector}, batch size {args.batch_size}, {os.cpu_count()} CPU cores, "
          f"query times best of {args.repeat}")
    print("| step | seconds | photos/s |")
    print("|---|---|---|")
    print(f"| index {update.embedded} photos (first call) | {index_s:.2f} | {update.embedded / index_s:.1f} |")
    print(f"| refresh, nothing changed | {refresh_s:.3f} | |")
    print(f"| incremental, {added.embedded} photo added | {incremental_s:.2f} | |")
    print(f"| query batch: {len(queries)} photos in one find call | {batch_s:.2f} | {len(queries) / batch_s:.1f} |")
    print(f"| the same queries, one find call each | {single_s:.2f} | {len(queries) / single_s:.1f} |")
    for labelled_only, label in ((False, "any other photo"), (True, "photos master.csv relates to the query")):
        correct, scored, wrong = top1(results, queries, groups, different, labelled_only)
        print(f"\ntop-1 identity accuracy, nearest among {label}, over the {scored} photos in a same-person pair: "
              f"{correct}/{scored} = {correct / scored:.1%}")
        for line in wrong:
            print(f"  wrong: {line}")


if __name__ == "__main__":
    main()
