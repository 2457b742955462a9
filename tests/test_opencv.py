"""The Haar cascade backend's pixel budget: faces above the smallest searched size come out as from a full scan."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepbatch.detectors import build_detector
from deepbatch.detectors.opencv import DEFAULT_MAX_PIXELS


def full_scan_boxes(image: np.ndarray) -> np.ndarray:
    """Every face of a scan over every scale, as DeepFace calls the cascade: sorted ``x1, y1, x2, y2``."""
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    boxes, _, _ = cascade.detectMultiScale3(image, 1.1, 10, outputRejectLevels=True)
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    xyxy[:, 2:] += xyxy[:, :2]
    return xyxy[np.lexsort(xyxy.T[::-1])]


@pytest.mark.parametrize("photo", ["couple.jpg", "img26.jpg"])  # 3.6 and 3.1 megapixels; img26 has an 89 px face
def test_budget_finds_the_faces_of_a_full_scan(photo: str, dataset_dir: Path) -> None:
    image = cv2.imread(str(dataset_dir / photo))
    assert image.shape[0] * image.shape[1] > DEFAULT_MAX_PIXELS  # the budget applies
    boxes = build_detector("opencv").detect_faces([image])[0].boxes
    np.testing.assert_array_equal(boxes[np.lexsort(boxes.T[::-1])], full_scan_boxes(image))


def test_no_budget_scans_every_scale(dataset_dir: Path) -> None:
    image = cv2.imread(str(dataset_dir / "couple.jpg"))
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    canvas = np.full_like(image, 255)
    canvas[: small.shape[0], : small.shape[1]] = small  # faces of about 170 px on a 3.6-megapixel image
    unbounded = build_detector("opencv", max_pixels=None).detect_faces([canvas])[0]
    tight = build_detector("opencv", max_pixels=64 * 64).detect_faces([canvas])[0]  # smallest face searched: 714 px
    assert len(unbounded) == 2 and len(tight) == 0
