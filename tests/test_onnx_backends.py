"""Model-specific checks of the ONNX Runtime backends YuNet, RetinaFace, Ultra-Light, CenterFace and LFFD.

The generic contract (batch equals single image, input order, 4-D input, no cross-frame leaks) is checked for every
registered detector in ``test_detectors.py``; here each decoder is checked against its reference implementation or
a known answer.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import onnx
import pytest
from conftest import make_detector

from deepbatch.detectors import DETECTORS, build_detector
from deepbatch.detectors.lffd import LFFD_SPECS
from deepbatch.detectors.retinaface import RETINAFACE_PRIORS
from deepbatch.detectors.ultralight import ULTRALIGHT_PRIORS, UltraLight
from deepbatch.errors import ArgumentError, ModelFormatError, WeightsNotFoundError
from deepbatch.ops.letterbox import letterbox
from deepbatch.ops.priors import PriorSpec, prior_boxes
from deepbatch.structures import OBSERVER_TO_PERSON
from deepbatch.weights import sha256_of

# Two decoders of the same float32 outputs differ only by the order of float32 operations: far below 1e-3 px.
SAME_OUTPUTS_PX = 1e-3
# The same regressions decoded with priors here or inside the graph, in normalised units, then scaled to photos of up
# to 1,280 px: float32 rounding of values near 1 (about 1e-7) times 1,280 stays far below this.
PRIOR_DECODING_PX = 1e-3
# The CenterFace and LFFD test graphs re-encode YuNet's boxes through exp/log and divisions in float32 inside the
# graph; measured differences are below 3e-4 px on photos of up to 1,280 px.
REENCODED_PX = 1e-2
SCORE_TOLERANCE = 1e-5
PHOTOS = ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img45.jpg"]
LANDMARK_BACKENDS = ["yunet", "retinaface", "centerface"]
SHARED_WEIGHTS = ["yunet", "retinaface", "ultralight_320", "ultralight_640"]
DERIVED = ["centerface", "lffd_v1", "lffd_v2"]


@pytest.fixture(scope="module")
def photos(dataset_dir: Path) -> List[np.ndarray]:
    return [cv2.imread(str(dataset_dir / name)) for name in PHOTOS]


def by_score(faces):  # type: ignore[no-untyped-def]
    return faces[np.argsort(-faces.scores, kind="stable")]


# --- registry and weights ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alias, target", [("ultralight", "ultralight_320"), ("lffd", "lffd_v1")])
def test_alias_names_a_variant(alias: str, target: str) -> None:
    assert DETECTORS.canonical(alias) == target


@pytest.mark.parametrize("name", SHARED_WEIGHTS)
def test_registered_digest_is_the_shared_file(name: str, weights_dir: Path) -> None:
    spec = DETECTORS.entry(name).defaults["weights"]
    assert sha256_of(weights_dir / spec.filename) == spec.sha256


@pytest.mark.parametrize("name, source", [
    ("yunet", "https://media.githubusercontent.com/media/opencv/opencv_zoo/"),
    ("ultralight_320", "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"),
    ("ultralight_640", "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"),
])
def test_download_url_is_the_official_one(name: str, source: str) -> None:
    assert DETECTORS.entry(name).defaults["weights"].url.startswith(source)


@pytest.mark.parametrize("name, filename, homepage", [
    ("lffd_v1", "lffd_10_560_25L_8scales_v1.onnx", "YonghaoHe/LFFD"),
    ("lffd_v2", "lffd_10_320_20L_5scales_v2.onnx", "YonghaoHe/LFFD"),
    ("retinaface", "retinaface_mnet025.onnx", "biubug6/Pytorch_Retinaface"),
])
def test_missing_weights_name_the_file_and_where_to_get_it(name, filename, homepage, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEEPBATCH_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("DEEPBATCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError, match=filename) as info:
        DETECTORS.create(name)
    assert homepage in str(info.value)


# --- canvas rules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, error", [
    ("ultralight_320", {"input_size": 640}, ArgumentError),
    ("ultralight_640", {"input_size": (320, 240)}, ArgumentError),
    ("retinaface", {"input_size": 320}, ModelFormatError),
])
def test_fixed_canvas_refuses_another_size(name, kwargs, error, weights_dir):  # type: ignore[no-untyped-def]
    with pytest.raises(error, match="640|320"):
        DETECTORS.create(name, **kwargs)


@pytest.mark.parametrize("filename, canvas", [("ultralight_rfb_320.onnx", (320, 240)),
                                              ("ultralight_rfb_640.onnx", (640, 480))])
def test_ultralight_runs_on_the_canvas_its_export_declares(filename, canvas, weights_dir):  # type: ignore[no-untyped-def]
    assert UltraLight(weights_dir / filename).input_spec.size == canvas


# --- priors ---------------------------------------------------------------------------------------------------------

def retinaface_reference_priors(height: int, width: int) -> np.ndarray:
    """biubug6/Pytorch_Retinaface layers/functions/prior_box.py (mobilenet0.25 config), loop for loop."""
    anchors = []
    for step, min_sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512))):
        for i, j in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for min_size in min_sizes:
                anchors += [(j + 0.5) * step / width, (i + 0.5) * step / height, min_size / width, min_size / height]
    return np.array(anchors, np.float32).reshape(-1, 4)


def ultralight_reference_priors(height: int, width: int) -> np.ndarray:
    """Ultra-Light vision/ssd/config/fd_config.py and box_utils.generate_priors, loop for loop: the shrinkage of a
    level is the canvas size divided by its (rounded-up) cell count, not the stride."""
    priors = []
    for stride, min_boxes in zip((8, 16, 32, 64), ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))):
        cells_w, cells_h = math.ceil(width / stride), math.ceil(height / stride)
        scale_w, scale_h = width / (width / cells_w), height / (height / cells_h)
        for j in range(cells_h):
            for i in range(cells_w):
                for min_box in min_boxes:
                    priors.append([(i + 0.5) / scale_w, (j + 0.5) / scale_h, min_box / width, min_box / height])
    return np.clip(np.array(priors, np.float32), 0.0, 1.0)


@pytest.mark.parametrize("spec, reference, height, width", [
    (RETINAFACE_PRIORS, retinaface_reference_priors, 640, 640),
    (RETINAFACE_PRIORS, retinaface_reference_priors, 480, 736),
    (ULTRALIGHT_PRIORS, ultralight_reference_priors, 240, 320),
    (ULTRALIGHT_PRIORS, ultralight_reference_priors, 480, 640),
])
def test_priors_match_the_reference_loops(spec, reference, height, width):  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(prior_boxes(spec, height, width), reference(height, width), atol=1e-6)


@pytest.mark.parametrize("spec, height, width, count", [
    (RETINAFACE_PRIORS, 640, 640, 16800),  # retinaface_mnet025.onnx: loc [1, 16800, 4]
    (ULTRALIGHT_PRIORS, 240, 320, 4420),  # ultralight_rfb_320.onnx: boxes [1, 4420, 4]
    (ULTRALIGHT_PRIORS, 480, 640, 17640),  # ultralight_rfb_640.onnx: boxes [1, 17640, 4]
])
def test_prior_count_matches_the_export(spec: PriorSpec, height: int, width: int, count: int) -> None:
    assert spec.count(height, width) == count == len(prior_boxes(spec, height, width))


def test_prior_spec_needs_sizes_for_every_step() -> None:
    with pytest.raises(ValueError, match="min_sizes"):
        PriorSpec(steps=(8, 16), min_sizes=((16,),))


@pytest.fixture(scope="module")
def ultralight_raw(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> str:
    """The published RFB-320 graph cut before its box decoding: outputs ``scores`` and the raw regressions, as
    the reference repository's ``*_without_postprocessing.onnx`` exports give them."""
    model = onnx.load(str(weights_dir / "ultralight_rfb_320.onnx"))
    consumers = {name: node for node in model.graph.node for name in node.input}
    final = next(node for node in model.graph.node if "boxes" in node.output)
    raw = next(t for t in (n.output[0] for n in model.graph.node if n.op_type == "Concat")
               if consumers.get(t) is not None and consumers[t].op_type == "Slice" and t not in final.input)
    output = onnx.helper.make_tensor_value_info(raw, onnx.TensorProto.FLOAT, [1, 4420, 4])
    model.graph.output.remove(next(o for o in model.graph.output if o.name == "boxes"))
    model.graph.output.append(output)
    path = tmp_path_factory.mktemp("ultralight") / "rfb320_raw.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_prior_decoding_matches_the_graphs_own(ultralight_raw: str, photos: List[np.ndarray]) -> None:
    published = build_detector("ultralight_320").detect_faces(photos)
    decoded_here = UltraLight(ultralight_raw, priors=ULTRALIGHT_PRIORS).detect_faces(photos)
    for ours, theirs in zip(decoded_here, published):
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=PRIOR_DECODING_PX, rtol=0)


# --- YuNet against OpenCV -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("photo", PHOTOS)
def test_yunet_matches_opencv_face_detector_yn(photo: str, dataset_dir: Path, weights_dir: Path) -> None:
    """Both see identical pixels: the photo resized to 640 px wide, on a canvas of its own size rounded up to 32
    (FaceDetectorYN's padding). OpenCV reports boxes unclipped; deepbatch clips them to the image."""
    image = cv2.imread(str(dataset_dir / photo))
    height = int(640 * image.shape[0] / image.shape[1])
    image = cv2.resize(image, (640, height))
    opencv = cv2.FaceDetectorYN.create(str(weights_dir / "face_detection_yunet_2026may.onnx"), "", (640, height),
                                       0.5, 0.4, 5000)
    reference = opencv.detect(image)[1]
    reference = reference[np.argsort(-reference[:, 14])]
    faces = by_score(build_detector("yunet", input_size=(640, -(-height // 32) * 32)).detect_faces([image])[0])
    assert len(faces) == len(reference)
    xyxy = np.concatenate([reference[:, :2], reference[:, :2] + reference[:, 2:4]], axis=1)
    expected = np.clip(xyxy, 0, [640, height, 640, height])
    np.testing.assert_allclose(faces.boxes, expected, atol=SAME_OUTPUTS_PX, rtol=0)
    points = reference[:, 4:14].reshape(-1, 5, 2)[:, OBSERVER_TO_PERSON]
    np.testing.assert_allclose(faces.landmarks, points, atol=SAME_OUTPUTS_PX, rtol=0)
    np.testing.assert_allclose(faces.scores, reference[:, 14], atol=SCORE_TOLERANCE, rtol=0)


# --- reference decoders on known outputs ----------------------------------------------------------------------------

def centerface_reference(heatmap, scale, offset, landmark, size, threshold):  # type: ignore[no-untyped-def]
    """Star-Clouds/CenterFace prj-python/centerface.py ``decode`` for one image, without its NMS."""
    heatmap = np.squeeze(heatmap)
    scale0, scale1 = scale[0, 0], scale[0, 1]
    offset0, offset1 = offset[0, 0], offset[0, 1]
    boxes, lms = [], []
    for r, c in zip(*np.where(heatmap >= threshold)):
        s0, s1 = np.exp(scale0[r, c]) * 4, np.exp(scale1[r, c]) * 4
        o0, o1 = offset0[r, c], offset1[r, c]
        x1, y1 = max(0, (c + o1 + 0.5) * 4 - s1 / 2), max(0, (r + o0 + 0.5) * 4 - s0 / 2)
        x1, y1 = min(x1, size[1]), min(y1, size[0])
        boxes.append([x1, y1, min(x1 + s1, size[1]), min(y1 + s0, size[0]), heatmap[r, c]])
        lms.append([[landmark[0, j * 2 + 1, r, c] * s1 + x1, landmark[0, j * 2, r, c] * s0 + y1] for j in range(5)])
    return np.array(boxes, np.float32).reshape(-1, 5), np.array(lms, np.float32).reshape(-1, 5, 2)


def test_centerface_decode_matches_the_reference(generated_models: Dict[str, dict]) -> None:
    detector = make_detector("centerface", generated_models)
    rng = np.random.default_rng(0)
    batch = letterbox([np.zeros((128, 160, 3), np.uint8)] * 2, detector.input_spec)
    h, w = batch.blob.shape[2] // 4, batch.blob.shape[3] // 4
    heat = rng.uniform(0, 0.6, (2, 1, h, w)).astype(np.float32)
    outputs = [heat, rng.normal(2, 0.5, (2, 2, h, w)).astype(np.float32),
               rng.uniform(0, 1, (2, 2, h, w)).astype(np.float32), rng.uniform(0, 1, (2, 10, h, w)).astype(np.float32)]
    found = detector.candidates(outputs)
    for i in range(2):
        mine = found.image_index == i
        boxes, points = centerface_reference(*(o[i : i + 1] for o in outputs), batch.blob.shape[2:],
                                             detector.score_threshold)
        assert mine.sum() == len(boxes) > 0
        np.testing.assert_allclose(found.boxes[mine], boxes[:, :4], atol=SAME_OUTPUTS_PX, rtol=0)
        np.testing.assert_allclose(found.scores[mine], boxes[:, 4], atol=0, rtol=0)
        np.testing.assert_allclose(found.landmarks[mine], points[:, OBSERVER_TO_PERSON], atol=SAME_OUTPUTS_PX, rtol=0)


def lffd_reference(outputs, spec, threshold):  # type: ignore[no-untyped-def]
    """YonghaoHe/LFFD face_detection/accuracy_evaluation/predict.py for one image (scale 1, no clipping, no NMS)."""
    found = []
    for i in range(len(spec.sizes)):
        score_map = np.squeeze(outputs[i * 2], (0, 1))
        bbox_map = np.squeeze(outputs[i * 2 + 1], 0)
        xs = np.tile(np.array([spec.starts[i] + spec.strides[i] * x for x in range(score_map.shape[1])]),
                     [score_map.shape[0], 1])
        ys = np.tile(np.array([spec.starts[i] + spec.strides[i] * y for y in range(score_map.shape[0])]),
                     [score_map.shape[1], 1]).T
        constant = spec.sizes[i] / 2
        corners = [xs - bbox_map[0] * constant, ys - bbox_map[1] * constant,
                   xs - bbox_map[2] * constant, ys - bbox_map[3] * constant]
        for r, c in zip(*np.where(score_map >= threshold)):
            found.append([m[r, c] for m in corners] + [score_map[r, c]])
    return np.array(found, np.float32).reshape(-1, 5)


@pytest.mark.parametrize("name", ["lffd_v1", "lffd_v2"])
def test_lffd_decode_matches_the_reference(name: str, generated_models: Dict[str, dict]) -> None:
    detector = make_detector(name, generated_models)
    spec = LFFD_SPECS[name]
    rng = np.random.default_rng(1)
    batch = letterbox([np.zeros((480, 640, 3), np.uint8)] * 2, detector.input_spec)
    outputs = []
    for stride in spec.strides:  # map sizes of a real export: (640 - 3) // stride + 1, not 640 / stride
        size = (2, (batch.blob.shape[2] - 3) // stride + 1, (batch.blob.shape[3] - 3) // stride + 1)
        outputs += [rng.uniform(0, 0.55, (size[0], 1, *size[1:])).astype(np.float32),
                    rng.normal(0, 1, (size[0], 4, *size[1:])).astype(np.float32)]
    found = detector.candidates(outputs)
    for i in range(2):
        expected = lffd_reference([o[i : i + 1] for o in outputs], spec, detector.score_threshold)
        of_image = found.image_index == i
        assert of_image.sum() == len(expected) > 0
        order = np.lexsort(expected[:, ::-1].T)
        mine = np.concatenate([found.boxes[of_image], found.scores[of_image, None]], axis=1)
        np.testing.assert_allclose(mine[np.lexsort(mine[:, ::-1].T)], expected[order], atol=SAME_OUTPUTS_PX, rtol=0)


@pytest.mark.parametrize("name", ["lffd_v1", "lffd_v2"])
def test_lffd_export_of_another_variant_is_refused(name: str, generated_models: Dict[str, dict]) -> None:
    other = {"lffd_v1": "lffd_v2", "lffd_v2": "lffd_v1"}[name]
    detector = DETECTORS.create(name, model_path=generated_models[other]["model_path"])
    with pytest.raises(ModelFormatError, match="branches"):
        detector.detect_faces([np.zeros((64, 64, 3), np.uint8)])


# --- real faces -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DERIVED)
def test_layout_decoders_recover_the_embedded_faces(name, generated_models, photos):  # type: ignore[no-untyped-def]
    """The CenterFace and LFFD test graphs carry YuNet's faces re-encoded into their layouts: decoding them must
    give YuNet's detections."""
    expected = build_detector("yunet").detect_faces(photos)
    found = make_detector(name, generated_models).detect_faces(photos)
    for ours, yunet in zip(found, expected):
        ours, yunet = by_score(ours), by_score(yunet)
        assert len(ours) == len(yunet)
        np.testing.assert_allclose(ours.boxes, yunet.boxes, atol=REENCODED_PX, rtol=0)
        np.testing.assert_allclose(ours.scores, yunet.scores, atol=SCORE_TOLERANCE, rtol=0)
        if ours.landmarks is not None:
            np.testing.assert_allclose(ours.landmarks, yunet.landmarks, atol=REENCODED_PX, rtol=0)


@pytest.mark.parametrize("name", LANDMARK_BACKENDS)
def test_couple_eyes_are_person_relative(name, generated_models, dataset_dir):  # type: ignore[no-untyped-def]
    """couple.jpg: two frontal faces; each person's left eye appears at the larger x."""
    faces = make_detector(name, generated_models).detect_faces([cv2.imread(str(dataset_dir / "couple.jpg"))])[0]
    assert len(faces) == 2
    assert np.all(faces.landmarks[:, 0, 0] > faces.landmarks[:, 1, 0])


@pytest.mark.parametrize("name, couple, selfie", [
    ("yunet", 2, 6),
    ("retinaface", 2, 6),
    ("ultralight_640", 2, 6),
    ("ultralight_320", 2, 5),  # at 320x240 it misses the selfie's face that the right border cuts in half
])
def test_faces_found_in_the_group_photos(name, couple, selfie, dataset_dir, weights_dir):  # type: ignore[no-untyped-def]
    images = [cv2.imread(str(dataset_dir / f)) for f in ("couple.jpg", "selfie-many-people.jpg")]
    assert [len(f) for f in build_detector(name).detect_faces(images)] == [couple, selfie]
