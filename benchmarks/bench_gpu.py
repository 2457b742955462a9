"""``python benchmarks/bench_gpu.py``: the one-shot GPU table (``--install``, as ``make bench-gpu`` runs it, installs
what it needs first: :func:`install_gpu_packages`).

For SCRFD-500M and SCRFD-2.5G at 320 and 640, batch 1, 16, 32 and 64, on CUDA and on TensorRT FP16, images/s of

* **raw**: ``session.run`` through an IO binding with the float32 batch already on the device;
* **raw uint8**: the same model behind a preamble graph (:func:`uint8_preamble`) that takes the letterboxed uint8
  BGR canvas and does Cast, channel order, Sub and Mul on the device: a quarter of the bytes to upload;
* **frames**: :func:`deepbatch.detect` on decoded frames (letterboxing on the CPU, IO binding);
* **frames uint8**: frames letterboxed to uint8 on the CPU, normalised on the device by the preamble;
* **files**: :func:`deepbatch.detect` on the photo files (reduced JPEG decoding on prefetch threads);
* **files GPU decode**: the files decoded in batches by ``torchvision.io.decode_jpeg(device="cuda")``, letterboxed
  with torch on the device and fed to the preamble model through an IO binding, without a host copy;

plus ``represent`` faces/s with InsightFace's ``w600k_mbf`` (from ``$DEEPBATCH_WEIGHTS``). The table is printed
and written as JSON. Without a usable GPU the CPU part runs (the preamble checked against deepbatch's own
normalisation, SCRFD-500M at 640 at batch 1 and 16 on the CPU, the torch decoding path on the CPU device, and
``represent``) and the output says the GPU part was skipped. A time budget (``--budget``, default 420 s) stops
starting new cells, so the whole run stays under 8 minutes; cells not reached are listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from deepbatch.errors import DeepbatchError

logger = logging.getLogger(__name__)

MODELS = {"scrfd_500m": "SCRFD-500M", "scrfd_2.5g": "SCRFD-2.5G"}
SIZES = (320, 640)
BATCHES = (1, 16, 32, 64)
PROVIDERS = ("cuda", "tensorrt")
PREAMBLE_INPUT = "canvas_bgr_uint8"


def uint8_preamble(model: Any, spec: Any) -> Any:
    """``model`` (an ONNX ModelProto taking a normalised NCHW float32 batch) behind a preamble that takes the
    letterboxed (N, H, W, 3) uint8 BGR canvas: Cast, channel reorder (BGR to RGB when ``spec.rgb``), Transpose to
    NCHW, Sub ``spec.mean``, Mul ``1 / spec.std``, exactly :func:`deepbatch.ops.letterbox.normalize`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    original = next(i for i in graph.input if i.name not in initializers)
    dims = [d.dim_param or (d.dim_value if d.dim_value else "?") for d in original.type.tensor_type.shape.dim]
    batch_dim, height, width = dims[0], dims[2], dims[3]
    mean = np.broadcast_to(np.asarray(spec.mean, np.float32), (3,)).reshape(1, 3, 1, 1)
    scale = (1.0 / np.broadcast_to(np.asarray(spec.std, np.float32), (3,))).astype(np.float32).reshape(1, 3, 1, 1)
    order = np.array([2, 1, 0] if spec.rgb else [0, 1, 2], np.int64)
    nodes = [
        helper.make_node("Cast", [PREAMBLE_INPUT], ["pre_float"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["pre_float", "pre_order"], ["pre_ordered"], axis=3),
        helper.make_node("Transpose", ["pre_ordered"], ["pre_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["pre_nchw", "pre_mean"], ["pre_centered"]),
        helper.make_node("Mul", ["pre_centered", "pre_scale"], [original.name]),
    ]
    new_input = helper.make_tensor_value_info(PREAMBLE_INPUT, TensorProto.UINT8, [batch_dim, height, width, 3])
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.input[:]
    out.graph.input.extend([new_input] + [i for i in graph.input if i.name != original.name])
    for node in reversed(nodes):
        out.graph.node.insert(0, node)
    out.graph.initializer.extend([numpy_helper.from_array(order, "pre_order"),
                                  numpy_helper.from_array(mean, "pre_mean"),
                                  numpy_helper.from_array(scale, "pre_scale")])
    return out


def letterbox_uint8(images: Sequence[np.ndarray], spec: Any) -> Tuple[np.ndarray, Any]:
    """``(canvas, geometry)``: images fitted onto an (N, H, W, 3) uint8 BGR canvas padded with ``spec.pad_value``,
    and a :class:`~deepbatch.ops.letterbox.Letterboxed` (whose ``blob`` is a zero-cost stand-in of the model's
    input shape) for the detector's ``decode`` and mapping back."""
    from deepbatch.ops.letterbox import Letterboxed, place

    n = len(images)
    canvas = np.full((n, spec.height, spec.width, 3), spec.pad_value, np.uint8)
    scales, offsets, shapes = np.empty((n, 2), np.float32), np.zeros((n, 2), np.float32), np.empty((n, 2), np.int64)
    for i, image in enumerate(images):
        placed = place(image, spec)
        new_h, new_w = placed.pixels.shape[:2]
        canvas[i, placed.top : placed.top + new_h, placed.left : placed.left + new_w] = placed.pixels
        scales[i], offsets[i], shapes[i] = placed.scale, (placed.left, placed.top), image.shape[:2]
    stand_in = np.broadcast_to(np.float32(0), (n, 3, spec.height, spec.width))
    return canvas, Letterboxed(stand_in, scales, offsets, shapes)


class PreambleRunner:
    """A detector's model behind :func:`uint8_preamble`, run through an IO binding on ``device`` ("cpu" or "cuda")."""

    def __init__(self, detector: Any, providers: Any, device: str):
        from deepbatch.runtime.session import create_session

        model = uint8_preamble(_repaired_model(detector), detector.input_spec)
        self.session = create_session(model.SerializeToString(), providers)
        self.device = device
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_numpy(self, canvas: np.ndarray) -> List[np.ndarray]:
        """Outputs for a host uint8 canvas (uploaded by the binding)."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(PREAMBLE_INPUT, np.ascontiguousarray(canvas))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def run_pointer(self, tensor: Any) -> List[np.ndarray]:
        """Outputs for a contiguous (N, H, W, 3) uint8 torch tensor already on ``device``: no host round trip."""
        binding = self.session.io_binding()
        binding.bind_input(PREAMBLE_INPUT, self.device, 0, np.uint8, list(tensor.shape), tensor.data_ptr())
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


def _repaired_model(detector: Any) -> Any:
    """The detector's ONNX graph with the batch axis made dynamic, as its session runs it."""
    import onnx

    from deepbatch.runtime.surgery import make_batch_dynamic

    model, _ = make_batch_dynamic(onnx.load(str(detector.model.path)), spatial=detector.dynamic_spatial)
    return model


def gpu_decode_letterbox(datas: Sequence[bytes], spec: Any, device: str) -> Tuple[Any, Any]:
    """JPEG bytes decoded in one batched ``torchvision.io.decode_jpeg`` call on ``device`` (EXIF orientation
    applied), letterboxed there as :func:`deepbatch.ops.letterbox.place` does (block mean by the shrink factor,
    edges replicated, then bilinear resizing) into an (N, H, W, 3) uint8 BGR canvas tensor; returns the tensor and
    the geometry as :func:`letterbox_uint8` does."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    from deepbatch.ops.letterbox import Letterboxed, fit_size, shrink_factor

    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    n = len(images)
    canvas = torch.full((n, spec.height, spec.width, 3), spec.pad_value, dtype=torch.uint8, device=device)
    scales, offsets, shapes = np.empty((n, 2), np.float32), np.zeros((n, 2), np.float32), np.empty((n, 2), np.int64)
    for i, image in enumerate(images):
        h, w = image.shape[1:]
        factor = shrink_factor(h, w, spec.size, spec.keep_ratio)
        pixels = image[None].float()
        if factor > 1:
            padded = F.pad(pixels, (0, -w % factor, 0, -h % factor), mode="replicate")
            pixels = F.avg_pool2d(padded, factor).round()
        new_h, new_w, sx, sy = fit_size(pixels.shape[2], pixels.shape[3], spec)
        top = (spec.height - new_h) // 2 if spec.center else 0
        left = (spec.width - new_w) // 2 if spec.center else 0
        resized = F.interpolate(pixels, size=(new_h, new_w), mode="bilinear", align_corners=False)
        canvas[i, top : top + new_h, left : left + new_w] = resized[0].flip(0).permute(1, 2, 0).round().clamp(
            0, 255).to(torch.uint8)
        scales[i], offsets[i], shapes[i] = (sx / factor, sy / factor), (left, top), (h, w)
    stand_in = np.broadcast_to(np.float32(0), (n, 3, spec.height, spec.width))
    return canvas.contiguous(), Letterboxed(stand_in, scales, offsets, shapes)


@dataclass
class Cell:
    model: str
    input_size: int
    provider: str
    batch_size: int
    raw: Optional[float] = None
    raw_uint8: Optional[float] = None
    frames: Optional[float] = None
    frames_uint8: Optional[float] = None
    files: Optional[float] = None
    files_gpu_decode: Optional[float] = None


@dataclass
class Table:
    device: str
    gpu_skipped: Optional[str]
    images: int
    cells: List[Cell] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    checks: Dict[str, Any] = field(default_factory=dict)
    represent_faces_per_s: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def preload_gpu_libraries() -> None:
    """Load the CUDA, cuDNN and TensorRT libraries that pip wheels put in site-packages (not on the loader's path):
    ``onnxruntime.preload_dlls()`` for CUDA and cuDNN, and ``tensorrt_libs``' ``libnvinfer`` for TensorRT."""
    import ctypes
    import glob

    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # noqa: BLE001 (a missing library only disables the GPU part, reported below)
            logger.info("onnxruntime.preload_dlls: %s", exc)
    try:
        import tensorrt_libs
    except ImportError:
        return
    folder = Path(tensorrt_libs.__file__).parent
    for library in sorted(glob.glob(str(folder / "libnvinfer*.so*"))):
        try:
            ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            logger.info("could not load %s: %s", library, exc)


ONNXRUNTIME_GPU = "onnxruntime-gpu[cuda,cudnn]>=1.20"


def _pip(*arguments: str) -> bool:
    """One pip command in this interpreter; True when it succeeded (its output is shown)."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "pip", *arguments], check=False).returncode == 0


def _python_says(code: str) -> str:
    """What a fresh interpreter prints for ``code`` (empty on failure): a package's state without importing it here,
    where an import would pin the old build for this whole process."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def _fetch_and_install(requirements: Sequence[str], wheels: Optional[Path], before: Sequence[str] = ()) -> bool:
    """Download ``requirements`` with their dependencies (from ``wheels`` alone when given) and only when all came,
    uninstall ``before`` and install them from what was downloaded: an offline machine keeps what it had."""
    import tempfile

    index = ["--no-index", "--find-links", str(wheels)] if wheels is not None else []
    with tempfile.TemporaryDirectory(prefix="deepbatch-wheels-") as folder:
        if not _pip("download", "-q", "--dest", folder, *index, *requirements):
            return False
        if before:
            _pip("uninstall", "-q", "-y", *before)
        return _pip("install", "-q", "--no-index", "--find-links", folder, *requirements)


def install_gpu_packages(wheels: Optional[Path] = None) -> List[str]:
    """On a machine with ``nvidia-smi``, what the GPU table needs and this Python lacks: onnxruntime-gpu with its
    CUDA and cuDNN wheels (replacing a CPU-only onnxruntime: both write the same package), the TensorRT wheel that
    build loads (:func:`tensorrt_requirement`) and torch/torchvision for GPU JPEG decoding. Everything is
    downloaded before anything is removed, so a machine without a package index (pass ``wheels``, a folder of
    wheels) keeps a working runtime and the table skips what is missing. Returns one line per package said."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return ["no nvidia-smi here: nothing installed, the GPU part will be skipped"]
    said = []
    has_cuda = "import onnxruntime as o; print('CUDAExecutionProvider' in o.get_available_providers())"
    if _python_says(has_cuda) == "True":
        said.append("onnxruntime with the CUDA provider: already installed")
    elif _fetch_and_install([ONNXRUNTIME_GPU], wheels, before=["onnxruntime"]):
        said.append(f"installed {ONNXRUNTIME_GPU}")
    else:
        said.append(f"{ONNXRUNTIME_GPU} could not be downloaded (no package index? pass --wheels DIR); the GPU "
                    "part runs only if the installed onnxruntime has the CUDA provider")
    here = str(Path(__file__).resolve().parent)
    requirement = _python_says(f"import sys; sys.path.insert(0, {here!r}); "
                               "from bench_gpu import tensorrt_requirement as r; print(r() or '')")
    if requirement and not _python_says("import tensorrt_libs; print('yes')"):
        installed = _fetch_and_install([requirement], wheels)
        said.append(f"installed {requirement}" if installed else
                    f"{requirement} could not be downloaded; the TensorRT cells fall back to CUDA")
    if not _python_says("import torch, torchvision; print('yes')"):
        installed = _fetch_and_install(["torch", "torchvision"], wheels)
        said.append("installed torch and torchvision" if installed else
                    "torch/torchvision could not be downloaded; the GPU JPEG decoding column is skipped")
    return said


def tensorrt_requirement() -> Optional[str]:
    """The TensorRT wheel that the installed onnxruntime-gpu loads, e.g. ``"tensorrt-cu13>=10,<11"``: its CUDA
    major from the build info and its ``libnvinfer`` major from the TensorRT provider library, so the wheel matches
    both (a TensorRT for another CUDA, or of another major version, leaves the provider unable to start). None for
    a build without the TensorRT provider."""
    import re

    import onnxruntime as ort

    folder = Path(ort.__file__).parent / "capi"
    provider = folder / "libonnxruntime_providers_tensorrt.so"
    cuda = getattr(getattr(ort.capi, "build_and_package_info", None), "cuda_version", "") or ""
    if not provider.exists() or not cuda:
        return None
    linked = re.search(rb"libnvinfer\.so\.(\d+)", provider.read_bytes())
    if linked is None:
        return None
    major = int(linked.group(1))
    return f"tensorrt-cu{cuda.split('.')[0]}>={major},<{major + 1}"


def probe_model() -> Any:
    """A one-node graph to try the CUDA provider with, stamped with an IR version and opset that every supported
    onnxruntime reads (``make_model`` stamps the installed onnx package's newest IR version, which an older
    onnxruntime refuses: the GPU would then look absent)."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def gpu_status() -> Tuple[bool, str]:
    """``(usable, description)``: whether a CUDA session can really be made here, and the device or the reason."""
    import onnxruntime as ort

    preload_gpu_libraries()

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider (CPU-only build or no GPU libraries)"
    try:
        session = ort.InferenceSession(probe_model().SerializeToString(), providers=["CUDAExecutionProvider"])
        started = session.get_providers()[0] == "CUDAExecutionProvider"
    except Exception as exc:  # noqa: BLE001 (any failure to start means: no usable GPU)
        return False, f"the CUDA provider could not start ({exc})"
    if not started:
        return False, "the CUDA provider could not start (no GPU, or its CUDA/cuDNN libraries are missing)"
    try:
        import torch

        if torch.cuda.is_available():
            return True, torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return True, "CUDA device"


def rate(images: int, run: Callable[[], Any], sync: Callable[[], Any] = lambda: None) -> float:
    """Images/s of ``run`` (one warm-up call first)."""
    run()
    sync()
    start = time.perf_counter()
    run()
    sync()
    return images / (time.perf_counter() - start)


def measure_cell(cell: Cell, detector: Any, providers: Any, device: str, paths: List[str],
                 frames: List[np.ndarray], images: int, torch_decode: bool) -> None:
    """Fill every column of ``cell`` that this machine can run."""
    import deepbatch
    from deepbatch.ops.letterbox import letterbox

    size = cell.batch_size
    runs = max(1, images // size)
    chunk = list(islice(cycle(frames), size))
    stream_frames = list(islice(cycle(frames), runs * size))
    stream_paths = list(islice(cycle(paths), runs * size))
    model = detector.model
    blob = letterbox(chunk, detector.input_spec).blob
    sync: Callable[[], Any] = lambda: None  # noqa: E731
    if device == "cuda":
        import onnxruntime as ort

        value = ort.OrtValue.ortvalue_from_numpy(blob, "cuda", 0)

        def raw() -> None:
            for _ in range(runs):
                binding = model.session.io_binding()
                binding.bind_ortvalue_input(model.input_name, value)
                for name in model.output_names:
                    binding.bind_output(name, "cuda")
                model.session.run_with_iobinding(binding)
    else:
        def raw() -> None:
            for _ in range(runs):
                model.run(blob)
    cell.raw = rate(runs * size, raw, sync)
    preamble = PreambleRunner(detector, providers, device)
    canvas, _ = letterbox_uint8(chunk, detector.input_spec)
    cell.raw_uint8 = rate(runs * size, lambda: [preamble.run_numpy(canvas) for _ in range(runs)])
    cell.frames = rate(len(stream_frames), lambda: deepbatch.detect(stream_frames, detector, batch_size=size))

    def frames_uint8() -> None:
        for start in range(0, len(stream_frames), size):
            canvas, geometry = letterbox_uint8(stream_frames[start : start + size], detector.input_spec)
            detector.faces(preamble.run_numpy(canvas), geometry)

    cell.frames_uint8 = rate(len(stream_frames), frames_uint8)
    cell.files = rate(len(stream_paths), lambda: deepbatch.detect(stream_paths, detector, batch_size=size))
    if torch_decode:
        datas = {p: Path(p).read_bytes() for p in paths}

        def files_gpu() -> None:
            for start in range(0, len(stream_paths), size):
                chunk_paths = stream_paths[start : start + size]
                tensor, geometry = gpu_decode_letterbox([datas[p] for p in chunk_paths], detector.input_spec, device)
                detector.faces(preamble.run_pointer(tensor), geometry)

        cell.files_gpu_decode = rate(len(stream_paths), files_gpu)


def check_preamble(detector: Any, frames: List[np.ndarray]) -> Dict[str, float]:
    """The preamble against deepbatch's CPU normalisation on real photos (CPU provider): the largest difference of
    the normalised input and of the model outputs."""
    import onnx
    from onnx import helper

    from deepbatch.ops.letterbox import letterbox
    from deepbatch.runtime.session import create_session

    chunk = frames[:4]
    canvas, _ = letterbox_uint8(chunk, detector.input_spec)
    reference = letterbox(chunk, detector.input_spec).blob
    model = uint8_preamble(_repaired_model(detector), detector.input_spec)
    normalised = onnx.ModelProto()
    normalised.CopyFrom(model)
    input_name = detector.model.input_name
    del normalised.graph.output[:]
    normalised.graph.output.extend([helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, None)])
    session = create_session(normalised.SerializeToString(), "cpu")
    blob = session.run([input_name], {PREAMBLE_INPUT: canvas})[0]
    full = create_session(model.SerializeToString(), "cpu").run(None, {PREAMBLE_INPUT: canvas})
    expected = detector.model.run(reference)
    return {"input_max_abs_diff": float(np.abs(blob - reference).max()),
            "output_max_abs_diff": float(max(np.abs(a - b).max() for a, b in zip(full, expected)))}


def check_torch_decode(detector: Any, paths: List[str]) -> Dict[str, Any]:
    """Faces per photo from the torch decoding path (on the CPU device) against :func:`deepbatch.detect`."""
    import deepbatch

    preamble = PreambleRunner(detector, "cpu", "cpu")
    chosen = paths[:8]
    tensor, geometry = gpu_decode_letterbox([Path(p).read_bytes() for p in chosen], detector.input_spec, "cpu")
    found = detector.faces(preamble.run_pointer(tensor), geometry)
    expected = cast(List[Any], deepbatch.detect(chosen, detector, batch_size=8))  # a list in: one Faces per image
    return {"photos": len(chosen), "same_face_counts": [len(a) for a in found] == [len(b) for b in expected]}


def represent_rate(frames: List[np.ndarray], providers: Any, faces_target: int = 256) -> float:
    """Faces/s of :func:`deepbatch.represent` with ``w600k_mbf`` on decoded frames (detection included)."""
    import deepbatch
    from deepbatch.detectors import build_detector
    from deepbatch.recognition.base import build_recognizer
    from deepbatch.weights import search_dirs

    path = next((folder / "w600k_mbf.onnx" for folder in search_dirs() if (folder / "w600k_mbf.onnx").is_file()),
                None)
    if path is None:
        raise DeepbatchError("w600k_mbf.onnx not found: put it in $DEEPBATCH_WEIGHTS")
    recognizer = build_recognizer("arcface_r50", model_path=path, providers=providers)  # same pre-processing
    detector = build_detector("scrfd_500m", providers=providers)
    counted = deepbatch.represent(frames, model_name=recognizer, detector_backend=detector, enforce_detection=False)
    per_pass = sum(len(r) for r in counted)
    passes = max(1, -(-faces_target // max(1, per_pass)))
    stream = frames * passes
    start = time.perf_counter()
    deepbatch.represent(stream, model_name=recognizer, detector_backend=detector, enforce_detection=False)
    return per_pass * passes / (time.perf_counter() - start)


def tensorrt_providers(input_name: str, size: int) -> List[Any]:
    """TensorRT FP16 with one optimisation profile for batches 1 to 64 at ``size``, so one engine serves them all."""
    shape = f"{input_name}:{{}}x3x{size}x{size}"
    options = {"trt_profile_min_shapes": shape.format(1), "trt_profile_opt_shapes": shape.format(32),
               "trt_profile_max_shapes": shape.format(max(BATCHES))}
    return [("tensorrt", options), "cuda"]


def run(args: argparse.Namespace) -> Table:
    from deepbatch.detectors import build_detector
    from deepbatch.io.images import list_image_files, load_image

    started = time.perf_counter()
    paths = [str(p) for p in list_image_files(Path(args.data))]
    if not paths:
        raise DeepbatchError(f"no photos in {args.data}")
    frames = [load_image(p) for p in paths]
    usable, device = gpu_status()
    table = Table(device if usable else "cpu", None if usable else device, args.images)
    try:
        import torchvision  # noqa: F401

        torch_decode = True
    except ImportError:
        torch_decode = False
        table.skipped.append("files GPU decode: torchvision is not installed")
    cpu_detector = build_detector("scrfd_500m", input_size=640, providers="cpu")
    table.checks["preamble_vs_cpu_normalisation"] = check_preamble(cpu_detector, frames)
    if torch_decode:
        table.checks["torch_decode_vs_detect"] = check_torch_decode(cpu_detector, paths)
    if not usable:
        logger.warning("GPU part skipped: %s; running the CPU part", device)
        for size in (1, 16):
            cell = Cell("scrfd_500m", 640, "cpu", size)
            measure_cell(cell, cpu_detector, "cpu", "cpu", paths, frames, args.cpu_images, torch_decode)
            table.cells.append(cell)
        table.represent_faces_per_s["cpu"] = represent_rate(frames[:16], "cpu", 64)
        table.seconds = time.perf_counter() - started
        return table
    for name in MODELS:
        for input_size in SIZES:
            for provider in PROVIDERS:
                if time.perf_counter() - started > args.budget:
                    table.skipped.append(f"{name} {input_size} {provider}: time budget reached")
                    continue
                probe: Any = build_detector(name, input_size=input_size, providers="cuda")
                providers = "cuda" if provider == "cuda" else tensorrt_providers(probe.model.input_name, input_size)
                detector: Any = build_detector(name, input_size=input_size, providers=providers)
                for size in BATCHES:
                    logger.info("%s %d %s batch %d", name, input_size, provider, size)
                    cell = Cell(name, input_size, detector.model.providers[0], size)
                    measure_cell(cell, detector, providers, "cuda", paths, frames, args.images, torch_decode)
                    table.cells.append(cell)
    for provider in PROVIDERS:
        table.represent_faces_per_s[provider] = represent_rate(frames, provider if provider == "cuda" else "tensorrt")
    table.seconds = time.perf_counter() - started
    return table


def format_table(table: Table) -> str:
    lines = [f"device: {table.device}" + (f" -- GPU part skipped: {table.gpu_skipped}" if table.gpu_skipped else ""),
             f"checks: {json.dumps(table.checks)}", "",
             "| model | size | provider | batch | raw | raw uint8 | frames | frames uint8 | files | files GPU decode |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in table.cells:
        values = [c.raw, c.raw_uint8, c.frames, c.frames_uint8, c.files, c.files_gpu_decode]
        lines.append(f"| {MODELS.get(c.model, c.model)} | {c.input_size} | {c.provider} | {c.batch_size} | "
                     + " | ".join("-" if v is None else f"{v:.1f}" for v in values) + " |")
    lines.append("")
    lines += [f"represent (w600k_mbf, SCRFD-500M detection included) on {k}: {v:.1f} faces/s"
              for k, v in table.represent_faces_per_s.items()]
    lines += [f"skipped: {s}" for s in table.skipped]
    lines.append(f"images/s throughout; took {table.seconds:.0f} s")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_gpu.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset"))
    parser.add_argument("--images", type=int, default=256, help="images per GPU measurement (default 256)")
    parser.add_argument("--cpu-images", type=int, default=32, help="images per CPU measurement (default 32)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds after which no new cell starts")
    parser.add_argument("--json", dest="json_path", default="bench_gpu.json")
    parser.add_argument("--tensorrt-requirement", action="store_true",
                        help="print the TensorRT wheel the installed onnxruntime-gpu loads, and exit")
    parser.add_argument("--install", action="store_true",
                        help="first install what the GPU table needs and this Python lacks (on a machine with "
                             "nvidia-smi; see install_gpu_packages)")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="with --install: a folder of wheels to install from (a machine without a package index)")
    options = parser.parse_args(argv)
    if options.tensorrt_requirement:
        sys.stdout.write((tensorrt_requirement() or "") + "\n")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if options.install:
        for line in install_gpu_packages(options.wheels):
            logger.info("%s", line)
    table = run(options)
    sys.stdout.write(format_table(table) + "\n")
    Path(options.json_path).write_text(json.dumps(asdict(table), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
