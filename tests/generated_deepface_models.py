"""Generated test models for the models DeepFace names whose weights are not kept here.

* ``sface_signature``: a small random graph with the input and output signature of OpenCV Zoo's
  ``face_recognition_sface_2021dec.onnx`` (input ``data`` ``[1, 3, 112, 112]``, output ``fc1`` ``[1, 128]``, both
  declared with batch 1). OpenCV's own ``FaceRecognizerSF`` loads it too, so it is the reference for SFace's
  alignment and pre-processing.
* ``deepface_keras_weights``: DeepFace's own Keras architecture of a recognition model with random weights, saved
  in DeepFace's format under DeepFace's file name in a DeepFace home folder (what DeepFace and deepbatch both load).
* ``res10_ssd_signature``: a Caffe SSD with the input and output signature of OpenCV's res10 face detector
  (``deploy.prototxt`` + ``res10_300x300_ssd_iter_140000.caffemodel``): input ``data`` 300x300, prior boxes,
  softmaxed two-class confidences and a ``DetectionOutput`` layer ``detection_out`` ``[1, 1, K, 7]``. Its weights
  are random, so it finds "faces" that depend on the pixels, which is what batch parity needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper


def sface_signature(target: Path, seed: int = 0) -> Path:
    """SFace's signature on Conv, PReLU, Flatten and Gemm, with random weights (loadable by ``cv2.dnn``)."""
    rng = np.random.default_rng(seed)

    def tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(array.astype(np.float32), name)

    channels, cells = 16, 14 * 14
    initializers = [
        tensor("conv_w", rng.normal(0, 1 / (255 * 8), (channels, 3, 8, 8))),  # raw 0-255 input
        tensor("conv_b", rng.normal(0, 0.1, channels)),
        tensor("prelu_slope", rng.uniform(0.1, 0.3, (channels, 1, 1))),
        tensor("fc_w", rng.normal(0, np.sqrt(1 / (channels * cells)), (128, channels * cells))),
        tensor("fc_b", rng.normal(0, 0.01, 128)),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "conv_w", "conv_b"], ["conv"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("PRelu", ["conv", "prelu_slope"], ["prelu"]),
        helper.make_node("Flatten", ["prelu"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc1"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "sface_signature",
        [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", onnx.TensorProto.FLOAT, [1, 128])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def deepface_keras_weights(home: Path, name: str, seed: int = 0) -> Path:
    """DeepFace's model ``name`` built by DeepFace's own code with random weights (seeded), saved where DeepFace looks
    for its weight file (``home/.deepface/weights``); returns the file. DeepFace loads weights into the very model
    it builds (before cutting a descriptor from it), so the file is saved at that moment, from that model."""
    from unittest import mock

    import deepface.DeepFace  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
    import tensorflow as tf
    from deepface.commons import weight_utils
    from deepface.modules import modeling

    folder = home / ".deepface" / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    saved: List[Path] = []

    def locate(file_name: str, source_url: Any, compress_type: Any = None) -> str:
        return str(folder / file_name)

    def save(model: Any, weight_file: str) -> Any:
        if not os.path.isfile(weight_file):
            model.save_weights(weight_file)
        saved.append(Path(weight_file))
        return model

    tf.keras.utils.set_random_seed(seed)
    with mock.patch.object(weight_utils, "download_weights_if_necessary", locate), \
            mock.patch.object(weight_utils, "load_model_weights", save):
        modeling.get_model_class("facial_recognition", name)()
    return saved[0]


def build_generated_deepface_recognizers(folder: Path) -> Dict[str, dict]:
    """Build arguments per recognizer name (DeepFace's models) whose real weights are not kept here."""
    return {"sface": {"model_path": str(sface_signature(folder / "face_recognition_sface_2021dec.onnx"))}}


def build_generated_deepface_models(folder: Path) -> Dict[str, dict]:
    """Build arguments per detector name (DeepFace's backends) whose real weights are not kept here (``ssd``: the
    Caffe pair of :func:`res10_ssd_signature`), and for ``fastmtcnn`` (real weights, shipped by its package) an
    80-pixel smallest face: its image pyramid then starts at 1/16 of the pixels it has at the default 20, which
    keeps the parity suite affordable on CPU (batching is checked the same way, and the parity photos, scaled to
    1024 pixels, still hold faces of that size)."""
    model, config = res10_ssd_signature(folder)
    return {"ssd": {"model_path": str(model), "config_path": str(config)}, "fastmtcnn": {"min_face_size": 80}}


SSD_PRIORS_PER_CELL = 4  # one min size, one max size, aspect ratio 2 flipped
SSD_CONV_CHANNELS = (3, 8, 16, 16)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _caffe_blob(array: np.ndarray) -> bytes:
    """A Caffe ``BlobProto``: ``shape`` (field 7, packed int64 dims) and ``data`` (field 5, packed float32)."""
    dims = b"".join(_varint(int(d)) for d in array.shape)
    return _field(7, _field(1, dims)) + _field(5, np.ascontiguousarray(array, "<f4").tobytes())


def _caffe_layer(name: str, kind: str, blobs: List[np.ndarray]) -> bytes:
    """A Caffe ``LayerParameter``: ``name`` (1), ``type`` (2), ``blobs`` (7)."""
    return _field(1, name.encode()) + _field(2, kind.encode()) + b"".join(_field(7, _caffe_blob(b)) for b in blobs)


def _ssd_prototxt() -> str:
    convs = []
    bottom = "data"
    for i, cout in enumerate(SSD_CONV_CHANNELS[1:], start=1):
        convs.append(
            f'layer {{ name: "conv{i}" type: "Convolution" bottom: "{bottom}" top: "conv{i}" '
            f"convolution_param {{ num_output: {cout} kernel_size: 3 stride: 2 pad: 0 }} }}\n"
            f'layer {{ name: "relu{i}" type: "ReLU" bottom: "conv{i}" top: "conv{i}" }}\n'
        )
        bottom = f"conv{i}"
    head = []
    for name, channels in (("loc", 4), ("conf", 2)):
        head.append(
            f'layer {{ name: "mbox_{name}" type: "Convolution" bottom: "{bottom}" top: "mbox_{name}" '
            f"convolution_param {{ num_output: {channels * SSD_PRIORS_PER_CELL} kernel_size: 3 pad: 1 }} }}\n"
            f'layer {{ name: "mbox_{name}_perm" type: "Permute" bottom: "mbox_{name}" top: "mbox_{name}_perm" '
            "permute_param { order: 0 order: 2 order: 3 order: 1 } }\n"
            f'layer {{ name: "mbox_{name}_flat" type: "Flatten" bottom: "mbox_{name}_perm" top: "mbox_{name}_flat" '
            "flatten_param { axis: 1 } }\n"
        )
    return (
        'name: "res10_ssd_signature"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 300 dim: 300 }\n'
        + "".join(convs) + "".join(head)
        + f'layer {{ name: "mbox_priorbox" type: "PriorBox" bottom: "{bottom}" bottom: "data" top: "mbox_priorbox" '
        "prior_box_param { min_size: 40 max_size: 90 aspect_ratio: 2 flip: true clip: false "
        "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 8.333 offset: 0.5 } }\n"
        'layer { name: "mbox_conf_reshape" type: "Reshape" bottom: "mbox_conf_flat" top: "mbox_conf_reshape" '
        "reshape_param { shape { dim: 0 dim: -1 dim: 2 } } }\n"
        'layer { name: "mbox_conf_softmax" type: "Softmax" bottom: "mbox_conf_reshape" top: "mbox_conf_softmax" '
        "softmax_param { axis: 2 } }\n"
        'layer { name: "mbox_conf_flatten" type: "Flatten" bottom: "mbox_conf_softmax" top: "mbox_conf_flatten" '
        "flatten_param { axis: 1 } }\n"
        'layer { name: "detection_out" type: "DetectionOutput" bottom: "mbox_loc_flat" '
        'bottom: "mbox_conf_flatten" bottom: "mbox_priorbox" top: "detection_out" include { phase: TEST } '
        "detection_output_param { num_classes: 2 share_location: true background_label_id: 0 "
        "nms_param { nms_threshold: 0.45 top_k: 400 } code_type: CENTER_SIZE keep_top_k: 200 "
        "confidence_threshold: 0.01 } }\n"
    )


def res10_ssd_signature(folder: Path, seed: int = 0) -> Tuple[Path, Path]:
    """``(caffemodel, prototxt)`` of a small SSD with the res10 face detector's signature, random weights.

    The first kernels sum to zero over each input channel and have no bias, so a flat image gives no response and
    no face (the face logit's bias is low); textured photos give detections that move with the pixels.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for i, (cin, cout) in enumerate(zip(SSD_CONV_CHANNELS, SSD_CONV_CHANNELS[1:]), start=1):
        weights = rng.normal(0, np.sqrt(2 / (cin * 9)), (cout, cin, 3, 3))
        if i == 1:
            weights -= weights.mean(axis=(2, 3), keepdims=True)
        layers.append(_caffe_layer(f"conv{i}", "Convolution", [weights, np.zeros(cout)]))
    channels = SSD_CONV_CHANNELS[-1]
    loc = rng.normal(0, 0.02, (4 * SSD_PRIORS_PER_CELL, channels, 3, 3))
    conf = rng.normal(0, 0.006, (2 * SSD_PRIORS_PER_CELL, channels, 3, 3))
    conf_bias = np.tile([2.0, -2.0], SSD_PRIORS_PER_CELL)  # background, face: a flat image scores 0.018
    layers.append(_caffe_layer("mbox_loc", "Convolution", [loc, np.zeros(4 * SSD_PRIORS_PER_CELL)]))
    layers.append(_caffe_layer("mbox_conf", "Convolution", [conf, conf_bias]))
    model = folder / "res10_300x300_ssd_iter_140000.caffemodel"
    model.write_bytes(_field(1, b"res10_ssd_signature") + b"".join(_field(100, layer) for layer in layers))
    config = folder / "deploy.prototxt"
    config.write_text(_ssd_prototxt())
    return model, config
