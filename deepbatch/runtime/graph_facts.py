"""What an ONNX file says about the meaning of its outputs, read before the first image is decoded.

A detector's decoder assumes things about its outputs: that scores already went through a sigmoid or a softmax, that
box distances are already multiplied by their per-stride scale, which class is the face. An export cut before its
post-processing (for an accelerator, or by hand) breaks these assumptions without changing any shape. The graph still
tells: walking back from an output through the ops that only move values (reshape, transpose, concat, ...) reaches
the op that computed it. :class:`GraphFacts` answers these questions for the backends; they decode accordingly or
refuse with :class:`~deepbatch.errors.ModelFormatError`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .surgery import import_onnx

# Ops that move or select values without computing new ones: the head of an output lies behind them.
MOVING_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Concat", "Slice",
                        "Gather", "Split", "Cast", "Expand"})
# Ops whose output is an unbounded linear function of their input: scores coming straight out of one are logits.
LINEAR_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"})
SIGMOID, SOFTMAX, LINEAR, OTHER = "sigmoid", "softmax", "linear", "other"


@dataclass(frozen=True)
class Head:
    """The op that computed an output (``op`` its type, ``None`` for a graph input or initializer) and the constant
    operand of a ``Mul`` head (its per-output scale), if any."""

    op: Optional[str]
    scale: Optional[np.ndarray] = None
    axis: Optional[int] = None  # a Softmax head's axis

    @property
    def activation(self) -> str:
        """``sigmoid`` / ``softmax`` (probabilities), ``linear`` (logits) or ``other`` (cannot tell)."""
        if self.op == "Sigmoid":
            return SIGMOID
        if self.op == "Softmax":
            return SOFTMAX
        if self.op in LINEAR_OPS:
            return LINEAR
        return OTHER


class GraphFacts:
    """The producers, constants and metadata of one ONNX file (weights of external data are not loaded)."""

    def __init__(self, model: Any):
        graph = model.graph
        numpy_helper = import_onnx().numpy_helper
        self.producers = {out: node for node in graph.node for out in node.output}
        self.constants: Dict[str, np.ndarray] = {}
        for init in graph.initializer:
            if init.data_location != 1:  # external data is not loaded: only inline constants are read
                self.constants[init.name] = numpy_helper.to_array(init)
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.metadata = {p.key: p.value for p in model.metadata_props}
        self.output_names = [o.name for o in graph.output]

    @classmethod
    def of(cls, path: Path) -> GraphFacts:
        from .model import load_onnx

        return cls(load_onnx(Path(path)))

    def head(self, tensor: str) -> Head:
        """The op behind ``tensor``, past the ops that only move values (a ``Concat`` is followed through its first
        input: the branches of one output are built alike)."""
        node = self.producers.get(tensor)
        for _ in range(64):  # a bounded walk: graphs have no cycles, but a malformed one must not hang
            if node is None:
                return Head(None)
            if node.op_type not in MOVING_OPS:
                break
            node = self.producers.get(node.input[0])
        else:
            return Head(OTHER)
        if node.op_type == "Mul":
            scales = [self.constants[name] for name in node.input if name in self.constants]
            return Head("Mul", scales[0].astype(np.float32) if scales else None)
        if node.op_type == "Softmax":
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
            return Head("Softmax", axis=int(axis))
        return Head(node.op_type)

    def heads(self, tensor: str) -> List[Head]:
        """The heads of every input of the ``Concat`` behind ``tensor`` (a single head when it has none): an output
        assembled from boxes, scores and keypoints has one per part."""
        node = self.producers.get(tensor)
        for _ in range(64):
            if node is None or node.op_type == "Concat":
                break
            if node.op_type not in MOVING_OPS:
                return [self.head(tensor)]
            node = self.producers.get(node.input[0])
        if node is None:
            return [self.head(tensor)]
        parts: List[Head] = []
        for name in node.input:  # a Concat of Concats (boxes and scores, then keypoints) is one list of parts
            inner = self.producers.get(name)
            parts.extend(self.heads(name) if inner is not None and inner.op_type == "Concat" else [self.head(name)])
        return parts

    def class_names(self) -> Optional[Dict[int, str]]:
        """The ``names`` an ultralytics export records in its metadata (``{0: 'face'}``), or None."""
        text = self.metadata.get("names")
        if not text:
            return None
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        if isinstance(names, (list, tuple)):
            names = dict(enumerate(names))
        if not isinstance(names, dict):
            return None
        return {int(k): str(v) for k, v in names.items()}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings for large negative logits."""
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32, copy=False)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32, copy=False)
