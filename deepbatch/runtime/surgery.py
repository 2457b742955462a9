"""Graph surgery that gives an ONNX model a true batch axis.

Two kinds of export refuse or corrupt a batch as shipped:

* a *fixed* batch: the input (and outputs) are declared with batch 1, sometimes with Reshape constants that
  hard-code a 1 in the batch position;
* a *flattened* batch: the head reshapes ``[B, H, W, A*C]`` to ``[-1, C]``, so a batch comes out as ``[B*N, C]``
  and a decoder that reads one image's rows gets another image's anchors.

:func:`make_batch_dynamic` declares the batch axis dynamic and rewrites those Reshape constants to copy the batch
size from their input (``0`` with ``allowzero=0``). It does not prove the result safe: :mod:`.isolation` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import numpy as np

from ..errors import ModelFormatError
from .batchflow import trace_batch
from .onnx_graph import declared_dims, graph_constants
from .onnx_graph import import_onnx as import_onnx

# Ops through which a tensor keeps its shape on its way from a head Reshape to a graph output.
_SHAPE_PRESERVING = {"Sigmoid", "Softmax", "Identity", "Relu", "Exp", "Cast", "Mul", "Add", "Sub", "Div", "Clip"}


@dataclass
class BatchRepair:
    """What :func:`make_batch_dynamic` changed."""

    inputs: List[str] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)
    reshapes: List[str] = field(default_factory=list)
    spatial: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.inputs or self.outputs or self.reshapes or self.resizes or self.spatial)

    resizes: List[str] = field(default_factory=list)

    @property
    def rewrote_nodes(self) -> bool:
        """True when the graph body was rewritten, which only a comparison with the original can prove safe."""
        return bool(self.reshapes or self.resizes)

    def describe(self) -> str:
        parts = []
        if self.inputs:
            parts.append(f"batch axis made dynamic on input(s) {', '.join(self.inputs)}")
        if self.outputs:
            parts.append(f"on output(s) {', '.join(self.outputs)}")
        if self.reshapes:
            parts.append(f"Reshape node(s) {', '.join(self.reshapes)} rewritten to keep the batch axis")
        if self.resizes:
            parts.append(f"Resize node(s) {', '.join(self.resizes)} take the batch size from their input")
        if self.spatial:
            parts.append(f"height and width made dynamic on {', '.join(self.spatial)}")
        return "; ".join(parts) or "nothing to change"


def _per_image_sizes(model) -> Dict[str, int]:  # type: ignore[no-untyped-def]
    """Elements per image (product of the dimensions after the batch axis) of every tensor whose shape ONNX shape
    inference can tell; tensors with an unknown dimension are left out."""
    onnx = import_onnx()
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is advisory: a model it cannot follow is handled without it
        return {}
    graph = inferred.graph
    sizes: Dict[str, int] = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = declared_dims(value)
        if len(dims) >= 2 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
            sizes[value.name] = int(np.prod(dims[1:]))
    return sizes


def _reaches_output(graph, tensor: str) -> Optional[str]:  # type: ignore[no-untyped-def]
    """The graph output that ``tensor`` flows into through shape-preserving ops only, or ``None``."""
    outputs = {o.name for o in graph.output}
    consumers: Dict[str, List] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen: Set[str] = set()
    frontier = [tensor]
    while frontier:
        current = frontier.pop()
        if current in outputs:
            return current
        if current in seen:
            continue
        seen.add(current)
        for node in consumers.get(current, []):
            if node.op_type in _SHAPE_PRESERVING:
                frontier.extend(node.output)
    return None


def batch_layout(model) -> str:  # type: ignore[no-untyped-def]
    """``"dynamic"``, ``"fixed"`` (batch declared as 1) or ``"flattened"`` (some output has no batch axis) as
    declared by the graph; what a model really does at run time only :mod:`.isolation` can tell."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    batch = {declared_dims(i)[0] if declared_dims(i) else None for i in inputs}
    for output in graph.output:
        dims = declared_dims(output)
        image_input = len(declared_dims(inputs[0])) == 4
        if len(dims) == 2 and image_input and dims[1] is not None and dims[0] != 1 and dims[0] not in batch:
            return "flattened"
    return "fixed" if 1 in batch else "dynamic"


def make_batch_dynamic(model, spatial: bool = False, body: bool = True):  # type: ignore[no-untyped-def]
    """Return ``(model, BatchRepair)``: a copy of ``model`` whose inputs and outputs have a dynamic batch axis.

    With ``spatial`` the height and width of 4-D inputs become dynamic too (for a canvas size other than the export's).
    With ``body`` the nodes that data flow shows hard-coding the batch are rewritten (:func:`_rewrite_body`); without
    it only declared dimensions change. Raises :class:`ModelFormatError` when a Reshape that fixes the batch cannot
    be rewritten (``allowzero=1``).
    """
    onnx = import_onnx()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    repair = BatchRepair()
    initializers = {i.name for i in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
            repair.inputs.append(value.name)
        if spatial and len(dims) == 4 and any(d.HasField("dim_value") for d in dims[2:]):
            dims[2].dim_param, dims[3].dim_param = "height", "width"
            repair.spatial.append(value.name)

    rewritten_outputs: Set[str] = set()
    if body:
        rewritten_outputs = _rewrite_body(model, repair)
    for value in graph.output:
        shape = value.type.tensor_type.shape
        if value.name in rewritten_outputs:
            channels = shape.dim[-1].dim_value if shape.dim else 0
            value.type.tensor_type.ClearField("shape")
            for dim in ("batch", f"{value.name}_rows", channels):
                new = value.type.tensor_type.shape.dim.add()
                if isinstance(dim, str):
                    new.dim_param = dim
                elif dim:
                    new.dim_value = dim
            repair.outputs.append(value.name)
            continue
        if shape.dim and shape.dim[0].HasField("dim_value") and shape.dim[0].dim_value == 1:
            shape.dim[0].dim_param = "batch"
            repair.outputs.append(value.name)
        if spatial:
            first = 2 if len(shape.dim) == 4 else 1  # NCHW maps: height and width; (B, N, C) rows: N
            for index, dim in enumerate(shape.dim[first : len(shape.dim) if first == 2 else -1], start=first):
                if dim.HasField("dim_value"):
                    dim.dim_param = f"{value.name}_d{index}"
    if repair.rewrote_nodes:
        used = {name for node in graph.node for name in node.input}
        unused = [init for init in graph.initializer if init.name not in used]
        for init in unused:
            graph.initializer.remove(init)
    if repair.changed:
        del graph.value_info[:]  # stale intermediate shapes would pin the old batch size
    return model, repair


def _rewrite_body(model, repair: BatchRepair) -> Set[str]:  # type: ignore[no-untyped-def]
    """Rewrite, in place, the nodes that data flow (:func:`~.batchflow.trace_batch`) shows hard-coding batch 1.

    * a Reshape of a batched tensor to a constant ``[1, ...]`` gets ``[0, ...]`` (copy the batch size);
    * a Resize of a batched tensor to constant ``sizes`` ``[1, C, H, W]`` gets ``sizes`` built at run time from the
      input's batch size and ``C, H, W``;
    * a head Reshape of a batched tensor to ``[-1, C]`` that flows into a graph output becomes ``[0, -1, C]``.

    A Reshape of a tensor without a batch axis (an anchor grid built from ``Range``) is left alone whatever its
    constant. Returns the graph outputs whose rank changed.
    """
    onnx = import_onnx()
    graph = model.graph
    constants = graph_constants(graph)
    flow = trace_batch(model, constants)
    per_image = _per_image_sizes(model)
    rewritten_outputs: Set[str] = set()
    batch_one = {node.output[0] for node in flow.batch_one}
    for node in list(graph.node):
        if node.op_type == "Resize" and node.output[0] in batch_one:
            _batch_from_input(graph, node, constants[node.input[3]], len(repair.resizes))
            repair.resizes.append(node.name or node.output[0])
            continue
        if node.op_type != "Reshape" or node.input[1] not in constants or node.input[0] not in flow.batched:
            continue
        shape = constants[node.input[1]].astype(np.int64).ravel()
        new_shape = None
        if node.output[0] in batch_one:
            new_shape = np.concatenate([[0], shape[1:]])
        elif len(shape) == 2 and shape[0] == -1 and per_image.get(node.input[0]) != shape[1]:
            # [-1, C] flattens the batch only when an image holds more than C elements; [B, C, 1, 1] -> [B, C]
            # (an embedding head) already keeps one row per image and is left alone.
            reached = _reaches_output(graph, node.output[0])
            if reached is not None:
                new_shape = np.array([0, -1, shape[1]])
                rewritten_outputs.add(reached)
        if new_shape is None:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            raise ModelFormatError(f"Reshape {node.name!r} uses allowzero=1; its batch dimension cannot be rewritten")
        name = f"{node.input[1]}__batched_{len(repair.reshapes)}"
        graph.initializer.append(onnx.numpy_helper.from_array(new_shape.astype(np.int64), name))
        node.input[1] = name
        repair.reshapes.append(node.name or node.output[0])
    return rewritten_outputs


def _batch_from_input(graph, node, sizes: np.ndarray, index: int) -> None:  # type: ignore[no-untyped-def]
    """Give a Resize node ``sizes = concat(shape(input)[:1], sizes[1:])``, computed before it runs."""
    onnx = import_onnx()
    prefix = f"{node.name or node.output[0]}__batched_sizes_{index}"
    graph.initializer.extend([
        onnx.numpy_helper.from_array(np.array([0], np.int64), f"{prefix}_start"),
        onnx.numpy_helper.from_array(np.array([1], np.int64), f"{prefix}_end"),
        onnx.numpy_helper.from_array(np.asarray(sizes, np.int64).ravel()[1:], f"{prefix}_rest"),
    ])
    new_nodes = [
        onnx.helper.make_node("Shape", [node.input[0]], [f"{prefix}_shape"], name=f"{prefix}_Shape"),
        onnx.helper.make_node("Slice", [f"{prefix}_shape", f"{prefix}_start", f"{prefix}_end"], [f"{prefix}_batch"],
                              name=f"{prefix}_Slice"),
        onnx.helper.make_node("Concat", [f"{prefix}_batch", f"{prefix}_rest"], [prefix], name=f"{prefix}_Concat",
                              axis=0),
    ]
    position = list(graph.node).index(node)
    for offset, new in enumerate(new_nodes):
        graph.node.insert(position + offset, new)
    node.input[3] = prefix
