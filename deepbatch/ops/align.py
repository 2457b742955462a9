"""Face alignment: five-point similarity warps to the ArcFace template, and box crops when landmarks are missing.

One alignment serves every API: :func:`face_crops` cuts each face of an image at its own resolution (the crop
:func:`deepbatch.extract_faces` returns), and :func:`align_faces` is exactly those crops resized into the
recognition model's square (what :func:`deepbatch.represent` embeds). So a stored crop embedded later with
``detector_backend="skip"`` gives the embedding of the photo it came from. The five-point similarities of all faces
are estimated together (:func:`similarity_transforms`); faces without usable landmarks fall back to their box crop;
:class:`AlignedFaces` records which happened to each face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

# InsightFace's ArcFace 112x112 template, reordered to deepbatch's person-relative landmark order
# (left eye, right eye, nose, mouth left, mouth right; the person's left eye lies at the larger x).
ARCFACE_TEMPLATE = np.array(
    [[73.5318, 51.5014], [38.2946, 51.6963], [56.0252, 71.7366], [70.7299, 92.2041], [41.5493, 92.3655]],
    dtype=np.float32,
)


def expand_box(box: np.ndarray, percentage: float, height: int, width: int) -> np.ndarray:
    """Grow an xyxy box by ``percentage`` of its width and height (half on each side), clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    grow_w = (x2 - x1) * percentage / 200.0
    grow_h = (y2 - y1) * percentage / 200.0
    return np.array(
        [max(0.0, x1 - grow_w), max(0.0, y1 - grow_h), min(float(width), x2 + grow_w), min(float(height), y2 + grow_h)],
        np.float32,
    )


def expand_boxes(boxes: np.ndarray, percentage: float, height: int, width: int) -> np.ndarray:
    """:func:`expand_box` for ``(N, 4)`` xyxy boxes at once: float32, clipped to the image."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    grow = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1) * (percentage / 200.0)
    out = boxes + grow * np.array([-1, -1, 1, 1], np.float32)
    np.clip(out[:, 0::2], 0.0, float(width), out=out[:, 0::2])
    np.clip(out[:, 1::2], 0.0, float(height), out=out[:, 1::2])
    return out


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of an xyxy box, rounded to whole pixels and clipped to the image (at least 1x1)."""
    height, width = image.shape[:2]
    x1 = min(max(int(round(float(box[0]))), 0), width - 1)
    y1 = min(max(int(round(float(box[1]))), 0), height - 1)
    x2 = min(max(x1 + 1, int(round(float(box[2])))), width)
    y2 = min(max(y1 + 1, int(round(float(box[3])))), height)
    return image[y1:y2, x1:x2]


def similarity_transforms(source: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares similarities (rotation, uniform scale, translation) for a stack of point sets at once.

    ``source`` is ``(N, K, 2)`` points (NaN marks an unknown point, which is ignored); ``target`` is ``(K, 2)`` or
    ``(N, K, 2)``. Returns ``(matrices, valid)``: ``(N, 2, 3)`` float64 matrices mapping each source set onto the
    target (Umeyama's method, the estimate InsightFace's alignment uses, solved with one batched SVD) and an
    ``(N,)`` bool mask that is False where fewer than two finite points, or coincident points, leave the transform
    undefined (those rows are NaN).
    """
    src = np.asarray(source, dtype=np.float64)
    if src.ndim != 3 or src.shape[2] != 2:
        raise ValueError(f"source points: expected shape (N, K, 2), got {src.shape}")
    dst = np.broadcast_to(np.asarray(target, dtype=np.float64), src.shape)
    finite = np.all(np.isfinite(src), axis=2) & np.all(np.isfinite(dst), axis=2)
    weight = finite.astype(np.float64)[..., None]
    count = weight.sum(axis=1)  # (N, 1)
    safe = np.maximum(count, 1.0)
    src = np.where(finite[..., None], src, 0.0)
    dst = np.where(finite[..., None], dst, 0.0)
    src_mean = (src * weight).sum(axis=1) / safe
    dst_mean = (dst * weight).sum(axis=1) / safe
    src_c = (src - src_mean[:, None]) * weight
    dst_c = (dst - dst_mean[:, None]) * weight
    covariance = np.einsum("nki,nkj->nij", dst_c, src_c) / safe[..., None]
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones((len(src), 2))
    d[np.linalg.det(u) * np.linalg.det(vt) < 0, 1] = -1.0
    rotation = (u * d[:, None, :]) @ vt
    variance = (src_c ** 2).sum(axis=(1, 2)) / safe[:, 0]
    valid = (count[:, 0] >= 2) & (variance > 1e-12)
    scale = (s * d).sum(axis=1) / np.where(valid, variance, 1.0)
    matrices = np.empty((len(src), 2, 3))
    matrices[:, :, :2] = scale[:, None, None] * rotation
    matrices[:, :, 2] = dst_mean - np.einsum("nij,nj->ni", matrices[:, :, :2], src_mean)
    matrices[~valid] = np.nan
    return matrices, valid


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, translation) mapping ``source`` onto ``target``.

    Points with NaN are ignored; at least two finite points are needed (Umeyama's method).
    """
    matrices, valid = similarity_transforms(np.asarray(source)[None], np.asarray(target)[None])
    if not valid[0]:
        raise ValueError("a similarity transform needs at least two distinct finite landmarks")
    return matrices[0]


def warp_to_template(image: np.ndarray, landmarks: np.ndarray, size: int = 112,
                     template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """``size`` x ``size`` face whose landmarks are moved onto ``template`` (scaled from 112) by a similarity."""
    matrix = similarity_transform(landmarks, template * (size / 112.0))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


FIVE_POINT = "five_point"
PARTIAL_POINTS = "partial_points"
BOX_CROP = "box_crop"


def alignment_methods(points: np.ndarray) -> List[str]:
    """Per face, from the number of landmarks its warp used: ``"five_point"`` (all five), ``"partial_points"``
    (two to four, e.g. eyes only) or ``"box_crop"`` (none: the box crop resized)."""
    return [FIVE_POINT if n == 5 else PARTIAL_POINTS if n >= 2 else BOX_CROP for n in np.asarray(points)]


@dataclass(frozen=True)
class AlignedFaces:
    """Faces of one image prepared for a recognition model.

    ``pixels`` is ``(N, S, S, 3)`` uint8 BGR; ``matrices`` ``(N, 2, 3)`` float64 maps original-image pixels to
    face pixels (for box crops up to the rounding of the resize); ``points`` ``(N,)`` int is how many landmarks
    placed the face on the template: 5 for a five-point warp, 2 to 4 when some were unknown, 0 for a box crop
    resized to fit the square with its aspect ratio kept and centred on black.
    """

    pixels: np.ndarray
    matrices: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def methods(self) -> List[str]:
        """Per face ``"five_point"``, ``"partial_points"`` or ``"box_crop"`` (see :func:`alignment_methods`)."""
        return alignment_methods(self.points)


def box_fit_transforms(boxes: np.ndarray, size: int) -> np.ndarray:
    """``(N, 2, 3)`` float64 scale-and-shift matrices that fit each xyxy box into a ``size`` square, aspect ratio
    kept, centred (the geometry of a box crop resized with padding, as DeepFace's ``resize_image``)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    scale = size / np.maximum(width, height)
    matrices = np.zeros((len(boxes), 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = scale
    matrices[:, 0, 2] = size / 2.0 - scale * (boxes[:, 0] + boxes[:, 2]) / 2.0
    matrices[:, 1, 2] = size / 2.0 - scale * (boxes[:, 1] + boxes[:, 3]) / 2.0
    return matrices


def resize_into(out: np.ndarray, pixels: np.ndarray) -> None:
    """Resize ``pixels`` (HxWx3) to fit the square ``out`` with its aspect ratio kept, centred, the rest black.

    Shrinking uses area averaging (no aliasing from large crops), enlarging bilinear interpolation.
    """
    size = out.shape[0]
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (new_w, new_h), interpolation=interpolation)
    out.fill(0)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized


# Side of a five-point crop: the face's own resolution (the template's 112 pixels scaled to the face), at least the
# template's 112 and at most 448: a larger crop only costs time, as models read 112 to 160 pixels.
ALIGNED_SIDE_MIN = 112
ALIGNED_SIDE_MAX = 448


@dataclass(frozen=True)
class FaceCrops:
    """The faces of one image at their own resolution: what ``extract_faces`` returns and ``represent`` embeds.

    ``crops`` holds one HxWx3 uint8 BGR array per face: a square warped onto the template for a face with
    landmarks, its box's pixels otherwise; ``matrices`` ``(N, 2, 3)`` float64 maps original-image pixels to crop
    pixels; ``points`` ``(N,)`` is how many landmarks placed each face (see :class:`AlignedFaces`).
    """

    crops: List[np.ndarray]
    matrices: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


def template_transforms(landmarks: np.ndarray, expand_percentage: float = 0.0,
                        template: np.ndarray = ARCFACE_TEMPLATE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(matrices, sides, valid)`` warping faces onto ``template`` (given for 112 pixels) at their own resolution.

    ``landmarks`` is ``(N, K, 2)`` (NaN for unknown points). Each face gets a square of ``side`` pixels: the
    template scaled to the face's size (clipped to [:data:`ALIGNED_SIDE_MIN`, :data:`ALIGNED_SIDE_MAX`]), grown by
    ``expand_percentage`` with the face kept in the centre. ``valid`` is False where the landmarks define no
    similarity (those rows of ``matrices`` are NaN).
    """
    estimated, valid = similarity_transforms(landmarks, np.asarray(template, np.float64))
    scale = np.sqrt(np.abs(np.linalg.det(np.where(valid[:, None, None], estimated[:, :, :2], 1.0))))
    base = np.clip(np.round(112.0 / np.where(valid, scale, 1.0)), ALIGNED_SIDE_MIN, ALIGNED_SIDE_MAX)
    margin = np.round(base * float(expand_percentage) / 200.0)
    matrices = estimated * (base / 112.0)[:, None, None]
    matrices[:, :, 2] += margin[:, None]
    return matrices, (base + 2 * margin).astype(np.int64), valid


def face_crops(image: np.ndarray, boxes: np.ndarray, landmarks: Optional[np.ndarray], expand_percentage: float = 0.0,
               use_landmarks: bool = True, template: np.ndarray = ARCFACE_TEMPLATE) -> FaceCrops:
    """Every face of one HxWx3 image, aligned, at its own resolution.

    ``boxes`` is ``(N, 4)`` xyxy in image pixels (already grown by ``expand_percentage``), ``landmarks``
    ``(N, 5, 2)`` person-relative (NaN for unknown points) or ``None``. With ``use_landmarks`` each face whose
    landmarks define a similarity is warped onto ``template`` (bilinear, black outside the image, as InsightFace's
    ``norm_crop``; unknown points are left out of the fit) at the size :func:`template_transforms` gives; every
    other face is its box crop.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    count = len(boxes)
    matrices = np.zeros((count, 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, :, 2] = -np.round(boxes[:, :2])
    points = np.zeros(count, dtype=np.int64)
    sides = np.zeros(count, dtype=np.int64)
    warped = np.zeros(count, dtype=bool)
    if use_landmarks and landmarks is not None and count:
        source = np.asarray(landmarks, dtype=np.float64).reshape(count, -1, 2)
        estimated, sides, warped = template_transforms(source, expand_percentage, template)
        matrices[warped] = estimated[warped]
        points[warped] = np.all(np.isfinite(source), axis=2).sum(axis=1)[warped]
    crops = []
    for i in range(count):  # one OpenCV call per face: warps of different sizes have no batched form
        if warped[i]:
            side = int(sides[i])
            crops.append(cv2.warpAffine(image, matrices[i], (side, side), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0))
        else:
            crops.append(crop(image, boxes[i]))
    return FaceCrops(crops, matrices, points)


def model_input(cut: FaceCrops, size: int) -> np.ndarray:
    """``(N, size, size, 3)`` uint8: each crop of ``cut`` resized into a recognition model's square with
    :func:`resize_into`. The one way a face reaches a model: :func:`align_faces` and the streaming core both use it,
    so a crop returned by ``extract_faces`` and embedded with ``detector_backend="skip"`` gives the same input."""
    pixels = np.empty((len(cut), size, size, 3), np.uint8)
    for i, face in enumerate(cut.crops):
        resize_into(pixels[i], face)
    return pixels


def align_faces(image: np.ndarray, boxes: np.ndarray, landmarks: Optional[np.ndarray], size: int = 112,
                template: np.ndarray = ARCFACE_TEMPLATE, use_landmarks: bool = True,
                expand_percentage: float = 0.0) -> AlignedFaces:
    """Every face of one HxWx3 image as a ``size`` square for a recognition model: the crops of
    :func:`face_crops` (same arguments) resized into the square by :func:`model_input`.

    Because the model's input is the crop resized, embedding a crop returned by ``extract_faces`` (a square of
    the same pixels) with ``detector_backend="skip"`` gives the same input, whatever the crop's size.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    cut = face_crops(image, boxes, landmarks, expand_percentage, use_landmarks, template)
    matrices = box_fit_transforms(boxes, size)
    for i, face in enumerate(cut.crops):
        if cut.points[i]:
            matrices[i] = cut.matrices[i] * (size / face.shape[0])
    return AlignedFaces(model_input(cut, size), matrices, cut.points)
