"""Every ONNX decoder reads from the file what its outputs mean before it decodes one image: a file that shows other
semantics than the published export (scores not yet activated, box scales cut away, raw regressions instead of
boxes) is either decoded correctly, giving the faces of the whole graph, or refused with a message that says what is
missing and how to supply it. The cut files are the real shared graphs with their post-processing bypassed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List

import cv2
import numpy as np
import pytest
from memory import let_go_of_models
from models import (
    YUNET_FILE,
    as_conv_logits,
    centerface_from_yunet,
    cut_before,
    lffd_from_yunet,
    sigmoid_on_class_part,
    ultralight_raw_boxes,
)

from deepbatch.detectors import build_detector
from deepbatch.detectors.ultralight import ULTRALIGHT_PRIORS
from deepbatch.errors import ArgumentError, ModelFormatError
from deepbatch.runtime.graph_facts import GraphFacts
from deepbatch.structures import Faces

# The same weights with the activation or the scale moved out of the graph: float32 rounding of the same products
# (sigmoid in numpy vs ONNX Runtime, a scale applied before or after the reshape) moves boxes by ~1e-4 px.
SAME_FACES_PX = 1e-2
SAME_SCORES = 1e-5
# Ultra-Light's in-graph box decoding vs deepbatch's prior decoding of the same regressions: float32 products in
# another order on a 320x240 canvas mapped back to the photo.
PRIOR_DECODING_PX = 0.05


@pytest.fixture(autouse=True)
def models_let_go_after_each_test() -> Iterator[None]:
    """Each test here builds whole and cut detectors and runs them on every photo: their sessions are let go."""
    yield
    let_go_of_models()


@pytest.fixture(scope="module")
def photos(dataset_dir: Path) -> List[np.ndarray]:
    """All 64 photos of the shared dataset."""
    return [cv2.imread(str(p)) for p in sorted(dataset_dir.glob("*.jpg"))]


def assert_same_faces(ours: List[Faces], theirs: List[Faces], atol: float = SAME_FACES_PX) -> None:
    assert sum(len(f) for f in theirs) > 0
    for mine, reference in zip(ours, theirs):
        assert len(mine) == len(reference)
        np.testing.assert_allclose(mine.boxes, reference.boxes, atol=atol)
        np.testing.assert_allclose(mine.scores, reference.scores, atol=SAME_SCORES)


def scrfd_scales(path: Path) -> tuple:
    """The per-stride box scales a whole SCRFD graph applies (its box heads' Mul constants), finest stride first."""
    facts = GraphFacts.of(path)
    return tuple(float(facts.head(name).scale) for name in facts.output_names if facts.head(name).op == "Mul")


# ---- SCRFD: scores (Sigmoid or logits) and per-stride box scales (Mul or missing)

@pytest.mark.parametrize("nchw", [False, True], ids=["rows", "nchw"])
def test_scrfd_cut_before_its_sigmoid_gets_the_sigmoid(weights_dir, tmp_path, parity_images, nchw):  # type: ignore[no-untyped-def]
    whole = weights_dir / "scrfd_2.5g_kps.onnx"
    cut = cut_before(whole, tmp_path / "cut.onnx", ("Sigmoid",), nchw=nchw)
    detector = build_detector("scrfd_2.5g", model_path=str(cut))
    assert detector.score_logits and detector.box_scales is None
    assert_same_faces(detector.detect_faces(parity_images), build_detector("scrfd_2.5g").detect_faces(parity_images))


@pytest.mark.parametrize("nchw", [False, True], ids=["rows", "nchw"])
def test_scrfd_cut_before_its_box_scales_is_refused_naming_box_scales(weights_dir, tmp_path, nchw):  # type: ignore[no-untyped-def]
    cut = cut_before(weights_dir / "scrfd_2.5g_kps.onnx", tmp_path / "cut.onnx", ("Sigmoid", "Mul"), nchw=nchw)
    with pytest.raises(ModelFormatError, match=r"cut\.onnx was cut before its post-processing: its scores are "
                                               r"logits .*Pass box_scales=\(s8, s16, s32\)"):
        build_detector("scrfd_2.5g", model_path=str(cut))


@pytest.mark.parametrize("name, file, nchw", [
    ("scrfd_2.5g", "scrfd_2.5g_kps.onnx", False),
    pytest.param("scrfd_2.5g", "scrfd_2.5g_kps.onnx", True, marks=pytest.mark.slow),
    pytest.param("scrfd_500m", "scrfd_500m_kps.onnx", False, marks=pytest.mark.slow),
    pytest.param("scrfd_500m", "scrfd_500m_kps.onnx", True, marks=pytest.mark.slow),
])
def test_scrfd_cut_with_box_scales_gives_the_whole_graphs_faces(weights_dir, tmp_path, photos, name, file, nchw):  # type: ignore[no-untyped-def]
    """On all 64 photos: the cut graph with its scales given is the whole graph."""
    whole = weights_dir / file
    scales = scrfd_scales(whole) or (1.0, 1.0, 1.0)  # SCRFD-500M has no scale layer
    assert name != "scrfd_2.5g" or np.allclose(scales, (0.8807, 0.9315, 1.1424), atol=1e-4)
    cut = cut_before(whole, tmp_path / "cut.onnx", ("Sigmoid", "Mul"), nchw=nchw)
    detector = build_detector(name, model_path=str(cut), box_scales=scales)
    assert_same_faces(detector.detect_faces(photos), build_detector(name).detect_faces(photos))


def test_scrfd_cut_with_wrong_box_scales_gives_other_boxes(weights_dir, tmp_path, photos):  # type: ignore[no-untyped-def]
    """The scales matter: the cut 2.5G graph decoded with 1.0 per stride is off (what the backend gave before)."""
    cut = cut_before(weights_dir / "scrfd_2.5g_kps.onnx", tmp_path / "cut.onnx", ("Sigmoid", "Mul"))
    unscaled = build_detector("scrfd_2.5g", model_path=str(cut), box_scales=(1.0, 1.0, 1.0)).detect_faces(photos[:8])
    whole = build_detector("scrfd_2.5g").detect_faces(photos[:8])
    largest = max(np.abs(a.boxes - b.boxes).max() for a, b in zip(unscaled, whole) if len(a) == len(b) and len(a))
    assert largest > 1.0


@pytest.mark.parametrize("scales, error, message", [
    ((0.88, 0.93, 1.14), ModelFormatError, "multiplies its box distances by per-stride scales itself .*twice"),
])
def test_box_scales_on_a_graph_that_applies_them_is_refused(weights_dir, scales, error, message):  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        build_detector("scrfd_2.5g", box_scales=scales)


@pytest.mark.parametrize("scales, error, message", [
    ((1.0, 1.0), ModelFormatError, "box_scales has 2 values; this export has 3 strides"),
    ((1.0, float("nan"), 1.0), ArgumentError, "box_scales must be positive numbers"),
    ((1.0, -1.0, 1.0), ArgumentError, "box_scales must be positive numbers"),
])
def test_bad_box_scales_are_refused(weights_dir, tmp_path, scales, error, message, photos):  # type: ignore[no-untyped-def]
    cut = cut_before(weights_dir / "scrfd_500m_kps.onnx", tmp_path / "cut.onnx", ("Sigmoid",))
    with pytest.raises(error, match=message):
        build_detector("scrfd_500m", model_path=str(cut), box_scales=scales).detect_faces(photos[:1])


# ---- YuNet, RetinaFace, Ultra-Light, CenterFace: activations read from the graph

@pytest.mark.parametrize("name, file, op", [
    ("yunet", YUNET_FILE, "Sigmoid"),
    ("retinaface", "retinaface_mnet025.onnx", "Softmax"),
    ("ultralight_320", "ultralight_rfb_320.onnx", "Softmax"),
])
def test_scores_cut_before_their_activation_get_it(weights_dir, tmp_path, parity_images, name, file, op):  # type: ignore[no-untyped-def]
    cut = cut_before(weights_dir / file, tmp_path / "cut.onnx", (op,))
    assert_same_faces(build_detector(name, model_path=str(cut)).detect_faces(parity_images),
                      build_detector(name).detect_faces(parity_images))


def test_retinaface_softmax_over_another_axis_is_refused(weights_dir, tmp_path):  # type: ignore[no-untyped-def]
    import onnx

    model = onnx.load(str(weights_dir / "retinaface_mnet025.onnx"))
    for node in model.graph.node:
        if node.op_type == "Softmax":
            node.attribute[0].i = 1
    onnx.save(model, str(tmp_path / "axis1.onnx"))
    with pytest.raises(ModelFormatError, match="ends in a Softmax over axis 1"):
        build_detector("retinaface", model_path=str(tmp_path / "axis1.onnx"))


def test_ultralight_raw_regressions_are_refused_without_priors(weights_dir, tmp_path):  # type: ignore[no-untyped-def]
    raw = ultralight_raw_boxes(weights_dir / "ultralight_rfb_320.onnx", tmp_path / "raw.onnx")
    with pytest.raises(ModelFormatError, match="raw regressions, not boxes; pass priors=ULTRALIGHT_PRIORS"):
        build_detector("ultralight_320", model_path=str(raw))


def test_ultralight_raw_regressions_with_priors_give_the_whole_graphs_faces(weights_dir, tmp_path, photos):  # type: ignore[no-untyped-def]
    raw = ultralight_raw_boxes(weights_dir / "ultralight_rfb_320.onnx", tmp_path / "raw.onnx")
    detector = build_detector("ultralight_320", model_path=str(raw), priors=ULTRALIGHT_PRIORS)
    assert_same_faces(detector.detect_faces(photos), build_detector("ultralight_320").detect_faces(photos),
                      atol=PRIOR_DECODING_PX)


def test_ultralight_priors_on_decoded_boxes_are_refused(weights_dir):  # type: ignore[no-untyped-def]
    with pytest.raises(ModelFormatError, match="decodes its boxes inside the graph; priors= would decode them twice"):
        build_detector("ultralight_320", priors=ULTRALIGHT_PRIORS)


@pytest.fixture(scope="module")
def yunet_derived(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    folder = tmp_path_factory.mktemp("derived")
    return {"centerface": centerface_from_yunet(weights_dir / YUNET_FILE, folder / "centerface.onnx"),
            "lffd_v2": lffd_from_yunet(weights_dir / YUNET_FILE, folder / "lffd_v2.onnx", "lffd_v2"),
            "folder": folder}


def test_centerface_heatmap_of_logits_gets_the_sigmoid(yunet_derived, parity_images):  # type: ignore[no-untyped-def]
    source = yunet_derived["centerface"]
    logits = as_conv_logits(source, yunet_derived["folder"] / "centerface_logits.onnx", ["537"])
    detector = build_detector("centerface", model_path=str(logits))
    assert detector.heatmap_logits
    assert_same_faces(detector.detect_faces(parity_images),
                      build_detector("centerface", model_path=str(source)).detect_faces(parity_images))


def test_lffd_score_maps_of_logits_are_refused(yunet_derived):  # type: ignore[no-untyped-def]
    import onnx

    source = yunet_derived["lffd_v2"]
    scores = [o.name for o in onnx.load(str(source)).graph.output if o.type.tensor_type.shape.dim[1].dim_value == 1]
    logits = as_conv_logits(source, yunet_derived["folder"] / "lffd_logits.onnx", scores)
    with pytest.raises(ModelFormatError, match="comes straight out of a Conv \\(no softmax\\)"):
        build_detector("lffd_v2", model_path=str(logits))


# ---- YOLO raw heads: class scores are logits unless the graph shows a Sigmoid

def test_yolo_raw_heads_with_sigmoid_scores_are_not_activated_twice(weights_dir, tmp_path, parity_images):  # type: ignore[no-untyped-def]
    published = weights_dir / "yolov8_lite_t_face_rawheads.onnx"
    activated = sigmoid_on_class_part(published, tmp_path / "activated.onnx")
    detector = build_detector("yolov8n", model_path=str(activated))
    assert not detector.score_logits and build_detector("yolov8n", model_path=str(published)).score_logits
    assert_same_faces(detector.detect_faces(parity_images),
                      build_detector("yolov8n", model_path=str(published)).detect_faces(parity_images))


# ---- SSD (Caffe): the class layout of its DetectionOutput layer

def test_ssd_with_other_classes_is_refused(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "deploy.prototxt").write_text('layer {\n  name: "detection_out"\n  type: "DetectionOutput"\n'
                                              '  detection_output_param {\n    num_classes: 21\n  }\n}\n')
    (tmp_path / "res10.caffemodel").write_bytes(b"\0")
    with pytest.raises(ModelFormatError, match="21 classes.*2 \\(background, face\\)"):
        build_detector("ssd", model_path=str(tmp_path / "res10.caffemodel"),
                       config_path=str(tmp_path / "deploy.prototxt"))
