"""The ``onnx`` package and two readers of an ONNX graph (declared dimensions, constant tensors), shared by the
batch-axis tracer, the graph repair and the model loader.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..optional import require


def import_onnx():  # type: ignore[no-untyped-def]
    """The ``onnx`` package, a base requirement: without it the install is incomplete, so the hint reinstalls
    deepbatch itself."""
    return require("onnx", "", "rewriting ONNX graphs")


def declared_dims(value_info) -> List:  # type: ignore[no-untyped-def]
    """The declared dimensions of a graph input or output: ints, symbolic names, or None where unknown."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]


def graph_constants(graph) -> Dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The values of a graph's initializers and ``Constant`` nodes, by tensor name."""
    onnx = import_onnx()
    found = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = onnx.numpy_helper.to_array(attr.t)
    return found
