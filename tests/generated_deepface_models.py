"""Generated test models for the models DeepFace names whose weights are not kept here.

* ``sface_signature``: a small random graph with the input and output signature of OpenCV Zoo's
  ``face_recognition_sface_2021dec.onnx`` (input ``data`` ``[1, 3, 112, 112]``, output ``fc1`` ``[1, 128]``, both
  declared with batch 1). OpenCV's own ``FaceRecognizerSF`` loads it too, so it is the reference for SFace's
  alignment and pre-processing.
* ``res10_ssd_signature``: a Caffe SSD with the input and output signature of OpenCV's res10 face detector
  (``deploy.prototxt`` + ``res10_300x300_ssd_iter_140000.caffemodel``): input ``data`` 300x300, prior boxes,
  softmaxed two-class confidences and a ``DetectionOutput`` layer ``detection_out`` ``[1, 1, K, 7]``. Its weights
  are random, so it finds "faces" that depend on the pixels, which is what batch parity needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

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


def build_generated_deepface_recognizers(folder: Path) -> Dict[str, dict]:
    """Build arguments per recognizer name (DeepFace's models) whose real weights are not kept here."""
    return {"sface": {"model_path": str(sface_signature(folder / "face_recognition_sface_2021dec.onnx"))}}


def build_generated_deepface_models(folder: Path) -> Dict[str, dict]:
    """Build arguments per detector name (DeepFace's backends) whose real weights are not kept here, and for
    ``fastmtcnn`` (real weights, shipped by its package) a 40-pixel smallest face: its image pyramid then starts at
    a quarter of the pixels, which keeps the parity suite affordable on CPU (every face in the parity photos is
    larger; batching is checked the same way)."""
    return {"fastmtcnn": {"min_face_size": 40}}
