"""Annotated copies of images for a person to check detections by eye: boxes, scores and landmarks.

Boxes are green with the score above them; the five landmarks are dots, each in its own colour so that a swapped
eye order shows at a glance: the person's left eye (on the right of the picture) red, the right eye blue, the nose
green, the mouth's left corner magenta, its right corner cyan. Unknown landmarks (NaN) are not drawn. Line widths and
text scale with the image size.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .structures import LANDMARK_NAMES, Faces

BGR = Tuple[int, int, int]
BOX_COLOR: BGR = (0, 200, 0)
LANDMARK_COLORS: Dict[str, BGR] = {
    "left_eye": (0, 0, 255),
    "right_eye": (255, 0, 0),
    "nose": (0, 255, 0),
    "mouth_left": (255, 0, 255),
    "mouth_right": (255, 255, 0),
}


def _scale(image: np.ndarray) -> float:
    """Drawing scale: 1.0 for a 640-pixel image side, proportional above and below (at least 0.5)."""
    return max(0.5, max(image.shape[:2]) / 640.0)


def draw_faces(image: np.ndarray, faces: Faces, box_color: BGR = BOX_COLOR) -> np.ndarray:
    """A copy of the HxWx3 uint8 BGR ``image`` with ``faces`` drawn on it (``faces`` in that image's pixels)."""
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    scale = _scale(canvas)
    thickness = max(1, int(round(2 * scale)))
    radius = max(2, int(round(3 * scale)))
    font_scale = 0.5 * scale
    height = canvas.shape[0]
    for face in faces:
        x1, y1, x2, y2 = (int(round(float(v))) for v in face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), box_color, thickness)  # axis-aligned: no anti-aliasing needed
        label = f"{face.score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y1 - text_h - baseline - thickness if y1 - text_h - baseline - thickness >= 0 else min(y2, height - 1)
        cv2.rectangle(canvas, (x1, top), (x1 + text_w + 2 * thickness, top + text_h + baseline + thickness),
                      box_color, cv2.FILLED)
        cv2.putText(canvas, label, (x1 + thickness, top + text_h + thickness // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
        if face.landmarks is None:
            continue
        for name, point in zip(LANDMARK_NAMES, face.landmarks):
            if np.all(np.isfinite(point)):
                center = (int(round(float(point[0]))), int(round(float(point[1]))))
                cv2.circle(canvas, center, radius, LANDMARK_COLORS[name], cv2.FILLED, cv2.LINE_AA)
    return canvas
