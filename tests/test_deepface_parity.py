"""Code written for DeepFace runs unchanged: signatures, one alignment for crops and embeddings, DeepFace's output
conventions, and represent's options."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Dict, List

import cv2
import numpy as np
import pytest

import deepbatch
from deepbatch.api.verify import verify_pairs
from deepbatch.recognition.distance import pair_distances

# DeepFace's current parameter lists (deepface/DeepFace.py), in order; deepbatch's own arguments follow them,
# keyword-only.
DEEPFACE_SIGNATURES: Dict[str, List[str]] = {
    "extract_faces": ["img_path", "detector_backend", "enforce_detection", "align", "expand_percentage", "grayscale",
                      "color_face", "normalize_face", "anti_spoofing", "max_faces"],
    "represent": ["img_path", "model_name", "enforce_detection", "detector_backend", "align", "expand_percentage",
                  "normalization", "anti_spoofing", "max_faces", "l2_normalize", "minmax_normalize", "return_face"],
    "verify": ["img1_path", "img2_path", "model_name", "detector_backend", "distance_metric", "enforce_detection",
               "align", "expand_percentage", "normalization", "silent", "threshold", "anti_spoofing"],
}
DEEPFACE_DEFAULTS = {"enforce_detection": True, "align": True, "expand_percentage": 0, "grayscale": False,
                     "color_face": "rgb", "normalize_face": True, "anti_spoofing": False, "max_faces": None,
                     "normalization": "base", "l2_normalize": False, "minmax_normalize": False, "return_face": False,
                     "distance_metric": "cosine", "silent": False, "threshold": None}
# "One alignment truth": a stored crop embedded with detector_backend="skip" must give the photo's embedding.
# Crops are the model's own input pixels, so the only difference is the uint8 -> float -> uint8 round trip (exact).
CROP_COSINE = 0.02


def _parameters(function: Callable[..., Any]) -> List[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())


@pytest.mark.parametrize("name", sorted(DEEPFACE_SIGNATURES))
def test_deepface_arguments_come_first_in_deepface_order(name: str) -> None:
    params = _parameters(getattr(deepbatch, name))
    expected = DEEPFACE_SIGNATURES[name]
    assert [p.name for p in params[: len(expected)]] == expected
    assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in params[: len(expected)])


@pytest.mark.parametrize("name", sorted(DEEPFACE_SIGNATURES))
def test_deepface_defaults_are_kept(name: str) -> None:
    for param in _parameters(getattr(deepbatch, name)):
        if param.name in DEEPFACE_DEFAULTS:
            assert param.default == DEEPFACE_DEFAULTS[param.name], param.name


@pytest.mark.parametrize("function", [deepbatch.extract_faces, deepbatch.represent, verify_pairs])
def test_deepbatch_extras_are_keyword_only(function: Callable[..., Any]) -> None:
    params = {p.name: p for p in _parameters(function)}
    assert params["batch_size"].kind == params["on_error"].kind == inspect.Parameter.KEYWORD_ONLY


@pytest.fixture(scope="module")
def couple(dataset_dir: Path, weights_dir: Path) -> str:
    return str(dataset_dir / "couple.jpg")


@pytest.fixture(scope="module")
def selfie(dataset_dir: Path) -> str:
    return str(dataset_dir / "selfie-many-people.jpg")


def test_positional_call_in_deepface_order(couple: str) -> None:
    faces = deepbatch.represent(couple, "MobileFaceNet", True, "scrfd", True, 0, "base", False, 1)
    assert len(faces) == 1 and len(faces[0]["embedding"]) == 128


@pytest.mark.parametrize("options", [{}, {"align": False}, {"expand_percentage": 25}, {"detector_backend": "yunet"}],
                         ids=["five-point", "box-crop", "expanded", "yunet"])
@pytest.mark.parametrize("photo", ["couple.jpg", "selfie-many-people.jpg", "img62.jpg"])
def test_stored_crop_embeds_like_the_photo(dataset_dir: Path, weights_dir: Path, photo: str,
                                          options: Dict[str, Any]) -> None:
    image = str(dataset_dir / photo)
    direct = deepbatch.represent(image, return_numpy=True, **options)
    crops = [face["face"][:, :, ::-1] for face in deepbatch.extract_faces(image, **options)]  # RGB -> BGR
    stored = deepbatch.represent(crops, detector_backend="skip", return_numpy=True)
    distances = pair_distances(np.stack([f["embedding"] for f in direct]),
                               np.stack([faces[0]["embedding"] for faces in stored]), "cosine")
    assert distances.max() < CROP_COSINE


def test_crop_saved_as_png_embeds_like_the_photo(couple: str, tmp_path: Path) -> None:
    face = deepbatch.extract_faces(couple, color_face="bgr", normalize_face=False)[0]["face"]
    cv2.imwrite(str(tmp_path / "face.png"), face)
    direct = deepbatch.represent(couple, return_numpy=True)[0]["embedding"]
    stored = deepbatch.represent(str(tmp_path / "face.png"), detector_backend="skip", return_numpy=True)
    assert pair_distances(direct[None], stored[0]["embedding"][None], "cosine")[0] < CROP_COSINE


def test_return_face_is_the_extracted_crop(couple: str) -> None:
    embedded = deepbatch.represent(couple, return_face=True)
    extracted = deepbatch.extract_faces(couple)
    assert len(embedded) == len(extracted)
    for rep, ext in zip(embedded, extracted):
        np.testing.assert_array_equal(rep["face"], ext["face"])


def test_minmax_normalize_maps_into_the_unit_interval(couple: str) -> None:
    raw = deepbatch.represent(couple, return_numpy=True)[0]["embedding"]
    scaled = deepbatch.represent(couple, minmax_normalize=True, return_numpy=True)[0]["embedding"]
    low, high = deepbatch.build_recognizer("arcface_mbf").embedding_range
    assert raw.min() < 0 and 0 <= scaled.min() and scaled.max() <= 1
    np.testing.assert_allclose(scaled, (np.clip(raw, low, high) - low) / (high - low), atol=1e-6)


def test_minmax_then_l2_as_deepface(couple: str) -> None:
    both = deepbatch.represent(couple, minmax_normalize=True, l2_normalize=True, return_numpy=True)[0]["embedding"]
    scaled = deepbatch.represent(couple, minmax_normalize=True, return_numpy=True)[0]["embedding"]
    np.testing.assert_allclose(both, scaled / np.linalg.norm(scaled), atol=1e-6)


@pytest.mark.parametrize("normalization, same_as_base", [
    ("raw", False), ("Facenet", False), ("VGGFace", False), ("VGGFace2", False), ("ArcFace", False),
    ("Facenet2018", True),  # x / 127.5 - 1 is MobileFaceNet's own (x - 127.5) / 127.5
])
def test_every_deepface_normalization_embeds(couple: str, normalization: str, same_as_base: bool) -> None:
    base = deepbatch.represent(couple, return_numpy=True)[0]["embedding"]
    other = deepbatch.represent(couple, normalization=normalization, return_numpy=True)[0]["embedding"]
    assert other.shape == base.shape and np.all(np.isfinite(other))
    assert np.allclose(other, base, atol=1e-5) == same_as_base


def test_facial_areas_stay_inside_the_image(selfie: str) -> None:
    """DeepFace's border test: x, y >= 0, x + w < width, y + h < height for every face of its selfie."""
    height, width = cv2.imread(selfie).shape[:2]
    for face in deepbatch.extract_faces(selfie):
        area = face["facial_area"]
        assert area["x"] >= 0 and area["y"] >= 0
        assert area["x"] + area["w"] < width and area["y"] + area["h"] < height


@pytest.mark.parametrize("photo, outside, inside", [
    ("selfie-many-people.jpg", ["left_eye", "mouth_left"], ["right_eye", "nose", "mouth_right"]),
    ("img62.jpg", ["nose", "mouth_left", "mouth_right"], ["left_eye", "right_eye"]),
])
def test_landmarks_outside_the_image_are_none(dataset_dir: Path, photo: str, outside: List[str],
                                              inside: List[str]) -> None:
    image = str(dataset_dir / photo)
    height, width = cv2.imread(image).shape[:2]
    areas = [face["facial_area"] for face in deepbatch.extract_faces(image)]
    cut = [a for a in areas if all(a[name] is None for name in outside)]
    assert cut, "the photo has a face cut by the edge"
    for name in inside:
        x, y = cut[0][name]
        assert 0 <= x < width and 0 <= y < height


def test_deprecated_grayscale_gives_gray_faces(couple: str) -> None:
    gray = deepbatch.extract_faces(couple, grayscale=True)[0]["face"]
    expected = deepbatch.extract_faces(couple, color_face="gray")[0]["face"]
    np.testing.assert_array_equal(gray, expected)
    assert gray.ndim == 2
