"""Drawing helpers for overlays (OpenCV; images are H x W x 3 uint8 RGB)."""

from __future__ import annotations

import cv2
import numpy as np

from .keypoints import KEYPOINT_PARENTS

_FINGER_COLOURS = ((230, 80, 60), (240, 200, 40), (60, 200, 90), (50, 140, 240), (180, 90, 230))  # RGB


def draw_skeleton(image: np.ndarray, keypoints_2d: np.ndarray, radius: int = 3, thickness: int = 2) -> np.ndarray:
    """Draw the 21-keypoint skeleton (pixels, (21, 2)) onto a copy of `image`, one colour a finger."""
    out = np.ascontiguousarray(image).copy()
    pts = np.round(np.asarray(keypoints_2d, dtype=np.float64) * 16).astype(np.int32)  # 4 fractional bits
    for k, parent in enumerate(KEYPOINT_PARENTS):
        if parent >= 0:
            colour = _FINGER_COLOURS[(k - 1) // 4]
            cv2.line(out, tuple(pts[parent]), tuple(pts[k]), colour, thickness, cv2.LINE_AA, shift=4)
    for k in range(len(pts)):
        colour = (255, 255, 255) if k == 0 else _FINGER_COLOURS[(k - 1) // 4]
        cv2.circle(out, tuple(pts[k]), radius * 16, colour, -1, cv2.LINE_AA, shift=4)
        cv2.circle(out, tuple(pts[k]), radius * 16, (0, 0, 0), 1, cv2.LINE_AA, shift=4)
    return out


def to_uint8(image) -> np.ndarray:
    """A float image in [0, 1] (numpy or torch, H x W x C) as uint8."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
