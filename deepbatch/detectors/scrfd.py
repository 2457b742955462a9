"""SCRFD (InsightFace): anchor-free-style distance regression at strides 8/16/32 (or 8..128), 5 keypoints.

Outputs are grouped by their channel count (1 = score, 4 = box distances, 10 = keypoint offsets) and ordered by
anchor count, so the output order of an export does not matter. Two layouts are read: rows ``(B, N, 1|4|10)`` (the
InsightFace exports), and raw NCHW heads per stride ``(B, A, H/s, W/s)`` scores (sigmoid applied), ``(B, 4A, ...)``
box distances and ``(B, 10A, ...)`` keypoint offsets. Distances are in stride units. Exports without
keypoint outputs give ``landmarks=None``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelFormatError
from ..ops.boxes import anchor_centers, distance_to_boxes, distance_to_points
from ..ops.letterbox import InputSpec
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
    """SCRFD face detector with native batching (InsightFace pre-processing: RGB, (x - 127.5) / 128)."""

    name = "scrfd"
    has_landmarks = True
    landmark_summary = "5 points (exports without keypoint outputs: none)"
    weights = SCRFD_WEIGHTS["scrfd_500m"]
    default_input = InputSpec(size=(640, 640), mean=127.5, std=128.0, rgb=True)
    landmark_order = OBSERVER_TO_PERSON

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        shapes = [o.shape for o in self.model.session.get_outputs()]
        if shapes and all(len(s) == 4 for s in shapes):  # NCHW heads: 3 or 5 strides of 2 heads, or 3 with keypoints
            self.has_landmarks = len(shapes) in (9, 15)
        else:
            self.has_landmarks = any(s and s[-1] == _CHANNELS["kps"] for s in shapes)

    def scores(self, outputs: List[np.ndarray]) -> np.ndarray:
        return np.concatenate([_rows(s, "score")[..., 0] for s in _group_outputs(outputs)["score"]], axis=1)

    def decode(self, outputs: List[np.ndarray], image_index: np.ndarray,
               anchor: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        groups = _group_outputs(outputs)
        centers, strides = self._anchors(tuple(_row_count(s, "score") for s in groups["score"]))
        points = centers[anchor]
        rows = {key: np.concatenate([_rows(o, key) for o in groups[key]], axis=1) for key in ("box", "kps")
                if groups[key]}
        boxes = distance_to_boxes(points, rows["box"][image_index, anchor] * strides[anchor])
        if "kps" not in rows:
            return boxes, None
        return boxes, distance_to_points(points, rows["kps"][image_index, anchor] * strides[anchor])

    def _anchors(self, counts: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
        """(N, 2) anchor centres and (N, 1) strides of every row, for score outputs of ``counts`` rows per stride."""
        strides = _STRIDES.get(len(counts))
        if strides is None:
            raise ModelFormatError(f"SCRFD export has {len(counts)} score outputs; expected 3 or 5")
        width, height = self.input_spec.size
        centers, stride_of = [], []
        for stride, count in zip(strides, counts):
            rows, cols = -(-height // stride), -(-width // stride)
            centers.append(anchor_centers(rows, cols, stride, count // (rows * cols)))
            stride_of.append(np.full(count, stride, np.float32))
        return np.concatenate(centers), np.concatenate(stride_of)[:, None]


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
