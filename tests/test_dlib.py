"""dlib backend: dlib's built-in HOG detector on real photos, and its missing-package error."""

from __future__ import annotations

import re
import sys

import cv2
import numpy as np
import pytest

from deepbatch.detectors import DETECTORS
from deepbatch.errors import MissingDependencyError
from deepbatch.optional import install_command


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    pytest.importorskip("dlib", reason="the dlib backend needs deepbatch[dlib]")
    return DETECTORS.create("dlib")


@pytest.mark.parametrize("name, expected", [("couple.jpg", 2), ("img1.jpg", 1)])
def test_finds_the_faces_of_a_photo(detector, dataset_dir, name, expected):  # type: ignore[no-untyped-def]
    image = cv2.imread(str(dataset_dir / name))
    small = cv2.resize(image, (800, round(image.shape[0] * 800 / image.shape[1])))  # HOG on 2x a full photo is slow
    faces = detector.detect_faces([small])[0]
    assert len(faces) == expected and faces.landmarks is None
    assert np.all(faces.scores > 0)  # dlib's decision threshold on the SVM margin


def test_missing_package_names_the_extra(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(MissingDependencyError, match=re.escape(install_command("dlib"))):
        DETECTORS.create("dlib")
