"""MTCNN in PyTorch (the ``facenet-pytorch`` package, weights shipped inside it), DeepFace's ``fastmtcnn``: optional
extra ``deepbatch[fastmtcnn]``.

The package batches for real: ``MTCNN.detect(list_of_images)`` stacks images of one size into a tensor and runs PNet
over the pyramid of the whole stack, then RNet and ONet on the candidates of every image at once; it refuses images
of different sizes in one call, so this backend makes one call per distinct image size inside a chunk (video
frames: the whole chunk at once).

``facenet-pytorch`` pins old torch versions in its metadata but runs on current ones; it is installed with
``pip install --no-deps facenet-pytorch`` (see the Makefile), the ``fastmtcnn`` extra bringing what it really needs.
Scores are ONet's face probability. Keypoints come in the observer's order (the image-left eye first) and are
permuted to deepbatch's person-relative order.
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..ops.boxes import check_cascade_thresholds, clip_boxes, group_by_shape
from ..optional import require
from ..structures import OBSERVER_TO_PERSON, Faces
from .base import DETECTORS, Detector


def import_facenet_pytorch() -> Any:
    return require("facenet_pytorch", "fastmtcnn", "The fastmtcnn face detector", package="facenet-pytorch")


@DETECTORS.register("fastmtcnn", summary="MTCNN in PyTorch (facenet-pytorch; deepbatch[fastmtcnn]), batched per size",
                     licence="MIT (facenet-pytorch)")
class FastMTCNN(Detector):
    """facenet-pytorch's MTCNN with five landmarks; one package call per distinct image size in a chunk.

    ``thresholds`` are the PNet, RNet and ONet score thresholds (the package's defaults), ``min_face_size`` the
    smallest face searched for in pixels, ``scale_factor`` the step of the image pyramid, ``device`` a torch device
    (default: CUDA when available, else CPU).
    """

    name = "fastmtcnn"
    extra = "fastmtcnn"
    runs_on = "facenet-pytorch (PyTorch)"
    bundled_weights = "inside the package"
    batches_whole_chunks = True
    has_landmarks = True

    @classmethod
    def designed_batching(cls) -> Optional[str]:
        return "one call per image size in a chunk"  # the package stacks only images of one size

    def __init__(
        self,
        thresholds: Tuple[float, float, float] = (0.6, 0.7, 0.7),
        min_face_size: int = 20,
        scale_factor: float = 0.709,
        device: Optional[str] = None,
    ):
        stages = check_cascade_thresholds(thresholds)
        if min_face_size < 1:
            raise ValueError(f"min_face_size must be a positive number of pixels, got {min_face_size}")
        package = import_facenet_pytorch()
        import torch

        self.min_face_size = int(min_face_size)
        device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.model = package.MTCNN(thresholds=list(stages), min_face_size=int(min_face_size),
                                   factor=float(scale_factor), keep_all=True, select_largest=False, device=device)
        self._lock = threading.Lock()  # the package's modules hold no per-call state, but torch threads are shared

    def detect_batch(self, images: Sequence[np.ndarray]) -> List[Faces]:
        results: List[Faces] = [Faces.empty()] * len(images)
        # smaller images than the smallest face have an empty pyramid: no face fits
        for indices in group_by_shape(images, self.min_face_size).values():
            rgb = np.stack([images[i][..., ::-1] for i in indices])
            with self._lock:
                boxes, probs, points = self.model.detect(rgb, landmarks=True)
            for position, index in enumerate(indices):
                results[index] = _faces(boxes[position], probs[position], points[position], images[index].shape)
        return results


def _faces(boxes: Optional[np.ndarray], probs: Optional[np.ndarray], points: Optional[np.ndarray],
           shape: Tuple[int, ...]) -> Faces:
    """Faces of one image from the package's arrays (None when it found nothing); boxes clipped to the image
    (ONet's regression may reach past the border)."""
    if boxes is None or len(boxes) == 0:
        return Faces.empty()
    boxes = clip_boxes(np.asarray(boxes, np.float32).reshape(-1, 4), shape)
    landmarks = np.asarray(points, np.float32).reshape(-1, 5, 2)[:, OBSERVER_TO_PERSON]
    return Faces(boxes, np.asarray(probs, np.float32).reshape(-1), landmarks)
