"""SCRFD (InsightFace): anchor-free-style distance regression at strides 8/16/32 (or 8..128), 5 keypoints.

Outputs are grouped by their channel count (1 = score, 4 = box distances, 10 = keypoint offsets) and ordered by
anchor count, so the output order of an export does not matter. Two layouts are read: rows ``(B, N, 1|4|10)`` (the
InsightFace exports), and raw NCHW heads per stride ``(B, A, H/s, W/s)`` scores (sigmoid applied), ``(B, 4A, ...)``
box distances and ``(B, 10A, ...)`` keypoint offsets. Distances are in stride units. Exports without
keypoint outputs give ``landmarks=None``.

What the decoder assumes is read from the graph when the file is loaded (:func:`output_semantics`): scores that end in
``Sigmoid`` are probabilities, scores that come straight out of a ``Conv`` are logits and get the sigmoid here. Box
distances that end in a ``Mul`` by a constant carry their per-stride scale; a graph cut before its post-processing
(logit scores and no such ``Mul``) lost those scales, and is refused unless ``box_scales`` gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ArgumentError, ModelFormatError
from ..ops.boxes import anchor_centers, distance_to_boxes, distance_to_points
from ..ops.letterbox import InputSpec
from ..runtime.graph_facts import LINEAR, SIGMOID, GraphFacts, sigmoid
from ..structures import OBSERVER_TO_PERSON
from ..weights import BUFFALO_SC_SHA256, BUFFALO_SC_URL, INSIGHTFACE_LICENCE, WeightFile
from .base import DETECTORS, OnnxDetector

_INSIGHTFACE_RELEASES = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_HOMEPAGE = "https://github.com/deepinsight/insightface/tree/master/detection/scrfd"

SCRFD_WEIGHTS: Dict[str, WeightFile] = {
    "scrfd_500m": WeightFile("scrfd_500m_kps.onnx", ("det_500m.onnx",), BUFFALO_SC_URL,
                             sha256="5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
                             archive_member="det_500m.onnx", homepage=_HOMEPAGE, archive_sha256=BUFFALO_SC_SHA256,
                             also_sha256=("517cb1980c72422e676738fc45431700fb7cbee56d0f825b623ee427b3e5ce58",)),
    "scrfd_2.5g": WeightFile("scrfd_2.5g_kps.onnx", ("scrfd_2.5g_bnkps.onnx", "det_2.5g.onnx"),
                             f"{_INSIGHTFACE_RELEASES}/buffalo_m.zip",
                             sha256="041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9",
                             archive_member="det_2.5g.onnx", homepage=_HOMEPAGE,
                             archive_sha256="d98264bd8f2dc75cbc2ddce2a14e636e02bb857b3051c234b737bf3b614edca9",
                             also_sha256=("32d20c77b9e2dc1d07e94c2ab9d25bdd5cd05eddbe0b46e7b38e7a1eca22e99a",)),
    "scrfd_10g": WeightFile("scrfd_10g_kps.onnx", ("scrfd_10g_bnkps.onnx", "det_10g.onnx"),
                            f"{_INSIGHTFACE_RELEASES}/buffalo_l.zip",
                            sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
                            archive_member="det_10g.onnx", homepage=_HOMEPAGE,
                            archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f"),
    "scrfd_34g": WeightFile("scrfd_34g.onnx", ("scrfd_34g_kps.onnx",), homepage=_HOMEPAGE),
}
_STRIDES = {3: (8, 16, 32), 5: (8, 16, 32, 64, 128)}
_CHANNELS = {"score": 1, "box": 4, "kps": 10}


class SCRFD(OnnxDetector):
    """SCRFD face detector, one model call per chunk (InsightFace pre-processing: RGB, (x - 127.5) / 128).

    ``box_scales``: one factor per stride (finest first) for the box distances of an export cut before its
    per-stride scale ``Mul`` nodes (the values of those nodes in the uncut graph; 1.0 each for a model without a
    scale layer, such as SCRFD-500M). Refused for a graph that still applies its scales.
    """

    name = "scrfd"
    has_landmarks = True
    landmark_summary = "5 points (exports without keypoint outputs: none)"
    weights = SCRFD_WEIGHTS["scrfd_500m"]
    default_input = InputSpec(size=(640, 640), mean=127.5, std=128.0, rgb=True)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, box_scales: Optional[Sequence[float]] = None, **kwargs: Any):
        super().__init__(**kwargs)
        shapes = [o.shape for o in self.model.session.get_outputs()]
        if len(shapes) not in (6, 9, 10, 15):
            raise ModelFormatError(f"{Path(self.model.path).name}: {len(shapes)} outputs; an SCRFD export has a "
                                   "score and a box output per stride (3 or 5 strides), and keypoints optionally")
        if shapes and all(len(s) == 4 for s in shapes):  # NCHW heads: 3 or 5 strides of 2 heads, or 3 with keypoints
            self.has_landmarks = len(shapes) in (9, 15)
        else:
            self.has_landmarks = any(s and s[-1] == _CHANNELS["kps"] for s in shapes)
        self.score_logits, self.box_scales = output_semantics(GraphFacts.of(self.model.path), self.model.path,
                                                              box_scales)

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        scores = np.concatenate([_rows(s, "score")[..., 0] for s in _group_outputs(outputs)["score"]], axis=1)
        return sigmoid(scores) if self.score_logits else scores

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        groups = _group_outputs(outputs)
        centers, strides = self._anchors(tuple(_row_count(s, "score") for s in groups["score"]))
        points = centers[anchor]
        rows = {key: np.concatenate([_rows(o, key) for o in groups[key]], axis=1) for key in ("box", "kps")
                if groups[key]}
        box_units = strides[anchor] if self.box_scales is None else strides[anchor] * self._scale_of_rows(
            groups["score"])[anchor]
        boxes = distance_to_boxes(points, rows["box"][image_index, anchor] * box_units)
        if "kps" not in rows:
            return boxes, None
        return boxes, distance_to_points(points, rows["kps"][image_index, anchor] * strides[anchor])

    def _scale_of_rows(self, scores: List[np.ndarray]) -> np.ndarray:
        """(N, 1) the given box scale of every row (``box_scales`` per stride, finest first)."""
        assert self.box_scales is not None
        if len(self.box_scales) != len(scores):
            raise ModelFormatError(f"box_scales has {len(self.box_scales)} values; this export has "
                                   f"{len(scores)} strides")
        return np.concatenate([np.full(_row_count(s, "score"), scale, np.float32)
                               for s, scale in zip(scores, self.box_scales)])[:, None]

    def _anchors(self, counts: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
        """(N, 2) anchor centres and (N, 1) strides of every row, for score outputs of ``counts`` rows per stride."""
        strides = _STRIDES.get(len(counts))
        if strides is None:
            raise ModelFormatError(f"SCRFD export has {len(counts)} score outputs; expected 3 or 5")
        width, height = self.input_spec.size
        centers, stride_of = [], []
        for stride, count in zip(strides, counts):
            rows, cols = -(-height // stride), -(-width // stride)
            if count % (rows * cols):
                raise ModelFormatError(f"SCRFD score output of {count} rows does not fit stride {stride} on the "
                                       f"{width}x{height} canvas ({rows}x{cols} cells); strides {strides} assumed")
            centers.append(anchor_centers(rows, cols, stride, count // (rows * cols)))
            stride_of.append(np.full(count, stride, np.float32))
        return np.concatenate(centers), np.concatenate(stride_of)[:, None]


def output_semantics(facts: GraphFacts, path: Path,
                     box_scales: Optional[Sequence[float]]) -> Tuple[bool, Optional[Tuple[float, ...]]]:
    """Whether the scores of the SCRFD graph ``facts`` are logits, and the box scales to apply (None: the graph
    applies its own, or has none).

    * scores: every output whose head is ``Sigmoid`` is a probability; when none is, and the score heads are linear
      (a ``Conv``: the graph was cut before its sigmoid), the scores are logits.
    * box scales: a box head ``Mul`` by a constant is the per-stride scale, applied in the graph. A graph cut before
      its sigmoid and without such ``Mul`` nodes may have been cut before them too: the scales are not in the file,
      and ``box_scales`` must give them.
    """
    heads = [facts.head(name) for name in facts.output_names]
    activations = {h.activation for h in heads}
    scaled = [h for h in heads if h.op == "Mul" and h.scale is not None and h.scale.size == 1]
    name = Path(path).name
    if SIGMOID in activations:
        logits = False
    elif activations <= {LINEAR} | ({"other"} if scaled else set()):
        logits = True
    else:
        raise ModelFormatError(
            f"{name}: no output ends in Sigmoid and the score heads end in {sorted({str(h.op) for h in heads})}: "
            "cannot tell whether its scores are probabilities or logits; export it with the Sigmoid of its score "
            "heads")
    if box_scales is not None:
        if scaled:
            applied = ", ".join(f"{float(h.scale):.4g}" for h in scaled if h.scale is not None)
            raise ModelFormatError(f"{name} multiplies its box distances by per-stride scales itself ({applied}); "
                                   "box_scales would apply them twice: leave it out")
        values = tuple(float(v) for v in box_scales)
        if not values or not all(np.isfinite(v) and v > 0 for v in values):
            raise ArgumentError(f"box_scales must be positive numbers, one per stride, got {box_scales!r}")
        return logits, values
    if logits and not scaled:
        raise ModelFormatError(
            f"{name} was cut before its post-processing: its scores are logits (no Sigmoid) and no box output "
            "ends in a per-stride scale (Mul), so the box scale of each stride is not in the file. Pass "
            "box_scales=(s8, s16, s32) (the Mul constants of the uncut graph, e.g. bbox_head.scales.*; 1.0 each "
            "for a model without a scale layer, such as SCRFD-500M), or use the uncut export")
    return logits, None


def _group_outputs(outputs: List[np.ndarray]) -> Dict[str, List[np.ndarray]]:
    """Outputs grouped into score / box / kps lists, each ordered from the finest stride: ``(B, N, C)`` rows as they
    are, raw NCHW heads ``(B, A*C, H/s, W/s)`` still as maps (:func:`_rows` turns either into rows). The heads of one
    stride share a map size; the smallest channel count among them is the score head's, ``A``."""
    groups: Dict[str, List[np.ndarray]] = {key: [] for key in _CHANNELS}
    by_channels = {c: key for key, c in _CHANNELS.items()}
    if outputs and all(out.ndim == 4 for out in outputs):
        anchors: Dict[Tuple[int, int], int] = {}
        for out in outputs:
            anchors[out.shape[2:]] = min(anchors.get(out.shape[2:], out.shape[1]), out.shape[1])
        for out in outputs:
            count = anchors[out.shape[2:]]
            if out.shape[1] % count or out.shape[1] // count not in by_channels:
                raise ModelFormatError(f"unexpected SCRFD head shape {out.shape}: with {count} anchors per cell the "
                                       "heads of a stride have A, 4A and 10A channels")
            groups[by_channels[out.shape[1] // count]].append(out)
    else:
        for out in outputs:
            if out.ndim != 3 or out.shape[2] not in by_channels:
                raise ModelFormatError(f"unexpected SCRFD output shape {out.shape}; expected (batch, anchors, 1|4|10)")
            groups[by_channels[out.shape[2]]].append(out)
    for key in groups:
        groups[key].sort(key=lambda o: -_row_count(o, key))
    if not groups["score"] or len(groups["box"]) != len(groups["score"]):
        raise ModelFormatError("SCRFD export needs one score and one box output per stride")
    return groups


def _row_count(out: np.ndarray, key: str) -> int:
    """Anchors in one output of group ``key``."""
    return out.shape[1] if out.ndim == 3 else out.shape[1] // _CHANNELS[key] * out.shape[2] * out.shape[3]


def _rows(out: np.ndarray, key: str) -> np.ndarray:
    """One output of group ``key`` as ``(B, N, C)`` rows; a raw NCHW head in the anchor order of InsightFace's own
    reshape (cell by cell, then anchor)."""
    return out if out.ndim == 3 else out.transpose(0, 2, 3, 1).reshape(out.shape[0], -1, _CHANNELS[key])


for _variant, _weights in SCRFD_WEIGHTS.items():
    DETECTORS.register(_variant, summary=f"SCRFD {_variant.split('_')[1].upper()}", weights=_weights,
                       licence=INSIGHTFACE_LICENCE)(SCRFD)
DETECTORS.alias("scrfd", "scrfd_500m")
