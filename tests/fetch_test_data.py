"""Download DeepFace's public unit-test photos (MIT licence) into tests/dataset/photos for machines without them.

Run through ``make test-data``; the tests then find the photos there when ``$DEEPBATCH_TEST_DATA`` is unset and
``../shared/dataset`` does not exist.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from deepbatch.weights import download_file

SOURCE = "https://raw.githubusercontent.com/serengil/deepface/master/tests/dataset"
HERE = Path(__file__).resolve().parent
TARGET = HERE / "dataset" / "photos"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(HERE / "dataset" / "expected_faces.csv") as table:
        names = [row["file"] for row in csv.DictReader(table)] + ["master.csv"]
    failed = []
    for name in names:
        if (TARGET / name).is_file():
            continue
        try:
            download_file(f"{SOURCE}/{name}", TARGET / name)
        except OSError as exc:
            failed.append(f"{name}: {exc}")
    for line in failed:
        logging.error("could not download %s", line)
    logging.info("%d of %d files in %s", len(names) - len(failed), len(names), TARGET)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
