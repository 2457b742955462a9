"""Test models derived from the real shared weights or generated from scratch.

* ``flatten_batch``: rewrites an SCRFD export into the layout of InsightFace's stock ``det_*.onnx`` files, whose head
  reshapes to ``[-1, C]`` so a batch comes out flattened as ``[B*N, C]`` (the cross-frame contamination case).
* ``drop_outputs``: removes the keypoint outputs, giving an SCRFD export without landmarks.
* ``centerface_from_yunet`` / ``lffd_from_yunet``: embed the real YuNet graph and re-encode its faces exactly into
  CenterFace's and LFFD's input signature and output layout, so those decoders run on real faces with known answers.
* ``yolo_face_from_scrfd``: embeds the real SCRFD graph and re-encodes its faces into the YOLO-face export layout
  (ultralytics' decoded pose output, with the metadata ultralytics reads), for the ONNX and ultralytics YOLO backends.
* ``arcface_r50_signature``: a small random graph with the input and output signature of ArcFace ``w600k_r50.onnx``.

Each registered backend without weights here maps to the arguments that build it on such a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deepbatch.detectors.yolo import YOLO_VARIANTS


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


def _conv(name: str, source: str, target: str, channels_in: int, channels_out: int, stride: int, seed: int) -> tuple:
    """A Conv node and its random weights (a stand-in for a backbone layer)."""
    weights = np.random.default_rng(seed).normal(0, 0.5, (channels_out, channels_in, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", [source, f"{name}_w"], [target], name=name, pads=[1, 1, 1, 1],
                            strides=[stride, stride])
    return node, numpy_helper.from_array(weights, f"{name}_w")


def _save(nodes: list, initializers: list, inputs: list, outputs: list, target: Path, opset: int = 14) -> Path:
    graph = helper.make_graph(nodes, target.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # readable by every onnxruntime the project supports
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def flattening_head(target: Path, size: int = 32) -> Path:
    """A small SCRFD-like head declared with batch 1: Conv (stride 4) -> NHWC -> Reshape ``[-1, 4]`` -> Sigmoid, so
    a batch comes out flattened as ``[B * (size/4)^2 * 2, 4]`` rows, like InsightFace's stock ``det_*.onnx``."""
    conv, weights = _conv("head", "images", "features", 3, 8, 4, seed=1)
    nodes = [
        conv,
        helper.make_node("Transpose", ["features"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "rows_shape"], ["rows"], name="flatten_rows"),
        helper.make_node("Sigmoid", ["rows"], ["scores"]),
    ]
    rows = (size // 4) ** 2 * 2
    return _save(nodes, [weights, numpy_helper.from_array(np.array([-1, 4], np.int64), "rows_shape")],
                 [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, size, size])],
                 [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [rows, 4])], target)


def batch_mixing(target: Path, batch: object = "batch", size: int = 16) -> Path:
    """A graph that contaminates frames: it subtracts the mean over the *batch* axis before a Conv (batch
    normalisation done at inference time), so a frame's output depends on the other frames of its batch.
    ``batch`` is the declared batch dimension (``"batch"`` dynamic, or ``1``)."""
    conv, weights = _conv("body", "centred", "features", 3, 4, 1, seed=2)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["batch_mean"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["images", "batch_mean"], ["centred"]),
        conv,
    ]
    return _save(nodes, [weights],
                 [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [batch, 3, size, size])],
                 [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [batch, 4, size, size])], target,
                 opset=13)


def strict_reshape(target: Path, size: int = 16) -> Path:
    """A graph declared with batch 1 whose Reshape to ``[1, -1]`` sets ``allowzero=1``, so its literal batch 1
    cannot be rewritten into "copy the batch size from the input"."""
    conv, weights = _conv("body", "images", "features", 3, 4, 2, seed=3)
    nodes = [conv, helper.make_node("Reshape", ["features", "flat_shape"], ["flat"], name="strict_flatten",
                                    allowzero=1)]
    return _save(nodes, [weights, numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape")],
                 [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, size, size])],
                 [helper.make_tensor_value_info("flat", onnx.TensorProto.FLOAT, [1, 4 * (size // 2) ** 2])], target)


class _YuNetHeads:
    """Builds nodes that read YuNet's per-stride outputs (B, cells, C) inside a graph that embeds YuNet."""

    def __init__(self, image: str):
        self.image = image
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def const(self, value, dtype=np.float32) -> str:  # type: ignore[no-untyped-def]
        self._count += 1
        name = f"adapter_const_{self._count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: list, **attributes) -> str:  # type: ignore[no-untyped-def]
        self._count += 1
        name = f"adapter_{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def channels(self, tensor: str, start: int, end: int) -> str:
        """``tensor[..., start:end]`` of a (B, cells, C) tensor."""
        return self.op("Slice", [tensor, self.const([start], np.int64), self.const([end], np.int64),
                                 self.const([2], np.int64)])

    def score(self, stride: int) -> str:
        """(B, cells, 1) ``sqrt(clip(cls) * clip(obj))``, YuNet's face score."""
        zero, one = self.const(0.0), self.const(1.0)
        cls = self.op("Clip", [f"cls_{stride}", zero, one])
        obj = self.op("Clip", [f"obj_{stride}", zero, one])
        return self.op("Sqrt", [self.op("Mul", [cls, obj])])

    def grid_of(self, tensor: str, channels: int, stride: int, upsample: int = 1, phase: int = 0) -> str:
        """(B, cells, C) -> (B, C, H/stride, W/stride) maps, optionally spread onto a grid ``upsample`` times finer
        with each value at sub-cell ``(phase, phase)`` and zeros elsewhere."""
        shape = self.op("Shape", [self.image])
        size = self.op("Div", [self.op("Slice", [shape, self.const([2], np.int64), self.const([4], np.int64),
                                                 self.const([0], np.int64)]), self.const([stride, stride], np.int64)])
        transposed = self.op("Transpose", [tensor], perm=[0, 2, 1])
        maps = self.op("Reshape", [transposed, self.op("Concat", [self.const([0, channels], np.int64), size],
                                                        axis=0)])
        return self.spread(maps, channels, upsample, phase)

    def spread(self, maps: str, channels: int, upsample: int, phase: int) -> str:
        if upsample == 1:
            return maps
        kernel = np.zeros((channels, 1, upsample, upsample), np.float32)
        kernel[:, :, phase, phase] = 1.0
        return self.op("ConvTranspose", [maps, self.const(kernel)], group=channels, strides=[upsample, upsample],
                       kernel_shape=[upsample, upsample])

    def zeros(self, channels: int, stride: int) -> str:
        """(B, channels, H/stride, W/stride) zeros."""
        shape = self.op("Shape", [self.image])
        batch = self.op("Slice", [shape, self.const([0], np.int64), self.const([1], np.int64),
                                  self.const([0], np.int64)])
        size = self.op("Div", [self.op("Slice", [shape, self.const([2], np.int64), self.const([4], np.int64),
                                                 self.const([0], np.int64)]), self.const([stride, stride], np.int64)])
        full = self.op("Concat", [batch, self.const([channels], np.int64), size], axis=0)
        return self.op("ConstantOfShape", [full], value=numpy_helper.from_array(np.zeros(1, np.float32)))


def _embed_yunet(yunet: Path, image: str, rgb: bool):  # type: ignore[no-untyped-def]
    """YuNet's graph with its input fed from a new input ``image`` (RGB channels swapped back to BGR if ``rgb``)."""
    model = onnx.load(str(yunet))
    graph = model.graph
    original = graph.input[0].name
    del graph.input[:]
    del graph.output[:]
    heads = _YuNetHeads(image)
    if rgb:
        swap = np.zeros((3, 3, 1, 1), np.float32)
        swap[[0, 1, 2], [2, 1, 0]] = 1.0
        graph.node.insert(0, helper.make_node("Conv", [image, heads.const(swap)], [original], name="rgb_to_bgr"))
    else:
        graph.node.insert(0, helper.make_node("Identity", [image], [original], name="feed_yunet"))
    return model, heads


def _finish(model, heads: _YuNetHeads, image: str, input_size: tuple, outputs: list, target: Path) -> Path:  # type: ignore[no-untyped-def]
    """Declare the input (batch 1, fixed size, as the real exports do) and ``outputs`` [(tensor, name, shape)]."""
    graph = model.graph
    graph.node.extend(heads.nodes)
    graph.initializer.extend(heads.initializers)
    graph.input.append(helper.make_tensor_value_info(image, onnx.TensorProto.FLOAT, [1, 3, *input_size]))
    for tensor, name, shape in outputs:
        graph.node.append(helper.make_node("Identity", [tensor], [name], name=f"output_{name}"))
        graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape))
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def centerface_from_yunet(yunet: Path, target: Path) -> Path:
    """A graph with CenterFace's signature and output layout whose faces are YuNet's.

    Input ``input.1`` [1, 3, 32, 32] RGB 0-255 (as the public ``centerface.onnx`` declares it); outputs ``537``
    heatmap, ``538`` scale, ``539`` offset, ``540`` landmarks at stride 4, each declared [1, C, 8, 8]. YuNet's cells
    of stride s are written onto the stride-4 grid at sub-cell phase 0, 1 and 3 for s = 8, 16, 32 (no two strides
    share a cell), with YuNet's box and landmarks re-encoded exactly into CenterFace's encoding, so the CenterFace
    decoder must give YuNet's detections.
    """
    image = "input.1"
    model, heads = _embed_yunet(yunet, image, rgb=True)
    placed: Dict[str, list] = {"heat": [], "scale": [], "offset": [], "landmarks": []}
    for stride, phase in ((8, 0), (16, 1), (32, 3)):
        factor = stride // 4
        bbox = f"bbox_{stride}"
        centre_shift = heads.const(phase + 0.5)
        offset = heads.op("Sub", [heads.op("Mul", [heads.channels(bbox, 0, 2), heads.const(float(factor))]),
                                  centre_shift])
        scale = heads.op("Add", [heads.channels(bbox, 2, 4), heads.const(float(np.log(factor)))])
        reverse = heads.const([1, 0], np.int64)
        # landmark relative to the box's top-left corner in box units: (k - d) * exp(-log_size) + 0.5
        points = heads.op("Reshape", [f"kps_{stride}", heads.const([0, -1, 5, 2], np.int64)])
        delta = heads.op("Reshape", [heads.channels(bbox, 0, 2), heads.const([0, -1, 1, 2], np.int64)])
        inverse = heads.op("Exp", [heads.op("Neg", [heads.op("Reshape", [heads.channels(bbox, 2, 4),
                                                                         heads.const([0, -1, 1, 2], np.int64)])])])
        relative = heads.op("Add", [heads.op("Mul", [heads.op("Sub", [points, delta]), inverse]), heads.const(0.5)])
        relative_yx = heads.op("Reshape", [heads.op("Gather", [relative, reverse], axis=3),
                                           heads.const([0, -1, 10], np.int64)])
        placed["heat"].append(heads.grid_of(heads.score(stride), 1, stride, factor, phase))
        placed["scale"].append(heads.grid_of(heads.op("Gather", [scale, reverse], axis=2), 2, stride, factor, phase))
        placed["offset"].append(heads.grid_of(heads.op("Gather", [offset, reverse], axis=2), 2, stride, factor,
                                              phase))
        placed["landmarks"].append(heads.grid_of(relative_yx, 10, stride, factor, phase))
    outputs = []
    for (key, channels), name in zip((("heat", 1), ("scale", 2), ("offset", 2), ("landmarks", 10)),
                                     ("537", "538", "539", "540")):
        total = heads.op("Sum", placed[key])
        outputs.append((total, name, [1, channels, 8, 8]))
    return _finish(model, heads, image, (32, 32), outputs, target)


YUNET_FILE = "face_detection_yunet_2026may.onnx"
# YuNet stride -> the LFFD branch of the same stride that carries its faces (the others stay silent).
LFFD_BRANCH_OF_STRIDE = {"lffd_v1": {8: 2, 16: 4, 32: 5}, "lffd_v2": {8: 1, 16: 2, 32: 3}}


def lffd_from_yunet(yunet: Path, target: Path, variant: str) -> Path:
    """A graph with an LFFD export's signature and output layout whose faces are YuNet's.

    Input ``data`` [1, 3, 480, 640] raw BGR (as the reference to_onnx.py exports it); per branch a score map
    (B, 1, H/stride, W/stride) and a box map (B, 4, ...). YuNet's strides 8/16/32 feed the branches of
    :data:`LFFD_BRANCH_OF_STRIDE`, re-encoded exactly into LFFD's receptive-field encoding; the other branches give
    zero scores.
    """
    from deepbatch.detectors.lffd import LFFD_SPECS

    spec = LFFD_SPECS[variant]
    image = "data"
    model, heads = _embed_yunet(yunet, image, rgb=False)
    source = {branch: stride for stride, branch in LFFD_BRANCH_OF_STRIDE[variant].items()}
    outputs = []
    for branch, (size, stride, start) in enumerate(zip(spec.sizes, spec.strides, spec.starts)):
        if branch in source:
            bbox = f"bbox_{stride}"
            half_extent = heads.op("Mul", [heads.op("Exp", [heads.channels(bbox, 2, 4)]), heads.const(stride / 2)])
            shift = heads.op("Sub", [heads.const(float(start)), heads.op("Mul", [heads.channels(bbox, 0, 2),
                                                                               heads.const(float(stride))])])
            top_left = heads.op("Div", [heads.op("Add", [shift, half_extent]), heads.const(size / 2)])
            bottom_right = heads.op("Div", [heads.op("Sub", [shift, half_extent]), heads.const(size / 2)])
            box = heads.op("Concat", [top_left, bottom_right], axis=2)
            score_map = heads.grid_of(heads.score(stride), 1, stride)
            box_map = heads.grid_of(box, 4, stride)
        else:
            score_map, box_map = heads.zeros(1, stride), heads.zeros(4, stride)
        outputs.append((score_map, f"score_{branch}", [1, 1, 480 // stride, 640 // stride]))
        outputs.append((box_map, f"bbox_{branch}", [1, 4, 480 // stride, 640 // stride]))
    return _finish(model, heads, image, (480, 640), outputs, target)


def yolo_face_from_scrfd(source: Path, target: Path) -> Path:
    """A YOLO-face export (ultralytics' decoded pose layout) derived from a real SCRFD model with keypoints.

    Input ``input`` [batch, 3, 640, 640] is YOLO's RGB ``x / 255``; output ``output0`` is ``(batch, 20, anchors)``:
    box centre x, y, width, height and keypoints x, y in canvas pixels, the SCRFD score, and visibility 1. Keypoints
    keep SCRFD's (and WIDER FACE's) observer order, as YOLO-face releases have them. The metadata ultralytics reads
    from its own exports is set, so ultralytics runs the file too.
    """
    model = onnx.load(str(source))
    graph = model.graph
    scrfd_input = graph.input[0].name
    size = graph.input[0].type.tensor_type.shape.dim[2].dim_value
    by_channels: Dict[int, List[onnx.ValueInfoProto]] = {}
    for output in graph.output:
        dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
        by_channels.setdefault(dims[2], []).append(output)
    for group in by_channels.values():
        group.sort(key=lambda o: -o.type.tensor_type.shape.dim[1].dim_value)

    prepare = [helper.make_node("Mul", ["input", "to_scrfd_scale"], ["scaled"]),
               helper.make_node("Add", ["scaled", "to_scrfd_shift"], [scrfd_input])]
    nodes = []
    inits = [numpy_helper.from_array(np.array(255 / 128, np.float32), "to_scrfd_scale"),
             numpy_helper.from_array(np.array(-127.5 / 128, np.float32), "to_scrfd_shift")]
    rows = []
    for stride, score, box, kps in zip((8, 16, 32), by_channels[1], by_channels[4], by_channels[10]):
        cells = size // stride
        centers = np.stack(np.meshgrid(np.arange(cells), np.arange(cells)), -1).reshape(-1, 2) * stride
        centers = np.repeat(centers, score.type.tensor_type.shape.dim[1].dim_value // cells**2, axis=0)
        # [cx, cy, w, h] = [left, top, right, bottom] @ box_matrix + [anchor x, anchor y, 0, 0]
        box_matrix = stride * np.array([[-0.5, 0, 1, 0], [0, -0.5, 0, 1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float32)
        box_offset = np.concatenate([centers, np.zeros_like(centers)], axis=1).astype(np.float32)
        # keypoint k: x, y = offsets * stride + anchor, visibility 1
        kps_matrix = np.zeros((10, 15), np.float32)
        kps_offset = np.zeros((len(centers), 15), np.float32)
        for k in range(5):
            kps_matrix[2 * k, 3 * k] = kps_matrix[2 * k + 1, 3 * k + 1] = stride
            kps_offset[:, 3 * k : 3 * k + 2] = centers
            kps_offset[:, 3 * k + 2] = 1.0
        names = {n: f"s{stride}_{n}" for n in ("bm", "bo", "km", "ko", "box", "box_abs", "kps", "kps_abs", "row")}
        inits += [numpy_helper.from_array(box_matrix, names["bm"]), numpy_helper.from_array(box_offset, names["bo"]),
                  numpy_helper.from_array(kps_matrix, names["km"]), numpy_helper.from_array(kps_offset, names["ko"])]
        nodes += [
            helper.make_node("MatMul", [box.name, names["bm"]], [names["box"]]),
            helper.make_node("Add", [names["box"], names["bo"]], [names["box_abs"]]),
            helper.make_node("MatMul", [kps.name, names["km"]], [names["kps"]]),
            helper.make_node("Add", [names["kps"], names["ko"]], [names["kps_abs"]]),
            helper.make_node("Concat", [names["box_abs"], score.name, names["kps_abs"]], [names["row"]], axis=2),
        ]
        rows.append(names["row"])
    nodes += [helper.make_node("Concat", rows, ["rows"], axis=1),
              helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1])]
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(prepare + body + nodes)
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, size, size]))
    anchors = sum(o.type.tensor_type.shape.dim[1].dim_value for o in by_channels[1])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, ["batch", 20, anchors]))
    del graph.value_info[:]
    metadata = {"task": "pose", "stride": "32", "batch": "1", "imgsz": f"[{size}, {size}]", "names": "{0: 'face'}",
                "kpt_shape": "[5, 3]", "channels": "3", "end2end": "False", "args": "{'dynamic': True, 'nms': None}"}
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def same_test_model_as_another() -> List[str]:
    """Names built on the very class and test model of an earlier name: the YOLO sizes share one test export, so
    only the first of each runtime goes through the per-backend test suite."""
    later_sizes = list(YOLO_VARIANTS)[1:]
    return [*later_sizes, *(f"{name}_pt" for name in later_sizes)]


def build_generated_models(folder: Path, weights: Path) -> Dict[str, dict]:
    """Build arguments per detector name whose real weights are not kept in the shared folder."""
    yolo_face = yolo_face_from_scrfd(weights / "scrfd_500m_kps.onnx", folder / "yolo_face_scrfd.onnx")
    yolo_names = [*YOLO_VARIANTS, *(f"{name}_pt" for name in YOLO_VARIANTS)]
    return {
        # SCRFD-10G ships as InsightFace's det_10g.onnx, which flattens the batch: same layout as this file.
        "scrfd_10g": {"model_path": str(flatten_batch(weights / "scrfd_500m_kps.onnx", folder / "det_flat.onnx"))},
        # SCRFD-34G is published without keypoints.
        "scrfd_34g": {"model_path": str(drop_outputs(weights / "scrfd_2.5g_kps.onnx", folder / "nokps.onnx", 10))},
        # CenterFace and LFFD exports are not kept here: graphs with their signature and layout carry YuNet's faces.
        "centerface": {"model_path": str(centerface_from_yunet(weights / YUNET_FILE, folder / "centerface.onnx"))},
        "lffd_v1": {"model_path": str(lffd_from_yunet(weights / YUNET_FILE, folder / "lffd_v1.onnx", "lffd_v1"))},
        "lffd_v2": {"model_path": str(lffd_from_yunet(weights / YUNET_FILE, folder / "lffd_v2.onnx", "lffd_v2"))},
        # No YOLO-face weights are kept here: a graph with the YOLO-face export layout carries SCRFD's faces, and
        # the ultralytics backends run that same export.
        **{name: {"model_path": str(yolo_face)} for name in yolo_names},
    }


def arcface_r50_signature(target: Path, seed: int = 0) -> Path:
    """A small graph with the signature of InsightFace's ``w600k_r50.onnx``: input ``input.1`` declared
    ``['None', 3, 112, 112]``, one output ``683`` declared ``[1, 512]``, and the same head (BatchNorm, PReLU,
    Flatten, Gemm, BatchNorm) on a single strided convolution instead of the ResNet-50 trunk. Random weights."""
    rng = np.random.default_rng(seed)

    def tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(array.astype(np.float32), name)

    channels, cells = 16, 14 * 14
    initializers = [
        tensor("conv_w", rng.normal(0, np.sqrt(2 / (3 * 64)), (channels, 3, 8, 8))),
        tensor("bn1_scale", rng.uniform(0.5, 1.5, channels)), tensor("bn1_bias", rng.normal(0, 0.1, channels)),
        tensor("bn1_mean", rng.normal(0, 0.1, channels)), tensor("bn1_var", rng.uniform(0.5, 1.5, channels)),
        tensor("prelu_slope", rng.uniform(0.1, 0.3, (channels, 1, 1))),
        tensor("fc_w", rng.normal(0, np.sqrt(1 / (channels * cells)), (512, channels * cells))),
        tensor("fc_b", rng.normal(0, 0.01, 512)),
        tensor("bn2_scale", rng.uniform(0.5, 1.5, 512)), tensor("bn2_bias", rng.normal(0, 0.1, 512)),
        tensor("bn2_mean", rng.normal(0, 0.1, 512)), tensor("bn2_var", rng.uniform(0.5, 1.5, 512)),
    ]
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["conv"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("BatchNormalization", ["conv", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["bn1"]),
        helper.make_node("PRelu", ["bn1", "prelu_slope"], ["prelu"]),
        helper.make_node("Flatten", ["prelu"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], transB=1),
        helper.make_node("BatchNormalization", ["fc", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes, "w600k_r50_signature",
        [helper.make_tensor_value_info("input.1", onnx.TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", onnx.TensorProto.FLOAT, [1, 512])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def build_generated_recognizers(folder: Path) -> Dict[str, dict]:
    """Build arguments per recognizer name whose real weights are not kept in the shared folder."""
    return {"arcface_r50": {"model_path": str(arcface_r50_signature(folder / "w600k_r50.onnx"))}}


def ultralytics_face_exports(folder: Path, variants: Dict[str, str], names: Optional[Dict[str, Dict[int, str]]] = None,
                             dynamic_shapes: tuple = (True, False)) -> Dict[str, Path]:
    """One-class YOLO face models built from ultralytics' own YAMLs and exported by ultralytics' exporter (with its
    default graph simplification), ``dynamic=True`` and fixed shape, as users export their checkpoints.

    ``variants`` maps a name to ``detect`` (YOLOv8n, output ``(B, 5, anchors)``), ``pose`` (YOLOv8n-pose with 5
    keypoints, ``(B, 20, anchors)``) or ``end2end`` (YOLOv10n, NMS-free ``(B, 300, 6)``); files are
    ``<name>_dynamic.onnx`` and ``<name>_fixed.onnx``, with ``<name>.pt``. Random weights are rescaled at the head so
    scores spread over (0, 1) and depend on the image: the faces found mean nothing, but every runtime must find the
    same ones. ``names`` gives a variant other classes than ``{0: 'face'}`` (ultralytics records them in the export's
    metadata); ``dynamic_shapes`` says which of the two exports to make.
    """
    import torch
    import ultralytics
    import yaml

    configs = Path(ultralytics.__file__).parent / "cfg" / "models"
    sources = {"detect": ("v8/yolov8.yaml", {}), "pose": ("v8/yolov8-pose.yaml", {"kpt_shape": [5, 3]}),
               "end2end": ("v10/yolov10n.yaml", {})}
    files: Dict[str, Path] = {}
    for name, kind in variants.items():
        source, extra = sources[kind]
        config = yaml.safe_load((configs / source).read_text())
        classes = (names or {}).get(name, {0: "face"})
        config.update(nc=len(classes), names=classes, scale="n", **extra)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
        model = ultralytics.YOLO(str(folder / f"{name}.yaml"))
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in model.model.modules():
                if isinstance(layer, torch.nn.Conv2d):
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator)
                                       * (2.0 / layer.weight[0].numel()) ** 0.5)
                    if layer.bias is not None:
                        layer.bias.zero_()
            head = model.model.model[-1]
            for branch in ("cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3"):
                for stack in getattr(head, branch, []):
                    last = stack[-1]
                    while not isinstance(last, torch.nn.Conv2d):
                        last = last[-1] if isinstance(last, torch.nn.Sequential) else last.conv
                    last.weight.mul_(30.0)
        model.model.names = classes
        model.save(str(folder / f"{name}.pt"))
        files[name] = folder / f"{name}.pt"
        for dynamic in dynamic_shapes:
            nms = {"nms": False} if kind == "end2end" else {}  # False asks for the NMS-free head
            exported = Path(ultralytics.YOLO(str(folder / f"{name}.pt")).export(format="onnx", dynamic=dynamic,
                                                                                  imgsz=640, verbose=False, **nms))
            files[f"{name}_{'dynamic' if dynamic else 'fixed'}"] = exported.rename(
                folder / f"{name}_{'dynamic' if dynamic else 'fixed'}.onnx")
    return files


def scrfd_nchw_heads(source: Path, target: Path) -> Path:
    """Copy of an SCRFD export cut before its head reshapes: per stride the raw NCHW maps ``(B, A, H/s, W/s)`` scores
    (the sigmoid moved before the cut), ``(B, 4A, ...)`` box and ``(B, 10A, ...)`` keypoint distances."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    outputs, extra = [], []
    for output in graph.output:
        node, sigmoid = producers[output.name], False
        while node.op_type != "Transpose":
            sigmoid = sigmoid or node.op_type == "Sigmoid"
            node = producers[node.input[0]]
        head = node.input[0]
        if sigmoid:
            extra.append(helper.make_node("Sigmoid", [head], [f"{output.name}_map"]))
            head = f"{output.name}_map"
        outputs.append(helper.make_tensor_value_info(head, onnx.TensorProto.FLOAT, None))
    graph.node.extend(extra)
    del graph.output[:]
    graph.output.extend(outputs)
    del graph.value_info[:]
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    maps = session.run(None, {graph.input[0].name: np.zeros(size, np.float32)})
    for output, value in zip(graph.output, maps):
        output.type.CopyFrom(helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, list(value.shape)))
    onnx.save(model, str(target))
    return target


def cut_before(source: Path, target: Path, ops: tuple, nchw: bool = False) -> Path:
    """Copy of ``source`` cut before the post-processing ``ops`` (e.g. ``("Sigmoid", "Mul")``) that end its outputs:
    each such head op is bypassed (its output is its first input), so the outputs keep their names and shapes and
    carry what the graph computed before that op. ``nchw`` also cuts before the head reshapes first (raw maps)."""
    from deepbatch.runtime.graph_facts import MOVING_OPS

    if nchw:
        source = scrfd_nchw_heads(source, target.with_suffix(".nchw.onnx"))
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    for output in graph.output:
        node = producers.get(output.name)
        while node is not None and node.op_type in MOVING_OPS:
            node = producers.get(node.input[0])
        while node is not None and node.op_type in ops:
            node.op_type, first = "Identity", node.input[0]
            del node.input[:]
            del node.attribute[:]
            node.input.append(first)
            node = producers.get(first)
    onnx.save(model, str(target))
    return target


def as_conv_logits(source: Path, target: Path, names: List[str]) -> Path:
    """Copy of ``source`` whose 4-D probability outputs ``names`` come out as logits of a trailing 1x1 ``Conv``
    (identity weights): the graph then shows what an export cut before its activation shows, with known values."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    channels = {o.name: o.type.tensor_type.shape.dim[1].dim_value for o in graph.output}
    for name in names:
        probability = f"{name}_probability"
        node = producers[name]
        node.output[list(node.output).index(name)] = probability
        eps, c = 1e-7, channels[name]
        graph.initializer.extend([numpy_helper.from_array(np.array(eps, np.float32), f"{name}_lo"),
                                  numpy_helper.from_array(np.array(1 - eps, np.float32), f"{name}_hi"),
                                  numpy_helper.from_array(np.array(1, np.float32), f"{name}_one"),
                                  numpy_helper.from_array(np.eye(c, dtype=np.float32).reshape(c, c, 1, 1),
                                                          f"{name}_eye")])
        graph.node.extend([
            helper.make_node("Clip", [probability, f"{name}_lo", f"{name}_hi"], [f"{name}_p"]),
            helper.make_node("Sub", [f"{name}_one", f"{name}_p"], [f"{name}_q"]),
            helper.make_node("Div", [f"{name}_p", f"{name}_q"], [f"{name}_odds"]),
            helper.make_node("Log", [f"{name}_odds"], [f"{name}_logit"]),
            helper.make_node("Conv", [f"{name}_logit", f"{name}_eye"], [name]),
        ])
    onnx.save(model, str(target))
    return target


def ultralight_raw_boxes(source: Path, target: Path) -> Path:
    """Copy of an Ultra-Light export whose ``boxes`` output is the concatenated raw regressions (B, N, 4) instead of
    the boxes the graph decodes from them: the ``*_without_postprocessing`` layout."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    queue, regressions = ["boxes"], None
    while queue and regressions is None:
        node = producers.get(queue.pop(0))
        if node is None:
            continue
        if node.op_type == "Concat" and all(producers.get(i) is not None and producers[i].op_type == "Reshape"
                                            for i in node.input):
            regressions = node.output[0]
        queue.extend(node.input)
    head = producers["boxes"]
    head.op_type = "Identity"
    del head.input[:]
    head.input.append(regressions)
    del head.attribute[:]
    onnx.save(model, str(target))
    return target


def sigmoid_on_class_part(source: Path, target: Path) -> Path:
    """Copy of a YOLO raw-head export whose per-stride ``Concat`` takes its class scores through a ``Sigmoid``
    (probabilities instead of the logits of the published file)."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    for output in graph.output:
        concat = producers[output.name]
        assert concat.op_type == "Concat"
        logits = concat.input[1]
        concat.input[1] = f"{logits}_sigmoid"
        graph.node.append(helper.make_node("Sigmoid", [logits], [f"{logits}_sigmoid"]))
    onnx.save(model, str(target))
    return target
