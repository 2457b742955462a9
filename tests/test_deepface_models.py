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

# The same aligned face through deepbatch's SFace and OpenCV's FaceRecognizerSF.feature: the same float32 blob.
REFERENCE_COSINE = 0.9999
# deepbatch warps each face onto the template at its own resolution and shrinks it with area averaging (one
# alignment for crops and embeddings); FaceRecognizerSF.alignCrop warps straight to 112 pixels, bilinearly. Same
# template and similarity, so the faces differ by resampling only: 1.3 to 4.1 grey levels on average per face of the
# group photo.
ALIGN_CROP_MEAN_DIFFERENCE = 5.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", ["Buffalo_L", "buffalo_l", "arcface_r50"])
def test_deepface_arcface_names_build_arcface_r50(name: str, generated_recognizers: Dict[str, dict]) -> None:
    assert RECOGNIZERS.canonical(name) == "arcface_r50"
    assert isinstance(build_recognizer(name, **generated_recognizers["arcface_r50"]), ArcFace)


@pytest.fixture(scope="module")
def sface_faces(generated_recognizers: Dict[str, dict], dataset_dir: Path, weights_dir: Path):  # type: ignore[no-untyped-def]
    """deepbatch's aligned faces of a group photo and OpenCV's ``alignCrop`` of the same landmarks."""
    path = generated_recognizers["sface"]["model_path"]
    image = cv2.imread(str(dataset_dir / "selfie-many-people.jpg"))
    faces = build_detector("scrfd").detect_faces([image])[0]
    reference = cv2.FaceRecognizerSF.create(path, "")
    rows = [np.concatenate([b[:2], b[2:] - b[:2], p[OBSERVER_TO_PERSON].ravel(), [1.0]]).astype(np.float32)[None]
            for b, p in zip(faces.boxes, faces.landmarks)]
    crops = np.stack([reference.alignCrop(image, row) for row in rows])
    return reference, align_faces(image, faces.boxes, faces.landmarks).pixels, crops


def test_sface_reads_a_face_as_opencv_face_recognizer_sf(generated_recognizers: Dict[str, dict],
                                                        sface_faces) -> None:  # type: ignore[no-untyped-def]
    """The same aligned face gives FaceRecognizerSF.feature's embedding: RGB, raw 0-255 values."""
    reference, _, crops = sface_faces
    ours = build_recognizer("sface", **generated_recognizers["sface"]).embed(crops)
    for crop, embedding in zip(crops, ours):
        assert cosine(embedding, reference.feature(crop).ravel()) >= REFERENCE_COSINE


def test_sface_faces_are_aligned_as_opencv_align_crop(sface_faces) -> None:  # type: ignore[no-untyped-def]
    _, ours, crops = sface_faces
    differences = np.abs(ours.astype(np.float64) - crops).mean(axis=(1, 2, 3))
    assert len(ours) == 6 and differences.max() < ALIGN_CROP_MEAN_DIFFERENCE


def test_sface_reads_raw_rgb_pixels() -> None:
    spec = RECOGNIZERS.entry("sface").factory.input_spec  # type: ignore[attr-defined]
    assert (spec.size, spec.mean, spec.std, spec.rgb) == ((112, 112), 0.0, 1.0, True)


# dlib's own chips come from its 5-point shape predictor (eye corners, nose base, padding 0.25); deepbatch reframes
# the shared five-point ArcFace crop onto the median landmark positions of those chips, which frames each face a
# little differently. Over the first 20 photos that moved descriptors by 0.17 on average and 0.29 at most: inside
# dlib's 0.6 same-person distance (the ArcFace crop fed as it is moves them by 0.66 on average).
DLIB_OWN_CHIP_DISTANCE = 0.35
DLIB_PHOTOS = ["img1.jpg", "img2.jpg", "img4.jpg", "img3.jpg", "img12.jpg", "img13.jpg", "img14.jpg", "img16.jpg",
               "img17.jpg", "img8.jpg", "img9.jpg", "img22.jpg", "img23.jpg", "couple.jpg"]


@pytest.fixture(scope="module")
def dlib_recognizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("dlib")
    from deepbatch.recognition.dlib_resnet import packaged_weights

    if packaged_weights() is None:
        pytest.skip("face_recognition_models is not installed: pip install 'deepbatch[dlib]'")
    return build_recognizer("dlib")


def test_dlib_descriptor_is_close_to_that_of_dlibs_own_chip(dlib_recognizer, dataset_dir: Path,
                                                             weights_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import dlib

    from deepbatch import represent
    from deepbatch.recognition.dlib_resnet import packaged_weights

    predictor = dlib.shape_predictor(str(packaged_weights().parent / "shape_predictor_5_face_landmarks.dat"))
    for name in DLIB_PHOTOS[:6]:
        image = cv2.imread(str(dataset_dir / name))
        faces = represent(image, model_name=dlib_recognizer, return_numpy=True)
        rgb = np.ascontiguousarray(image[..., ::-1])
        shapes = dlib.full_object_detections()
        for face in faces:
            area = face["facial_area"]
            shapes.append(predictor(rgb, dlib.rectangle(area["x"], area["y"], area["x"] + area["w"],
                                                        area["y"] + area["h"])))
        reference = np.array([np.asarray(v) for v in dlib_recognizer.model.network.compute_face_descriptor(rgb,
                                                                                                          shapes)])
        ours = np.stack([face["embedding"] for face in faces])
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



# --- DeepFace's own recognition models by DeepFace's names --------------------------------------------------------

# DeepFace's recognition model names (deepface.modules.modeling.AVAILABLE_MODELS["facial_recognition"], 0.0.103).
DEEPFACE_NAMES = ["VGG-Face", "Facenet", "Facenet512", "OpenFace", "DeepFace", "DeepID", "Dlib", "ArcFace", "SFace",
                  "GhostFaceNet", "Buffalo_L"]
DEEPFACE_PHOTOS = ["img1.jpg", "img2.jpg", "couple.jpg"]
# dlib and ONNX Runtime run the same uint8 input in either library: the descriptors agree to float32 rounding.
SAME_INPUT_ATOL = 1e-5


def test_deepface_names_are_deepfaces_list() -> None:
    modeling = pytest.importorskip("deepface.modules.modeling")
    assert sorted(modeling.AVAILABLE_MODELS["facial_recognition"]) == sorted(DEEPFACE_NAMES)


@pytest.mark.parametrize("name", DEEPFACE_NAMES)
def test_a_deepface_name_means_deepfaces_model_or_says_why_not(name: str) -> None:
    """Never a different model, and never "did you mean" another one: the model of that name, or why it is missing."""
    from deepbatch.errors import ModelUnavailableError

    try:
        entry = RECOGNIZERS.entry(name)
    except ModelUnavailableError as error:
        assert "did you mean" not in str(error) and "'VGG-Face'" in str(error) and "TensorFlow" in str(error)
        return
    expected = "Buffalo_L" if name == "Buffalo_L" else name
    assert getattr(entry.factory, "deepface_name", "Buffalo_L") == expected


@pytest.mark.parametrize("name, canonical", [("ArcFace", "deepface_arcface"), ("SFace", "deepface_sface"),
                                             ("Dlib", "deepface_dlib"), ("sface", "sface"), ("dlib", "dlib"),
                                             ("facenet512", "facenet512"), ("vgg-face", "vgg-face")])
def test_deepfaces_exact_spellings_name_deepfaces_pipelines(name: str, canonical: str) -> None:
    assert RECOGNIZERS.canonical(name) == canonical


def test_lowercase_arcface_still_means_arcface_r50_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="'arcface_r50'.*'ArcFace'"):
        assert RECOGNIZERS.canonical("arcface") == "arcface_r50"


def test_missing_deepface_weight_file_names_file_source_and_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from deepbatch.errors import WeightsNotFoundError

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"'facenet512_weights\.h5'.*\.deepface/weights.*"
                                                   r"https://github\.com/serengil/deepface_models/releases"):
        RECOGNIZERS.create("Facenet512")


@pytest.fixture(scope="module")
def deepface_detection():  # type: ignore[no-untyped-def]
    return pytest.importorskip("deepface.modules.detection")


@pytest.mark.parametrize("align", [True, False])
def test_deepface_crop_is_deepfaces_extract_face(align: bool, deepface_detection, dataset_dir: Path,  # type: ignore[no-untyped-def]
                                                weights_dir: Path) -> None:
    """The same box and eyes give DeepFace's own crop, pixel for pixel (DeepFace cuts it from the image bordered
    by half its size, as it detects there when aligning)."""
    from deepface.models.Detector import FacialAreaRegion

    from deepbatch.ops.deepface_align import deepface_crop

    for name in DEEPFACE_PHOTOS + ["selfie-many-people.jpg"]:
        image = cv2.imread(str(dataset_dir / name))
        faces = build_detector("yunet").detect_faces([image])[0]
        assert len(faces)
        height, width = image.shape[:2]
        border_h, border_w = (int(0.5 * height), int(0.5 * width)) if align else (0, 0)
        bordered = cv2.copyMakeBorder(image, border_h, border_h, border_w, border_w, cv2.BORDER_CONSTANT,
                                      value=[0, 0, 0])
        for box, points in zip(faces.boxes, faces.landmarks):
            x, y = int(box[0]), int(box[1])
            region = FacialAreaRegion(x=x + border_w, y=y + border_h, w=int(box[2]) - x, h=int(box[3]) - y,
                                      left_eye=(int(points[0][0]) + border_w, int(points[0][1]) + border_h),
                                      right_eye=(int(points[1][0]) + border_w, int(points[1][1]) + border_h))
            theirs = deepface_detection.extract_face(region, bordered, align, 0, border_w, border_h, "yunet").img
            ours, _ = deepface_crop(image, box, points[0], points[1], align)
            assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


@pytest.mark.parametrize("size", [(224, 224), (160, 160), (96, 96), (55, 47), (112, 112)])
def test_deepface_resize_is_deepfaces_resize_image(size: tuple) -> None:
    preprocessing = pytest.importorskip("deepface.modules.preprocessing")
    from deepbatch.ops.deepface_align import deepface_resize

    rng = np.random.default_rng(0)
    for shape in [(300, 200, 3), (90, 140, 3), (57, 57, 3)]:
        face = rng.integers(0, 256, shape, dtype=np.uint8)
        for pixels in (face, face / 255.0):  # "skip" resizes the uint8 image, detected faces are floats
            theirs = preprocessing.resize_image(pixels.copy(), (size[0], size[1]))[0]
            ours = deepface_resize(pixels, size)
            assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


@pytest.mark.parametrize("normalization", ["base", "raw", "Facenet", "Facenet2018", "VGGFace", "VGGFace2", "ArcFace"])
def test_deepface_normalize_is_deepfaces_normalize_input(normalization: str) -> None:
    preprocessing = pytest.importorskip("deepface.modules.preprocessing")
    from deepbatch.ops.deepface_align import deepface_normalize

    faces = np.random.default_rng(1).random((3, 20, 16, 3), dtype=np.float32)
    ours = deepface_normalize(faces.copy(), normalization)
    for face, mine in zip(faces, ours):
        theirs = preprocessing.normalize_input(face[None].copy(), normalization)[0]
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


def _deepface_represent(path: str, name: str) -> np.ndarray:
    """DeepFace's own ``represent`` (its module, which does not import TensorFlow for Dlib and SFace)."""
    representation = pytest.importorskip("deepface.modules.representation")
    return np.asarray(representation.represent(path, model_name=name, detector_backend="skip")[0]["embedding"])


def test_dlib_by_deepfaces_name_gives_deepfaces_embedding(deepface_home: Path, dataset_dir: Path) -> None:
    pytest.importorskip("dlib")
    from deepbatch import represent
    from deepbatch.recognition.deepface_models import DeepFaceDlib

    if not (deepface_home / ".deepface" / "weights" / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        pytest.skip("face_recognition_models is not installed: pip install 'deepbatch[dlib]'")
    paths = [str(dataset_dir / name) for name in DEEPFACE_PHOTOS]
    ours = represent(paths, model_name=DeepFaceDlib(), detector_backend="skip", return_numpy=True)
    for path, faces in zip(paths, ours):
        np.testing.assert_allclose(faces[0]["embedding"], _deepface_represent(path, "Dlib"), atol=SAME_INPUT_ATOL)


def test_sface_by_deepfaces_name_gives_deepfaces_embedding(deepface_home: Path, dataset_dir: Path) -> None:
    from deepbatch import represent
    from deepbatch.recognition.deepface_models import DeepFaceSFace

    recognizer = DeepFaceSFace(model_path=deepface_home / ".deepface" / "weights" /
                               "face_recognition_sface_2021dec.onnx", providers="cpu")
    paths = [str(dataset_dir / name) for name in DEEPFACE_PHOTOS]
    ours = represent(paths, model_name=recognizer, detector_backend="skip", return_numpy=True)
    for path, faces in zip(paths, ours):
        theirs = _deepface_represent(path, "SFace")
        np.testing.assert_allclose(faces[0]["embedding"], theirs, atol=SAME_INPUT_ATOL * np.abs(theirs).max())


@pytest.mark.parametrize("function", ["build_model", "verify", "represent", "extract_faces", "find", "analyze",
                                      "stream"])
def test_deepbatch_deepface_keeps_deepfaces_signature(function: str) -> None:
    """DeepFace's arguments, in DeepFace's order, with DeepFace's defaults (read from its source, not imported:
    importing it starts TensorFlow); deepbatch's own options may only follow as keywords."""
    import ast
    import importlib.util
    import inspect

    from deepbatch import DeepFace

    spec = importlib.util.find_spec("deepface")
    if spec is None or spec.origin is None:
        pytest.skip("deepface is not installed: pip install 'deepbatch[deepface]'")
    tree = ast.parse((Path(spec.origin).parent / "DeepFace.py").read_text())
    theirs = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    names = [a.arg for a in theirs.args.args]
    defaults = [ast.literal_eval(d) for d in theirs.args.defaults]
    parameters = [p for p in inspect.signature(getattr(DeepFace, function)).parameters.values()
                  if p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in parameters] == names
    ours = [p.default for p in parameters if p.default is not inspect.Parameter.empty]
    assert [list(d) if isinstance(d, tuple) else d for d in ours] == [
        list(d) if isinstance(d, tuple) else d for d in defaults]


def test_deepbatch_deepface_gives_a_list_of_one_image_its_faces(dataset_dir: Path, weights_dir: Path) -> None:
    """DeepFace's shape: a list of one image gives that image's faces, a longer list one list per image."""
    from deepbatch import DeepFace

    path = str(dataset_dir / "img1.jpg")
    one = DeepFace.represent([path], model_name="arcface_mbf", detector_backend="scrfd")
    two = DeepFace.represent([path, path], model_name="arcface_mbf", detector_backend="scrfd")
    assert isinstance(one[0], dict) and len(one[0]["embedding"]) == 512
    assert len(two) == 2 and isinstance(two[0], list) and two[0][0]["embedding"] == one[0]["embedding"]


def test_what_deepbatch_does_not_offer_says_so() -> None:
    from deepbatch import DeepFace

    with pytest.raises(DeepFace.UnsupportedFeatureError, match="facial attribute"):
        DeepFace.analyze("img.jpg")
    with pytest.raises(DeepFace.UnsupportedFeatureError, match="facial_attribute"):
        DeepFace.build_model("Age", task="facial_attribute")
