"""MTCNN (the ``mtcnn`` package, weights shipped inside it; TensorFlow): optional extra ``deepbatch[mtcnn]``.

The package batches for real: ``MTCNN.detect_faces(list)`` stacks the images into one tensor, runs PNet over the
image pyramid of the whole stack, then RNet and ONet on the candidates of every image at once. It stacks images of
different sizes by zero-padding them to the largest one, which changes the pixels PNet sees near an image's border
and the cost of the small images; so this backend hands it one batch per distinct image size inside a chunk (video
frames: the whole chunk at once) and gets, per image, the same faces as a call with that image alone.

Scores are ONet's face probability. The package names keypoints from the observer's side (its ``left_eye`` is on
the image's left); they are permuted to deepbatch's person-relative order.

As DeepFace does before detecting (when it aligns, its default), each image is padded with a black border of half
its height above and below and half its width left and right: MTCNN then finds faces cut by the image's edge that
it misses otherwise (5 instead of 4 in ``selfie-many-people.jpg``). Boxes and landmarks are mapped back to the
image; a box reaching past the edge is clipped to it, its landmarks are kept as found.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..ops.boxes import check_cascade_thresholds, clip_boxes, group_by_shape
from ..optional import load_triton_before_tensorflow, require
from ..structures import OBSERVER_TO_PERSON, Faces
from .base import DETECTORS, Detector

# Columns of the package's ``output_type="numpy"`` rows: image index, x1, y1, x2, y2, score, then the five keypoint
# x coordinates followed by the five y coordinates (observer-relative order).
_IMAGE, _BOX, _SCORE, _XS, _YS = 0, slice(1, 5), 5, slice(6, 11), slice(11, 16)
DEFAULT_MAX_PIXELS = 2048 * 2048  # of the bordered image


logger = logging.getLogger(__name__)


def import_mtcnn() -> Any:
    load_triton_before_tensorflow()
    return require("mtcnn", "mtcnn", "The MTCNN face detector")


@DETECTORS.register("mtcnn", summary="MTCNN (mtcnn package, TensorFlow; deepbatch[mtcnn]), batched per image size",
                     licence="MIT (the mtcnn package)")
class MTCNNDetector(Detector):
    """MTCNN face detector with five landmarks; one package call per distinct image size in a chunk.

    ``thresholds`` are the PNet, RNet and ONet score thresholds; ``scale_factor`` the step of the image pyramid;
    ``device`` a TensorFlow device string; ``border`` the black border added on each side, as a fraction of the
    image's side (DeepFace's 0.5; 0 detects on the image alone). The smallest face searched for is the package's
    20 pixels: its pyramid is sized for that, and a larger minimum makes PNet fail on some image sizes.

    ``max_pixels`` bounds the work on large images: a bordered image above it is handed to the package shrunk by
    the fewest whole pyramid steps that bring it within the budget, so its finest levels are skipped and the
    smallest face searched for grows with the image (with the border: 20 px times the square root of 4 x the
    image's pixels over ``max_pixels``, about 67 px on a 12-megapixel photo). On the 64 test photos every image
    keeps its number of faces (boxes overlap the unbounded ones by IoU 0.77 or more) in less time (the MTCNN rows
    of ``docs/measurements/deepface_speedup.json``); ``None`` runs the whole pyramid, as DeepFace does.
    """

    name = "mtcnn"
    extra = "mtcnn"
    runs_on = "the mtcnn package on TensorFlow"
    bundled_weights = "inside the package"
    batches_whole_chunks = True
    has_landmarks = True

    @classmethod
    def designed_batching(cls) -> Optional[str]:
        return "one call per image size in a chunk"  # the package stacks only images of one size

    def __init__(
        self,
        thresholds: Tuple[float, float, float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        device: str = "CPU:0",
        border: float = 0.5,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ):
        pnet, rnet, onet = check_cascade_thresholds(thresholds)
        if border < 0:
            raise ValueError(f"border must be a fraction >= 0 of the image's side, got {border}")
        package = import_mtcnn()
        self.border = float(border)
        self.max_pixels = max_pixels  # None: the package's whole pyramid on every image
        self.scale_factor = float(scale_factor)
        self.model = package.MTCNN(device=device)
        self.options: Dict[str, Any] = dict(
            scale_factor=float(scale_factor), threshold_pnet=pnet, threshold_rnet=rnet, threshold_onet=onet,
        )
        self._lock = threading.Lock()  # the package's stages are not documented as thread-safe

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        import cv2

        results: List[Faces] = [Faces.empty()] * len(images)
        for shape, indices in group_by_shape(images).items():
            top, left = int(self.border * shape[0]), int(self.border * shape[1])  # DeepFace's int(0.5 * side)
            rgb = [_padded_rgb(images[i], top, left) for i in indices]
            height, width = rgb[0].shape[:2]
            size = _pyramid_start(height, width, self.scale_factor, self.max_pixels)
            if size != (height, width):
                rgb = [cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA) for image in rgb]
            with self._lock:
                rows = self.model.detect_faces(rgb, box_format="xyxy", output_type="numpy", **self.options)
            rows = np.asarray(rows, np.float32).reshape(-1, 16)
            rows[:, 1:] *= np.array([width / size[1], height / size[0]] * 2 + [1] + [width / size[1]] * 5
                                    + [height / size[0]] * 5, np.float32)
            for position, index in enumerate(indices):
                results[index] = _faces(rows[rows[:, _IMAGE] == position], top, left, shape)
        return results


def _pyramid_start(height: int, width: int, step: float, max_pixels: Optional[int]) -> Tuple[int, int]:
    """``(height, width)`` the image is given to the package at: itself, or, above ``max_pixels``, shrunk by the
    fewest whole steps of the pyramid that bring it within the budget, so the package's levels are the image's own
    levels without the finest ones."""
    if not max_pixels or height * width <= max_pixels:
        return height, width
    skipped = math.ceil(math.log(max_pixels / (height * width)) / (2 * math.log(step)))
    scale = step ** skipped
    return max(12, round(height * scale)), max(12, round(width * scale))


def _padded_rgb(image: np.ndarray, top: int, left: int) -> np.ndarray:
    """The image as RGB with a black border of ``top`` rows above and below and ``left`` columns on each side."""
    import cv2

    rgb = np.ascontiguousarray(image[..., ::-1])
    if top == 0 and left == 0:
        return rgb
    return cv2.copyMakeBorder(rgb, top, top, left, left, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _faces(rows: np.ndarray, top: int, left: int, shape: Tuple[int, ...]) -> Faces:
    """Faces from the package's rows of one padded image, in the image's pixels: boxes xyxy clipped to the image,
    ONet scores, person-relative landmarks."""
    shift = np.array([left, top], np.float32)
    boxes = clip_boxes(rows[:, _BOX] - np.tile(shift, 2), shape)
    points = np.stack([rows[:, _XS], rows[:, _YS]], axis=-1) - shift
    return Faces(boxes, rows[:, _SCORE], points[:, OBSERVER_TO_PERSON])
