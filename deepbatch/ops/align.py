"""Face alignment: DeepFace-style eye-levelled crops, and five-point similarity warps to the ArcFace template."""

from __future__ import annotations

from typing import Optional, Tuple

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


def eye_angle(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """Degrees to rotate (counter-clockwise, OpenCV's convention) so the eyes become level."""
    return float(np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])))


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of an xyxy box (rounded to whole pixels, at least 1x1)."""
    x1, y1 = int(round(float(box[0]))), int(round(float(box[1])))
    x2 = max(x1 + 1, int(round(float(box[2]))))
    y2 = max(y1 + 1, int(round(float(box[3]))))
    return image[y1:y2, x1:x2]


def rotation_about_box(box: np.ndarray, angle: float) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(2, 3) matrix that rotates the image by ``angle`` about the box centre and moves the box to the origin."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(1, int(round(x2 - x1))), max(1, int(round(y2 - y1)))
    matrix = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, 1.0)
    matrix[:, 2] += (w / 2 - (x1 + x2) / 2, h / 2 - (y1 + y2) / 2)
    return matrix, (w, h)


def aligned_crop(image: np.ndarray, box: np.ndarray, landmarks: Optional[np.ndarray]) -> np.ndarray:
    """The box's pixels with the eyes levelled (rotation about the box centre), as DeepFace's ``align=True``.

    Without usable eye landmarks the plain crop is returned. Pixels rotated in from outside the image are black.
    """
    if landmarks is None or not np.all(np.isfinite(landmarks[:2])):
        return crop(image, box)
    angle = eye_angle(landmarks[0], landmarks[1])
    if abs(angle) < 1e-3:
        return crop(image, box)
    matrix, size = rotation_about_box(box, angle)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, translation) mapping ``source`` onto ``target``.

    Points with NaN are ignored; at least two finite points are needed (Umeyama's method).
    """
    finite = np.all(np.isfinite(source), axis=1)
    src, dst = source[finite].astype(np.float64), target[finite].astype(np.float64)
    if len(src) < 2:
        raise ValueError("a similarity transform needs at least two finite landmarks")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / max((src_c ** 2).sum() / len(src), 1e-12)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def warp_to_template(image: np.ndarray, landmarks: np.ndarray, size: int = 112,
                     template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """``size`` x ``size`` face whose landmarks are moved onto ``template`` (scaled from 112) by a similarity."""
    matrix = similarity_transform(landmarks, template * (size / 112.0))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
