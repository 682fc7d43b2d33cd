"""Square crops of a frame around a hand, with the crop's own camera, in torch (CPU or CUDA)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Camera


@dataclasses.dataclass
class Crop:
    """image (S, S, 3) float32 in [0, 1]; valid (S, S) float32, 0 where the box left the frame;
    camera: intrinsics of the crop; box: (x0, y0, side) of the source region in frame pixels."""

    image: torch.Tensor
    valid: torch.Tensor
    camera: Camera
    box: tuple[int, int, int]


def hand_box(points_2d: np.ndarray, margin: float = 0.25) -> tuple[int, int, int]:
    """(x0, y0, side) of the square around (N, 2) pixel points, widened by `margin` of its side on
    every side."""
    lo, hi = points_2d.min(0), points_2d.max(0)
    side = max(float((hi - lo).max()), 8.0) * (1 + 2 * margin)
    x0, y0 = np.floor((lo + hi) / 2 - side / 2).astype(int)
    return int(x0), int(y0), int(np.ceil(side))


def crop_square(frame: torch.Tensor, camera: Camera, box: tuple[int, int, int], size: int) -> Crop:
    """Resample the box (x0, y0, side) of an (H, W, 3) uint8 frame tensor to size x size (area
    filtering when shrinking; zeros outside the frame). Runs on the frame's device."""
    x0, y0, side = box
    height, width = frame.shape[:2]
    region = frame.new_zeros(side, side, 4)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if xb > xa and yb > ya:
        region[ya - y0:yb - y0, xa - x0:xb - x0, :3] = frame[ya:yb, xa:xb]
        region[ya - y0:yb - y0, xa - x0:xb - x0, 3] = 255
    region = region.permute(2, 0, 1)[None].float() / 255.0
    out = F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)[0]
    return Crop(out[:3].permute(1, 2, 0).contiguous(), (out[3] > 0.999).float(), crop_camera(camera, box, size), box)


def crop_camera(camera: Camera, box: tuple[int, int, int], size: int) -> Camera:
    """The intrinsics of the box (x0, y0, side) resampled to size x size pixels."""
    x0, y0, side = box
    s = size / side
    # Pixel corners map to pixel corners: u' = (u - x0) s, so the principal point moves likewise.
    return Camera(camera.fx * s, camera.fy * s, (camera.cx - x0) * s, (camera.cy - y0) * s, assumed=camera.assumed)
