"""DeepFace's own face crop and resize, for the recognizers that must give DeepFace's embeddings.

DeepFace does not warp a face onto a template: with ``align`` it rotates a region twice the box's size about its
centre so the eyes are level (bicubic, black outside the image), projects the box's centre through the rotation
and cuts a box of the original size there; without ``align`` (or without both eyes) the box's pixels. The model
then reads the crop as RGB float in [0, 1] turned back to BGR, shrunk to fit its input with the aspect ratio kept,
centred on black (:func:`deepface_resize`). Boxes and eyes are whole pixels, as DeepFace casts them.

Ported from ``deepface/modules/detection.py`` (``extract_face``, ``extract_sub_image``, ``align_img_wrt_eyes``,
``project_facial_area``) and ``deepface/modules/preprocessing.py`` (``resize_image``); the tests compare them with
DeepFace's own functions.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import cv2
import numpy as np

from ..errors import UnsupportedNormalizationError
from .align import FaceCrops


def _whole(box: np.ndarray) -> Tuple[int, int, int, int]:
    """An xyxy float box as DeepFace's integer ``(x, y, w, h)``."""
    x, y = int(box[0]), int(box[1])
    return x, y, int(box[2]) - x, int(box[3]) - y


def sub_image(image: np.ndarray, x: int, y: int, w: int, h: int) -> Tuple[np.ndarray, int, int]:
    """The region of twice the box's size around it (black where it leaves the image), and the box's offset in it."""
    rx, ry = int(0.5 * w), int(0.5 * h)
    x1, y1, x2, y2 = x - rx, y - ry, x + w + rx, y + h + ry
    out = np.zeros((h + 2 * ry, w + 2 * rx, image.shape[2]), dtype=image.dtype)
    cx1, cy1 = max(0, x1), max(0, y1)
    cx2, cy2 = min(image.shape[1], x2), min(image.shape[0], y2)
    if cx2 > cx1 and cy2 > cy1:
        out[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] = image[cy1:cy2, cx1:cx2]
    return out, rx, ry


def projected_box(box: Tuple[int, int, int, int], angle: float, size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` of the box after the region of ``size`` ``(height, width)`` rotated by ``angle`` degrees
    (DeepFace's ``project_facial_area``)."""
    direction = 1 if angle >= 0 else -1
    angle = abs(angle) % 360
    if angle == 0:
        return box
    radians = angle * np.pi / 180
    height, width = size
    x = (box[0] + box[2]) / 2 - width / 2
    y = (box[1] + box[3]) / 2 - height / 2
    x_new = x * np.cos(radians) + y * direction * np.sin(radians) + width / 2
    y_new = -x * direction * np.sin(radians) + y * np.cos(radians) + height / 2
    half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return (max(int(x_new - half_w), 0), max(int(y_new - half_h), 0), min(int(x_new + half_w), width),
            min(int(y_new + half_h), height))


def deepface_crop(image: np.ndarray, box: np.ndarray, left_eye: Optional[np.ndarray],
                  right_eye: Optional[np.ndarray], align: bool) -> Tuple[np.ndarray, np.ndarray]:
    """One face as DeepFace cuts it: ``(crop, matrix)``, the uint8 crop and the ``(2, 3)`` map from image pixels to
    crop pixels. ``box`` is xyxy in image pixels; the eyes are person-relative ``(x, y)`` or None."""
    height, width = image.shape[:2]
    x, y, w, h = _whole(box)
    w = max(0, min(width, x + w) - max(0, x))
    h = max(0, min(height, y + h) - max(0, y))
    x, y = max(0, x), max(0, y)
    eyes = None if left_eye is None or right_eye is None else (
        (int(left_eye[0]), int(left_eye[1])), (int(right_eye[0]), int(right_eye[1])))
    if not align:
        return image[y : y + h, x : x + w], np.array([[1.0, 0.0, -x], [0.0, 1.0, -y]])
    region, rx, ry = sub_image(image, x, y, w, h)
    angle = 0.0
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if eyes is not None and region.shape[0] and region.shape[1]:
        (lx, ly), (rx_, ry_) = eyes
        angle = float(np.degrees(np.arctan2(ly - ry_, lx - rx_)))
        rh, rw = region.shape[:2]
        rotation = cv2.getRotationMatrix2D((rw // 2, rh // 2), angle, 1.0)
        region = cv2.warpAffine(region, rotation, (rw, rh), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=(0, 0, 0))
    x1, y1, x2, y2 = projected_box((rx, ry, rx + w, ry + h), angle, (region.shape[0], region.shape[1]))
    # image -> region (shift), region -> rotated region, rotated region -> crop (shift)
    to_region = np.array([[1.0, 0.0, rx - x], [0.0, 1.0, ry - y], [0.0, 0.0, 1.0]])
    matrix = (np.vstack([rotation, [0.0, 0.0, 1.0]]) @ to_region)[:2]
    matrix[:, 2] -= (x1, y1)
    return region[int(y1) : int(y2), int(x1) : int(x2)], matrix


def deepface_crops(image: np.ndarray, boxes: np.ndarray, landmarks: Optional[np.ndarray], align: bool) -> FaceCrops:
    """Every face of one image as DeepFace cuts it (see :func:`deepface_crop`); ``points`` is 2 for a face rotated
    by its eyes, 0 for a box crop. ``landmarks`` is ``(N, K, 2)`` person-relative (eyes first, NaN unknown)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    crops, matrices = [], np.zeros((len(boxes), 2, 3))
    points = np.zeros(len(boxes), np.int64)
    for i, box in enumerate(boxes):  # one rotation per face, each of its own size: no batched form
        eyes: Tuple[Optional[np.ndarray], Optional[np.ndarray]] = (None, None)
        if landmarks is not None and np.all(np.isfinite(landmarks[i, :2])):
            eyes = (landmarks[i, 0], landmarks[i, 1])
        crop, matrices[i] = deepface_crop(image, box, eyes[0], eyes[1], align)
        crops.append(crop)
        points[i] = 2 if align and eyes[0] is not None else 0
    return FaceCrops(crops, matrices, points)


def deepface_resize(face: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``face`` (HxWx3, uint8 or float in [0, 1]) fitted into ``size`` ``(height, width)`` as DeepFace's
    ``resize_image``: shrunk or grown with the aspect ratio kept (bilinear), centred on black, float32 in [0, 1]
    (uint8 input is resized as uint8, then divided by 255, as DeepFace does for ``detector_backend="skip"``)."""
    factor = min(size[0] / face.shape[0], size[1] / face.shape[1])
    resized = cv2.resize(face, (int(face.shape[1] * factor), int(face.shape[0] * factor)))
    if resized.ndim == 2:
        resized = resized[:, :, None]
    d0, d1 = size[0] - resized.shape[0], size[1] - resized.shape[1]
    padded = np.pad(resized, ((d0 // 2, d0 - d0 // 2), (d1 // 2, d1 - d1 // 2), (0, 0)), "constant")
    if padded.shape[:2] != tuple(size):
        padded = cv2.resize(padded, size)
    out = np.asarray(padded, dtype=np.float32)
    if out.max() > 1:
        out = (out / 255.0).astype(np.float32)
    return out


def deepface_normalize(faces: np.ndarray, normalization: str) -> np.ndarray:
    """DeepFace's ``normalize_input`` over a batch ``(N, H, W, 3)`` of BGR faces in [0, 1] (float32, in place where
    it can): ``base`` leaves them; the others rescale to [0, 255] first; ``Facenet`` standardises each face."""
    if normalization == "base":
        return faces
    faces = faces * np.float32(255)
    if normalization == "raw":
        return faces
    if normalization == "Facenet":
        flat = faces.reshape(len(faces), -1)
        mean = flat.mean(axis=1, keepdims=True)
        std = np.maximum(flat.std(axis=1, keepdims=True), 1 / math.sqrt(flat.shape[1]))
        return ((flat - mean) / std).reshape(faces.shape).astype(np.float32)
    if normalization == "Facenet2018":
        return faces / np.float32(127.5) - np.float32(1)
    if normalization in ("VGGFace", "VGGFace2"):
        means = (93.5940, 104.7624, 129.1863) if normalization == "VGGFace" else (91.4953, 103.8827, 131.0912)
        return faces - np.asarray(means, np.float32)
    if normalization == "ArcFace":
        return (faces - np.float32(127.5)) / np.float32(128)
    from ..recognition.normalization import NORMALIZATION_NAMES

    raise UnsupportedNormalizationError(normalization, NORMALIZATION_NAMES)
