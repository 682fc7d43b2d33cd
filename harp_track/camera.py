"""Pinhole cameras in OpenCV's convention (x right, y down, z forward; pixel (0, 0) is the top-left
corner of the top-left pixel, so its centre is at (0.5, 0.5))."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

DEFAULT_FOV_DEG = 60.0


@dataclasses.dataclass(frozen=True)
class Camera:
    """Intrinsics in pixels. `assumed` marks intrinsics guessed from a default field of view."""

    fx: float
    fy: float
    cx: float
    cy: float
    assumed: bool = False

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera intrinsics must be finite with fx, fy > 0, got {values}")

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> "Camera":
        """A centred camera with the given horizontal field of view; marked as assumed."""
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(f, f, width / 2, height / 2, assumed=True)

    def project(self, points: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """(..., 3) camera-space metres → (..., 2) pixels; a tensor gives a tensor, a numpy array
        a numpy array (the tracker's per-frame path stays in numpy, without a torch round trip)."""
        focal, centre = (self.fx, self.fy), (self.cx, self.cy)
        if isinstance(points, torch.Tensor):
            focal, centre = points.new_tensor(focal), points.new_tensor(centre)
        else:
            points, focal, centre = np.asarray(points), np.array(focal), np.array(centre)
        return points[..., :2] / points[..., 2:3] * focal + centre
