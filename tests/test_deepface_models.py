"""DeepFace's model names: SFace and Buffalo_L recognizers, checked against their reference implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest

from deepbatch.detectors import build_detector
from deepbatch.ops.align import align_faces
from deepbatch.recognition import RECOGNIZERS, build_recognizer
from deepbatch.recognition.arcface import ArcFace
from deepbatch.structures import OBSERVER_TO_PERSON

# The same float32 warp and blob in both pipelines; the similarity is solved in float64 by deepbatch and in mixed
# float/double by OpenCV, which moves a warped pixel by at most one grey level at a few edges.
REFERENCE_COSINE = 0.9999


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", ["Buffalo_L", "buffalo_l", "ArcFace"])
def test_deepface_arcface_names_build_arcface_r50(name: str, generated_recognizers: Dict[str, dict]) -> None:
    assert RECOGNIZERS.canonical(name) == "arcface_r50"
    assert isinstance(build_recognizer(name, **generated_recognizers["arcface_r50"]), ArcFace)


def test_sface_matches_opencv_face_recognizer_sf(generated_recognizers: Dict[str, dict], dataset_dir: Path,
                                                 weights_dir: Path) -> None:
    """deepbatch's SFace (five-point warp, RGB 0-255 blob) equals OpenCV's FaceRecognizerSF alignCrop + feature
    on the same graph and the same landmarks, for every face of a group photo."""
    path = generated_recognizers["sface"]["model_path"]
    image = cv2.imread(str(dataset_dir / "selfie-many-people.jpg"))
    faces = build_detector("scrfd").detect_faces([image])[0]
    ours = build_recognizer("SFace", model_path=path).embed(align_faces(image, faces.boxes, faces.landmarks).pixels)
    reference = cv2.FaceRecognizerSF.create(path, "")
    for box, points, embedding in zip(faces.boxes, faces.landmarks, ours):
        face_row = np.concatenate([box[:2], box[2:] - box[:2], points[OBSERVER_TO_PERSON].ravel(), [1.0]])
        crop = reference.alignCrop(image, face_row.astype(np.float32)[None])
        assert cosine(embedding, reference.feature(crop).ravel()) >= REFERENCE_COSINE


def test_sface_reads_raw_rgb_pixels() -> None:
    spec = RECOGNIZERS.entry("sface").factory.input_spec  # type: ignore[attr-defined]
    assert (spec.size, spec.mean, spec.std, spec.rgb) == ((112, 112), 0.0, 1.0, True)
