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


# dlib's own chips come from its 5-point shape predictor (eye corners, nose base); deepbatch warps the detector's
# five landmarks onto the median of those points inside dlib's chips. The two chips differ by a few pixels, which
# moved descriptors by 0.14 on average and 0.22 at most over the first 20 photos: well inside dlib's 0.6 same-person
# distance, and far from the 0.9+ of different people.
DLIB_OWN_CHIP_DISTANCE = 0.3
DLIB_PHOTOS = ["img1.jpg", "img2.jpg", "img4.jpg", "img3.jpg", "img12.jpg", "img13.jpg", "img14.jpg", "img16.jpg",
               "img17.jpg", "img8.jpg", "img9.jpg", "img22.jpg", "img23.jpg", "couple.jpg"]


@pytest.fixture(scope="module")
def dlib_recognizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("dlib")
    from deepbatch.recognition.dlib_resnet import packaged_weights

    if packaged_weights() is None:
        pytest.skip("face_recognition_models is not installed: pip install 'deepbatch[dlib]'")
    return build_recognizer("Dlib")


def test_dlib_descriptor_of_a_warped_face_is_close_to_dlibs_own_chip(dlib_recognizer, dataset_dir: Path,
                                                                      weights_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import dlib

    from deepbatch.recognition.dlib_resnet import packaged_weights

    predictor = dlib.shape_predictor(str(packaged_weights().parent / "shape_predictor_5_face_landmarks.dat"))
    images = [cv2.imread(str(dataset_dir / name)) for name in DLIB_PHOTOS[:6]]
    for image, faces in zip(images, build_detector("scrfd").detect_faces(images)):
        rgb = np.ascontiguousarray(image[..., ::-1])
        ours = dlib_recognizer.embed(align_faces(image, faces.boxes, faces.landmarks, 150,
                                                 dlib_recognizer.template).pixels)
        shapes = dlib.full_object_detections()
        for box in faces.boxes:
            shapes.append(predictor(rgb, dlib.rectangle(*(int(round(float(v))) for v in box))))
        reference = np.array([np.asarray(v) for v in dlib_recognizer.model.network.compute_face_descriptor(rgb,
                                                                                                          shapes)])
        assert np.linalg.norm(ours - reference, axis=1).max() < DLIB_OWN_CHIP_DISTANCE


def test_dlib_same_person_pairs_are_closer_than_different_people(dlib_recognizer, dataset_dir: Path,
                                                                 weights_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from deepbatch import verify_pairs

    with open(dataset_dir / "master.csv") as handle:
        rows = [line.strip().split(",") for line in handle.readlines()[1:]]
    chosen = [(a, b, d) for a, b, d in rows if a in DLIB_PHOTOS and b in DLIB_PHOTOS]
    results = verify_pairs([(str(dataset_dir / a), str(dataset_dir / b)) for a, b, _ in chosen],
                           model_name=dlib_recognizer, distance_metric="euclidean")
    same = np.array([d == "Yes" for _, _, d in chosen])
    distances = np.array([r["distance"] for r in results])
    assert same.sum() >= 5 and (~same).sum() >= 20
    assert distances[same].max() < distances[~same].min()
    assert [r["verified"] for r in results] == same.tolist()


@pytest.mark.parametrize("weights, names", [
    ("deepbatch.recognition.sface:SFACE_WEIGHTS", r"face_recognition_sface_2021dec\.onnx.*opencv_zoo"),
    ("deepbatch.detectors.ssd:SSD_WEIGHTS", r"res10_300x300_ssd_iter_140000\.caffemodel.*opencv_3rdparty"),
    ("deepbatch.detectors.ssd:SSD_CONFIG", r"deploy\.prototxt.*face_detector"),
    ("deepbatch.recognition.dlib_resnet:DLIB_WEIGHTS", r"dlib_face_recognition_resnet_model_v1\.dat.*dlib\.net"),
])
def test_missing_weights_name_the_official_source(weights: str, names: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from deepbatch.errors import WeightsNotFoundError
    from deepbatch.weights import resolve_weights

    module, attribute = weights.split(":")
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError, match=names):
        resolve_weights(getattr(importlib.import_module(module), attribute), download=False)


def test_ssd_refuses_a_caffe_model_without_its_detection_head(tmp_path: Path) -> None:
    from deepbatch.errors import ModelFormatError

    config = tmp_path / "deploy.prototxt"
    config.write_text('name: "plain"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 300 dim: 300 }\n'
                      'layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }\n')
    model = tmp_path / "plain.caffemodel"
    model.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="detection_out"):
        build_detector("ssd", model_path=str(model), config_path=str(config))

