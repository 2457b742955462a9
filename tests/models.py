"""Test models derived from the real shared weights or generated from scratch.

* ``flatten_batch``: rewrites an SCRFD export into the layout of InsightFace's stock ``det_*.onnx`` files, whose head
  reshapes to ``[-1, C]`` so a batch comes out flattened as ``[B*N, C]`` (the cross-frame contamination case).
* ``drop_outputs``: removes the keypoint outputs, giving an SCRFD export without landmarks.

Each registered backend without weights here maps to the arguments that build it on such a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import onnx
from onnx import helper, numpy_helper


def flatten_batch(source: Path, target: Path) -> Path:
    """Copy of ``source`` whose output Reshapes use a constant ``[-1, C]`` (batch flattened into rows)."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    channels = {o.name: o.type.tensor_type.shape.dim[-1].dim_value for o in graph.output}
    for output in graph.output:
        node = producers[output.name]
        while node.op_type != "Reshape":  # scores pass through a Sigmoid after their Reshape
            node = producers[node.input[0]]
        name = f"flat_shape_{output.name}"
        graph.initializer.append(numpy_helper.from_array(np.array([-1, channels[output.name]], np.int64), name))
        node.input[1] = name
        rows = output.type.tensor_type.shape.dim[1].dim_value
        output.type.CopyFrom(helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [rows, channels[output.name]]))
    del graph.value_info[:]
    onnx.save(model, str(target))
    return target


def drop_outputs(source: Path, target: Path, channels: int) -> Path:
    """Copy of ``source`` without the outputs whose last dimension is ``channels``."""
    model = onnx.load(str(source))
    keep = [o for o in model.graph.output if o.type.tensor_type.shape.dim[-1].dim_value != channels]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    onnx.save(model, str(target))
    return target


def build_generated_models(folder: Path, weights: Path) -> Dict[str, dict]:
    """Build arguments per detector name whose real weights are not kept in the shared folder."""
    return {
        # SCRFD-10G ships as InsightFace's det_10g.onnx, which flattens the batch: same layout as this file.
        "scrfd_10g": {"model_path": str(flatten_batch(weights / "scrfd_500m_kps.onnx", folder / "det_flat.onnx"))},
        # SCRFD-34G is published without keypoints.
        "scrfd_34g": {"model_path": str(drop_outputs(weights / "scrfd_2.5g_kps.onnx", folder / "nokps.onnx", 10))},
    }
