"""The photos that ship in samples/ for `make demo` give the faces samples/README.md lists."""

from __future__ import annotations

from pathlib import Path

import pytest

import deepbatch

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.mark.parametrize("name, faces", [("astronaut.jpg", 1), ("cameraman.jpg", 1), ("cat.jpg", 0)])
def test_sample_photo_has_the_listed_faces(name: str, faces: int, weights_dir: Path) -> None:
    found = deepbatch.extract_faces(str(SAMPLES / name), enforce_detection=False)
    assert sum(face["confidence"] > 0 for face in found) == faces


def test_samples_are_small() -> None:
    assert sum(p.stat().st_size for p in SAMPLES.glob("*.jpg")) < 200_000
