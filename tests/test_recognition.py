"""Recognition models (every registered one) and batched five-point alignment."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

from deepbatch.errors import MissingDependencyError, ModelFormatError, UnknownModelError, WeightsNotFoundError
from deepbatch.ops.align import (
    ARCFACE_TEMPLATE,
    align_faces,
    expand_box,
    expand_boxes,
    similarity_transform,
    similarity_transforms,
    template_transforms,
    warp_to_template,
)
from deepbatch.recognition import RECOGNIZERS, build_recognizer
from deepbatch.recognition.arcface import ARCFACE_MBF_WEIGHTS, ArcFace
from deepbatch.recognition.base import (
    Recognizer,
    ThresholdUnknownError,
    UnsupportedNormalizationError,
)
from deepbatch.recognition.deepface_models import DeepFaceRecognizer
from deepbatch.recognition.distance import METRICS
from deepbatch.recognition.normalization import normalize_faces
from deepbatch.weights import resolve_weights, sha256_of

# The contract: a face embedded alone and inside a batch of 32 must agree to this cosine similarity. Batches run
# other kernel blockings, so float32 sums are ordered differently; that moves embeddings by ~1e-7 relative.
PARITY_COSINE = 0.9999
# Same reason, element-wise, for a repaired batch-1 export compared with its own one-by-one outputs (values ~1-10).
ONE_BY_ONE_ATOL = 1e-4
# Similarity estimates solved in float64 on exact data: recovered points agree to rounding.
GEOMETRY_ATOL = 1e-6

ALL_RECOGNIZERS = RECOGNIZERS.names(aliases=False)
# DeepFace's models read DeepFace's own crops and run on DeepFace's code: tests/test_deepface_models.py covers them.
OWN_RECOGNIZERS = [name for name in ALL_RECOGNIZERS
                   if not issubclass(RECOGNIZERS.entry(name).factory, DeepFaceRecognizer)]  # type: ignore[arg-type]
# Small photos holding 32 or more faces between them (selfie-many-people.jpg alone has six).
MIXED_IMAGES = ["selfie-many-people.jpg", "couple.jpg", "img12.jpg", "img51.jpg", "img25.jpg", "img62.jpg",
                "img5.jpg", "img16.jpg", "img50.jpg", "img46.jpg", "img44.jpg", "img17.jpg", "img61.jpg",
                "img21.jpg", "img11.jpg", "img43.jpg", "img67.jpg", "img22.jpg", "img38.jpg", "img55.jpg",
                "img29.jpg", "img6.jpg", "img34.jpg", "img53.jpg", "img45.jpg", "img37.jpg", "img42.jpg"]
BOX_CROPS = 4  # the last faces of the mixed batch are box crops, the rest five-point warps


@pytest.fixture(scope="module")
def mixed_faces(dataset_dir: Path, weights_dir: Path) -> np.ndarray:
    """(32, 112, 112, 3) uint8 BGR faces of many people: five-point warps and a few box crops."""
    from deepbatch.detectors import build_detector

    images = [cv2.imread(str(dataset_dir / name)) for name in MIXED_IMAGES]
    found = build_detector("scrfd").detect_faces(images)
    warped = np.concatenate([align_faces(im, f.boxes, f.landmarks).pixels for im, f in zip(images, found)])
    cropped = np.concatenate([align_faces(im, f.boxes, None).pixels for im, f in zip(images, found)])
    assert len(warped) >= 32
    return np.concatenate([warped[: 32 - BOX_CROPS], cropped[-BOX_CROPS:]])


@pytest.fixture(scope="module", params=OWN_RECOGNIZERS)
def recognizer(request: pytest.FixtureRequest, generated_recognizers: Dict[str, dict],
               weights_dir: Path) -> Recognizer:
    try:
        return build_recognizer(request.param, **generated_recognizers.get(request.param, {}))
    except MissingDependencyError as exc:  # a backend whose extra is not installed (make test-fast's install)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model_faces(recognizer: Recognizer, mixed_faces: np.ndarray) -> np.ndarray:
    """The mixed faces at the recognizer's input size (Dlib reads 150x150 chips)."""
    side = recognizer.input_size
    if mixed_faces.shape[1] == side:
        return mixed_faces
    return np.stack([cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR) for face in mixed_faces])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --- every registered recognizer -------------------------------------------------------------------------------


def test_embeddings_have_the_declared_size(recognizer: Recognizer, model_faces: np.ndarray) -> None:
    embeddings = recognizer.embed(model_faces)
    assert embeddings.shape == (32, recognizer.embedding_size)
    assert embeddings.dtype == np.float32 and np.all(np.isfinite(embeddings))


def test_one_model_call_per_chunk_of_faces(recognizer: Recognizer, model_faces: np.ndarray) -> None:
    before = recognizer.model.run_calls  # type: ignore[attr-defined]
    recognizer.embed(model_faces, batch_size=16)
    assert recognizer.model.run_calls - before == 2  # type: ignore[attr-defined]
    assert recognizer.model.last_batch_size == 16  # type: ignore[attr-defined]


def test_face_alone_matches_face_in_mixed_batch_of_32(recognizer: Recognizer, model_faces: np.ndarray) -> None:
    in_batch = recognizer.embed(model_faces)
    alone = np.concatenate([recognizer.embed(model_faces[i : i + 1]) for i in range(len(model_faces))])
    assert cosine(alone, in_batch).min() >= PARITY_COSINE


def test_different_faces_give_different_embeddings(recognizer: Recognizer, model_faces: np.ndarray) -> None:
    embeddings = recognizer.embed(model_faces[:2])
    assert cosine(embeddings[0], embeddings[1]) < PARITY_COSINE


def test_unaligned_input_is_refused(recognizer: Recognizer) -> None:
    with pytest.raises(ValueError, match="align_faces"):
        recognizer.embed(np.zeros((2, 100, 100, 3), np.uint8))


@pytest.mark.parametrize("name", ALL_RECOGNIZERS)
def test_thresholds_cover_every_metric_or_are_asked_for(name: str) -> None:
    entry = RECOGNIZERS.entry(name)
    thresholds = entry.factory.thresholds  # type: ignore[attr-defined]
    if thresholds:
        assert sorted(thresholds) == sorted(METRICS) and all(v > 0 for v in thresholds.values())
    else:
        with pytest.raises(ThresholdUnknownError, match="threshold="):
            entry.factory.threshold("cosine")  # type: ignore[attr-defined]


def test_default_recognizer_pin_is_the_shared_file(weights_dir: Path) -> None:
    spec = ARCFACE_MBF_WEIGHTS
    assert (weights_dir / spec.filename).is_file() and sha256_of(weights_dir / spec.filename) == spec.sha256


def test_default_recognizer_comes_from_the_default_detectors_archive() -> None:
    from deepbatch.detectors import DETECTORS

    detector_spec = DETECTORS.entry("scrfd").defaults["weights"]
    assert (ARCFACE_MBF_WEIGHTS.url, ARCFACE_MBF_WEIGHTS.archive_sha256) == (
        detector_spec.url, detector_spec.archive_sha256)


# --- model-specific loading --------------------------------------------------------------------------------------


def test_batch1_export_runs_a_batch_in_one_call(weights_dir: Path, mixed_faces: np.ndarray) -> None:
    recognizer = RECOGNIZERS.create("mobilefacenet_b1", providers="cpu")
    assert recognizer.model.layout == "fixed" and recognizer.model.repair.changed  # type: ignore[attr-defined]
    assert not recognizer.model.per_image  # type: ignore[attr-defined]
    before = recognizer.model.run_calls  # type: ignore[attr-defined]
    batched = recognizer.embed(mixed_faces[:12])
    assert recognizer.model.run_calls - before == 1  # type: ignore[attr-defined]
    one_by_one = np.concatenate([recognizer.embed(mixed_faces[i : i + 1]) for i in range(12)])
    np.testing.assert_allclose(batched, one_by_one, atol=ONE_BY_ONE_ATOL)


def test_arcface_loads_by_its_published_file_name(generated_recognizers: Dict[str, dict],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path(generated_recognizers["arcface_r50"]["model_path"]).parent
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(folder))
    monkeypatch.setenv("DEEPBATCH_TRUSTED_WEIGHTS", str(folder / "w600k_r50.onnx"))  # a test graph, not the release
    recognizer = RECOGNIZERS.create("arcface_r50", providers="cpu")
    assert recognizer.model.path.name == "w600k_r50.onnx"  # type: ignore[attr-defined]
    assert recognizer.model.input_name == "input.1"  # type: ignore[attr-defined]
    assert recognizer.model.repair.outputs == ["683"]  # type: ignore[attr-defined]  (declared batch 1)
    assert recognizer.embed(np.zeros((3, 112, 112, 3), np.uint8)).shape == (3, 512)


def test_missing_arcface_weights_name_the_official_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError, match=r"buffalo_l\.zip.*w600k_r50\.onnx"):
        resolve_weights(ArcFace.weights, download=False)


def test_a_file_with_another_signature_is_refused(weights_dir: Path) -> None:
    with pytest.raises(ModelFormatError, match="512-d"):
        RECOGNIZERS.create("arcface_r50", model_path=str(weights_dir / "mobilefacenet_dyn.onnx"), providers="cpu")


def test_unknown_recognizer_lists_the_valid_names() -> None:
    with pytest.raises(UnknownModelError, match="mobilefacenet"):
        build_recognizer("MobileFaceNet_v2")


def test_names_are_case_insensitive(weights_dir: Path) -> None:
    assert build_recognizer("MobileFaceNet") is build_recognizer("mobilefacenet")


@pytest.mark.parametrize("normalization, mean, std, error", [
    ("base", 127.5, 127.5, None),
    ("raw", 0.0, 1.0, None),
    ("Facenet", 0.0, 1.0, None),
    ("Facenet2018", 127.5, 127.5, None),
    ("VGGFace", (129.1863, 104.7624, 93.5940), 1.0, None),  # DeepFace's B, G, R means in the model's R, G, B order
    ("VGGFace2", (131.0912, 103.8827, 91.4953), 1.0, None),
    ("ArcFace", 127.5, 128.0, None),
    ("arcface", 127.5, 128.0, None),
    ("Facenet512", None, None, UnsupportedNormalizationError),
])
def test_normalization_choices(weights_dir: Path, normalization: str, mean, std, error) -> None:  # type: ignore[no-untyped-def]
    recognizer = build_recognizer("mobilefacenet")
    if error is not None:
        with pytest.raises(error, match="'base'"):
            recognizer.spec_for(normalization)
        return
    spec = recognizer.spec_for(normalization)
    assert (spec.mean, spec.std, spec.size) == (mean, std, (112, 112))


def test_facenet_normalization_standardizes_each_face(weights_dir: Path) -> None:
    faces = np.random.default_rng(3).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    faces[1] //= 4  # a dark face: its own mean and spread, not the batch's
    blob = normalize_faces(faces, build_recognizer("mobilefacenet").spec_for("Facenet"))
    pixels = faces[..., ::-1].transpose(0, 3, 1, 2).astype(np.float64)
    expected = (pixels - pixels.mean(axis=(1, 2, 3), keepdims=True)) / pixels.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(blob, expected, atol=1e-4)


# --- batched five-point alignment ----------------------------------------------------------------------------------


def _similarity(angle_deg: float, scale: float, shift: List[float]) -> np.ndarray:
    theta = np.radians(angle_deg)
    rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.hstack([rotation, np.array(shift)[:, None]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle, scale, shift", [
    (0.0, 1.0, [0.0, 0.0]), (30.0, 2.5, [400.0, 120.0]), (-75.0, 0.3, [-20.0, 900.0]), (180.0, 4.0, [5.0, 5.0]),
])
def test_similarity_transforms_recover_a_known_similarity(angle: float, scale: float, shift: List[float]) -> None:
    source = _apply(_similarity(angle, scale, shift), ARCFACE_TEMPLATE.astype(np.float64))
    matrices, valid = similarity_transforms(source[None], ARCFACE_TEMPLATE)
    assert valid.tolist() == [True]
    np.testing.assert_allclose(_apply(matrices[0], source), ARCFACE_TEMPLATE, atol=GEOMETRY_ATOL)


def test_batched_estimate_equals_one_face_at_a_time() -> None:
    rng = np.random.default_rng(0)
    source = ARCFACE_TEMPLATE[None] * rng.uniform(0.5, 3, (20, 1, 1)) + rng.normal(0, 4, (20, 5, 2))
    matrices, valid = similarity_transforms(source, ARCFACE_TEMPLATE)
    assert valid.all()
    single = np.stack([similarity_transform(s, ARCFACE_TEMPLATE) for s in source])
    np.testing.assert_allclose(matrices, single, atol=GEOMETRY_ATOL)


def test_unknown_points_are_left_out_of_the_fit() -> None:
    source = _apply(_similarity(10.0, 2.0, [50.0, 60.0]), ARCFACE_TEMPLATE.astype(np.float64))
    with_nan = source.copy()
    with_nan[2] = np.nan
    full, _ = similarity_transforms(source[None], ARCFACE_TEMPLATE)
    partial, valid = similarity_transforms(with_nan[None], ARCFACE_TEMPLATE)
    assert valid.tolist() == [True]
    np.testing.assert_allclose(partial, full, atol=GEOMETRY_ATOL)


@pytest.mark.parametrize("finite_points", [0, 1])
def test_fewer_than_two_points_give_no_transform(finite_points: int) -> None:
    source = np.full((1, 5, 2), np.nan)
    source[0, :finite_points] = ARCFACE_TEMPLATE[:finite_points]
    matrices, valid = similarity_transforms(source, ARCFACE_TEMPLATE)
    assert valid.tolist() == [False] and np.all(np.isnan(matrices))
    with pytest.raises(ValueError, match="two distinct finite landmarks"):
        similarity_transform(source[0], ARCFACE_TEMPLATE)


def _landmarks(kind: str):  # type: ignore[no-untyped-def]
    points = (ARCFACE_TEMPLATE * 2.0 + 100.0)[None].copy()
    if kind == "eyes only":
        points[0, 2:] = np.nan
    elif kind == "none known":
        points[:] = np.nan
    return None if kind == "absent" else points


@pytest.mark.parametrize("kind, use_landmarks, method, points", [
    ("all five", True, "five_point", 5),
    ("eyes only", True, "partial_points", 2),
    ("none known", True, "box_crop", 0),
    ("absent", True, "box_crop", 0),
    ("all five", False, "box_crop", 0),
])
def test_align_faces_says_how_each_face_was_aligned(kind: str, use_landmarks: bool, method: str, points: int) -> None:
    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    aligned = align_faces(image, np.array([[100, 100, 330, 330]], np.float32), _landmarks(kind),
                          use_landmarks=use_landmarks)
    assert aligned.methods == [method] and aligned.points.tolist() == [points]
    assert aligned.pixels.shape == (1, 112, 112, 3) and aligned.pixels.dtype == np.uint8


def test_five_point_warp_equals_the_single_face_warp(dataset_dir: Path, weights_dir: Path) -> None:
    """The batched path equals InsightFace-style warps, one face at a time, at each face's own resolution, then
    shrunk into the model's square with area averaging."""
    from deepbatch.detectors import build_detector

    image = cv2.imread(str(dataset_dir / "selfie-many-people.jpg"))
    faces = build_detector("scrfd").detect_faces([image])[0]
    aligned = align_faces(image, faces.boxes, faces.landmarks)
    assert len(aligned) == 6
    _, sides, _ = template_transforms(faces.landmarks.astype(np.float64))
    assert sides.max() > 112  # the faces are larger than the template: the shrink has work to do
    expected = np.stack([cv2.resize(warp_to_template(image, lm, int(side)), (112, 112), interpolation=cv2.INTER_AREA)
                         for lm, side in zip(faces.landmarks, sides)])
    assert np.abs(aligned.pixels.astype(int) - expected).max() <= 1  # matrices equal up to float rounding


def test_box_crop_keeps_the_aspect_ratio_centred_on_black() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[100:150, 100:200] = 255  # a 100 x 50 white box
    pixels = align_faces(image, np.array([[100, 100, 200, 150]], np.float32), None).pixels[0]
    assert pixels[28:84].min() == 255  # 112 x 56 band in the middle
    assert pixels[:28].max() == 0 and pixels[84:].max() == 0


def test_expand_boxes_matches_expand_box() -> None:
    boxes = np.array([[10, 20, 110, 220], [0, 0, 50, 40], [580, 400, 640, 480]], np.float32)
    expected = np.stack([expand_box(b, 30, 480, 640) for b in boxes])
    np.testing.assert_allclose(expand_boxes(boxes, 30, 480, 640), expected, atol=1e-4)
