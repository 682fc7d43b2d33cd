"""Rotated square regions of interest in pixels, computed as MediaPipe's hand graphs do
(HandLandmarksToRectCalculator, DetectionsToRectsCalculator, RectTransformationCalculator), and
the affine maps between an image and a crop of one."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# The landmarks MediaPipe trusts for the next frame's box: wrist, thumb base, and the two lowest
# joints of each finger; fingertips move too fast to be stable.
STABLE_LANDMARKS = np.array([0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18])
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13
# Box expansion from landmarks (hand_landmark_landmarks_to_roi) and from a palm detection
# (palm_detection_detection_to_roi): scale of the rotated box, shift along its y axis (in box heights).
LANDMARK_ROI_SCALE, LANDMARK_ROI_SHIFT_Y = 2.0, -0.1
PALM_ROI_SCALE, PALM_ROI_SHIFT_Y = 2.6, -0.5


@dataclasses.dataclass(frozen=True)
class Roi:
    """A square crop: centre (pixels), side (pixels), rotation (radians; positive turns the crop's
    up axis from the image's up towards the image's right, so fingers point up in the crop)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def crop_to_image(self, crop_size: int) -> np.ndarray:
        """(2, 3) affine map from crop pixels (0..crop_size, corner convention) to image pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.size / crop_size
        linear = np.array([[c, -s], [s, c]]) * k
        offset = np.array([self.cx, self.cy]) - linear @ np.array([crop_size / 2, crop_size / 2])
        return np.hstack([linear, offset[:, None]])

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the square without its rotation: what MediaPipe's
        AssociationNormRectCalculator compares to tell whether two crops hold the same hand."""
        half = 0.5 * self.size
        return self.cx - half, self.cy - half, self.cx + half, self.cy + half

def target_rotation(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that makes start→end (pixels) point up in the crop, in [-π, π)."""
    angle = math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0])
    return (angle + math.pi) % (2 * math.pi) - math.pi


def expand(cx: float, cy: float, width: float, height: float, rotation: float,
           scale: float, shift_y: float) -> Roi:
    """RectTransformationCalculator: shift along the rotated y axis, make square on the long side,
    then scale."""
    cx += -height * shift_y * math.sin(rotation)
    cy += height * shift_y * math.cos(rotation)
    return Roi(cx, cy, max(width, height) * scale, rotation)


def roi_from_landmarks(image_xy: np.ndarray) -> Roi:
    """The next frame's crop from this frame's (21, 2) pixel landmarks."""
    points = image_xy[STABLE_LANDMARKS].astype(np.float64)
    palm_top = 0.5 * (0.5 * (image_xy[INDEX_MCP] + image_xy[RING_MCP]) + image_xy[MIDDLE_MCP])
    rotation = target_rotation(image_xy[WRIST], palm_top)
    centre = 0.5 * (points.min(0) + points.max(0))
    c, s = math.cos(rotation), math.sin(rotation)
    # Extent in the hand's own frame (rotated by -rotation), then its centre back in the image.
    rel = points - centre
    local = rel @ np.array([[c, -s], [s, c]])
    lo, hi = local.min(0), local.max(0)
    mid = 0.5 * (lo + hi)
    cx = centre[0] + c * mid[0] - s * mid[1]
    cy = centre[1] + s * mid[0] + c * mid[1]
    width, height = hi - lo
    return expand(cx, cy, width, height, rotation, LANDMARK_ROI_SCALE, LANDMARK_ROI_SHIFT_Y)


def roi_from_palm(box_xyxy: np.ndarray, wrist: np.ndarray, middle_mcp: np.ndarray) -> Roi:
    """The landmark crop for a palm detection: its axis-aligned box and two keypoints, pixels."""
    x0, y0, x1, y1 = box_xyxy
    rotation = target_rotation(wrist, middle_mcp)
    return expand(0.5 * (x0 + x1), 0.5 * (y0 + y1), x1 - x0, y1 - y0, rotation,
                  PALM_ROI_SCALE, PALM_ROI_SHIFT_Y)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
