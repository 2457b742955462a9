"""Where the batch axis goes inside an ONNX graph, read from its data flow.

:func:`trace_batch` follows the image input through the graph, node by node in topological order, and records:

* the tensors whose axis 0 is the batch axis (``batched``): an op keeps it unless it reads the shape instead of the
  values (``Shape``, ``Size``), builds new tensors from a shape (``Range``, ``ConstantOfShape``), or moves or
  indexes axis 0 (``Transpose`` with another leading axis, ``Gather`` on axis 0, ...);
* small integer shape vectors as far as they can be read (``shapes``): each element an ``int``, ``BATCH`` (the
  batch size, read with ``Shape``) or ``None`` (unknown), through ``Shape``, ``Gather``, ``Slice``, ``Unsqueeze``,
  ``Concat``, ``Cast`` and ``Identity``;
* the nodes that may combine several frames (``mixing``): a reduction, concatenation, split or slice over axis 0,
  a ``Reshape`` whose leading target dimension is neither the batch size nor copied from it, and any op this module
  does not know on a batched tensor.

A graph without mixing nodes runs each frame of a batch independently once its declared batch axis is freed; a
graph with some needs the probe of :mod:`.isolation` to say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Union

import numpy as np

BATCH = "batch"
Element = Union[int, str, None]

# Ops that act on each position of axis 0 independently when it is batched (element-wise, per-image windows).
_PER_FRAME = {
    "Abs", "Add", "And", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Conv", "ConvTranspose", "Cos",
    "DepthToSpace", "Div", "Dropout", "Elu", "Equal", "Erf", "Exp", "Floor", "GlobalAveragePool", "GlobalMaxPool",
    "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LpNormalization", "LRN", "MatMul", "Max", "MaxPool", "Min", "Mish",
    "Mod", "Mul", "Neg", "Not", "Or", "Pad", "Pow", "PRelu", "Reciprocal", "Relu", "Resize", "Round", "Selu",
    "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "SpaceToDepth", "Sqrt", "Sub", "Sum", "Tanh", "Upsample",
    "Where", "Xor", "Einsum", "QuantizeLinear", "DequantizeLinear", "Gelu", "Celu", "ThresholdedRelu",
}
# Ops with an ``axis`` attribute that are per-frame unless that axis is 0 (default in the second column).
_AXIS_OPS = {"Concat": 0, "Split": 0, "Softmax": -1, "LogSoftmax": -1, "Hardmax": -1, "ArgMax": 0, "ArgMin": 0,
             "TopK": -1, "CumSum": None, "Flatten": 1, "LayerNormalization": -1, "Gather": 0, "Squeeze": None,
             "Unsqueeze": None}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
# Ops whose output holds no image values, only what a shape implies.
_SHAPE_READERS = {"Shape", "Size", "ConstantOfShape", "Range", "EyeLike", "RandomNormalLike", "RandomUniformLike"}


@dataclass
class BatchFlow:
    """Outcome of :func:`trace_batch` (see the module docstring)."""

    batched: Set[str] = field(default_factory=set)
    shapes: Dict[str, List[Element]] = field(default_factory=dict)
    mixing: List[str] = field(default_factory=list)
    batch_one: List[Any] = field(default_factory=list)  # Reshape / Resize nodes that hard-code batch 1

    @property
    def independent(self) -> bool:
        """True when no node may combine frames: freeing the declared batch axis alone keeps frames apart."""
        return not self.mixing


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    onnx = _onnx()
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _onnx() -> Any:
    from .onnx_graph import import_onnx

    return import_onnx()


def _axes(node: Any, constants: Dict[str, np.ndarray], position: int) -> Optional[List[int]]:
    """The ``axes`` of a node: its attribute, or its constant input at ``position`` (opset 13+); None if absent."""
    axes = _attribute(node, "axes")
    if axes is None and len(node.input) > position and node.input[position]:
        value = constants.get(node.input[position])
        axes = None if value is None else [int(v) for v in np.asarray(value).ravel()]
    return None if axes is None else list(axes)


def _known(values: Optional[np.ndarray]) -> Optional[List[Element]]:
    if values is None or values.dtype.kind not in "iu" or values.ndim > 1 or values.size > 8:
        return None
    return [int(v) for v in values.ravel()]


def trace_batch(model: Any, constants: Dict[str, np.ndarray]) -> BatchFlow:
    """Follow the batch axis of ``model``'s (non-initializer) inputs through its nodes."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    flow = BatchFlow()
    flow.batched = {i.name for i in graph.input if i.name not in initializers}
    for name, value in constants.items():
        known = _known(np.asarray(value))
        if known is not None:
            flow.shapes[name] = known
    for node in graph.node:
        _shape_values(node, flow, constants)
        if not any(name in flow.batched for name in node.input):
            continue
        keeps, mixes = _keeps_batch(node, flow, constants)
        if mixes:
            flow.mixing.append(node.name or node.output[0])
        if keeps:
            flow.batched.update(name for name in node.output if name)
    return flow


def _keeps_batch(node: Any, flow: BatchFlow, constants: Dict[str, np.ndarray]) -> tuple:
    """``(output keeps the batch axis first, node may mix frames)`` for a node with a batched input."""
    op = node.op_type
    data_batched = bool(node.input) and node.input[0] in flow.batched
    if op in _SHAPE_READERS:
        return False, False
    if op == "Resize" and len(node.input) > 3 and data_batched:
        sizes = flow.shapes.get(node.input[3])
        if sizes and sizes[0] == 1:
            flow.batch_one.append(node)
            return True, True
    if op in _PER_FRAME:
        return True, False
    if op in _REDUCE:
        axes = _axes(node, constants, 1)
        if axes is None:  # all axes, unless noop_with_empty_axes
            return False, True
        return 0 not in axes, 0 in axes
    if op == "Gemm":  # (N, K) x weights: one row per frame unless the frames are the second operand or transposed
        per_frame = data_batched and not _attribute(node, "transA", 0) and node.input[1] not in flow.batched
        return per_frame, not per_frame
    if op == "Transpose":
        perm = _attribute(node, "perm")
        return bool(perm) and perm[0] == 0, False
    if op == "Reshape":
        return _reshape_keeps_batch(node, flow, constants)
    if op in ("Slice",):
        axes = _axes(node, constants, 3)
        starts = flow.shapes.get(node.input[1]) if len(node.input) > 1 else None
        if axes is None and starts is not None:
            axes = list(range(len(starts)))
        return data_batched, axes is None or 0 in axes
    if op in ("Squeeze", "Unsqueeze"):
        axes = _axes(node, constants, 1)
        return data_batched and axes is not None and 0 not in axes, axes is None
    if op in _AXIS_OPS:
        axis = _attribute(node, "axis", _AXIS_OPS[op])
        if op == "Gather":
            return data_batched and axis != 0, data_batched and axis == 0
        if op == "Flatten":
            return data_batched and axis >= 1, axis == 0
        if axis is None:
            return False, True
        return data_batched and axis != 0, axis == 0
    return False, True


def _reshape_keeps_batch(node: Any, flow: BatchFlow, constants: Dict[str, np.ndarray]) -> tuple:
    if node.input[0] not in flow.batched:
        return False, True
    target = flow.shapes.get(node.input[1])
    if not target:
        return False, True
    first = target[0]
    if first == BATCH or (first == 0 and not _attribute(node, "allowzero", 0)):
        return True, False
    if first == 1 and len(target) >= 2:  # the declared batch of 1, written into the body
        flow.batch_one.append(node)
        return True, True
    return False, True


def _shape_values(node: Any, flow: BatchFlow, constants: Dict[str, np.ndarray]) -> None:
    """Propagate the readable elements of small integer vectors through the ops that build Reshape targets."""
    op = node.op_type
    inputs = [flow.shapes.get(name) for name in node.input]
    result: Optional[List[Element]] = None
    if op == "Shape" and _attribute(node, "start", 0) == 0 and node.input[0] in flow.batched:
        result = [BATCH]  # only the leading element is claimed; the rest stays unknown
    elif op == "Constant":
        value = _attribute(node, "value")
        result = None if value is None else _known(_onnx().numpy_helper.to_array(value))
    elif op in ("Cast", "Identity") and inputs and inputs[0] is not None:
        result = list(inputs[0])
    elif op == "Gather" and len(inputs) == 2 and inputs[0] is not None and inputs[1] is not None:
        index = inputs[1]
        if len(index) == 1 and isinstance(index[0], int) and index[0] < len(inputs[0]):
            result = [inputs[0][index[0]]]
    elif op == "Slice" and inputs and inputs[0] is not None and len(inputs) >= 3:
        starts, ends = inputs[1], inputs[2]
        if starts == [0] and ends is not None and ends[0] == 1:
            result = inputs[0][:1]
    elif op == "Unsqueeze" and inputs and inputs[0] is not None and len(inputs[0]) == 1:
        result = list(inputs[0])
    elif op == "Concat" and inputs:
        result = []
        for part in inputs:
            result.extend(part if part is not None else [None])
        if any(part is None for part in inputs):
            result = result[:1] if inputs[0] is not None and len(inputs[0]) >= 1 else None
            result = None if result is None else result + [None]  # the head is known, the length is not
    if result is not None:
        flow.shapes[node.output[0]] = result
