"""The part of the landmarks that the hand model cannot express, kept in the tracker's output.

Even at its best fit, the model's keypoints miss the landmarks by a few pixels, most at the
fingertips: its proportions and joint limits are not quite the user's (measured on real frames,
docs/benchmarks.md). That miss follows the hand's build and changes slowly, while landmark noise
changes every frame. So we low-pass the per-keypoint miss, in units of the hand's image size
(so it survives the hand moving nearer or farther), and add it back to the filtered fit's
joints, each moved within the image plane at its own depth: the joints then project where the
landmarks put them, without their noise, and the model's pose, mesh and depth are unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from ..camera import Camera


class LandmarkDetail:
    """Low-passes the landmarks' offsets from a fit's keypoints, frame after frame, for one hand.

    time_constant: seconds, of the exponential smoothing. max_fraction: each keypoint's offset
    is capped at this fraction of the hand's image size, so a landmark that has gone astray (a
    swapped finger) moves the output little.
    """

    def __init__(self, time_constant: float, max_fraction: float = 0.05):
        if time_constant <= 0:
            raise ValueError(f"time_constant must be positive seconds, got {time_constant}")
        self.time_constant, self.max_fraction = time_constant, max_fraction
        self._offset: np.ndarray | None = None  # (21, 2) in hand sizes
        self._t: float | None = None

    def __call__(self, landmarks: np.ndarray, fitted: np.ndarray, t: float) -> np.ndarray:
        """(21, 2) pixel offsets to add to the fit's keypoints, from this frame's (21, 2) pixel
        landmarks, the (21, 2) pixel projection of the fit's keypoints and its time t (seconds)."""
        size = max(float(np.linalg.norm(landmarks.max(0) - landmarks.min(0))), 1.0)
        offset = (np.asarray(landmarks, np.float64) - fitted) / size
        length = np.linalg.norm(offset, axis=1, keepdims=True)
        offset *= np.minimum(1.0, self.max_fraction / np.maximum(length, 1e-12))
        if self._offset is None or self._t is None or t <= self._t:
            self._offset = offset
        else:
            weight = 1.0 - math.exp(-(t - self._t) / self.time_constant)
            self._offset = self._offset + weight * (offset - self._offset)
        self._t = t
        return self._offset * size


def shift_in_image(joints: np.ndarray, offsets_px: np.ndarray, camera: Camera) -> np.ndarray:
    """(21, 3) camera-space joints (metres) moved parallel to the image plane, each at its own
    depth, so that its projection moves by (21, 2) pixels `offsets_px`."""
    moved = np.array(joints, dtype=np.float64)
    moved[:, :2] += offsets_px / np.array([camera.fx, camera.fy]) * moved[:, 2:3]
    return moved
