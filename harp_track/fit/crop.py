"""Square crops of a frame around a hand, with the crop's own camera (numpy and numba, on the CPU:
a crop of a few thousand pixels costs more in per-op overhead than in arithmetic, on either device)."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from ..camera import Camera


@dataclasses.dataclass
class Crop:
    """image (S, S, 3) float32 in [0, 1]; valid (S, S) float32, 0 where the box left the frame;
    camera: intrinsics of the crop; box: (x0, y0, side) of the source region in frame pixels."""

    image: np.ndarray
    valid: np.ndarray
    camera: Camera
    box: tuple[int, int, int]


def hand_box(points_2d: np.ndarray, margin: float = 0.25) -> tuple[int, int, int]:
    """(x0, y0, side) of the square around (N, 2) pixel points, widened by `margin` of its side on
    every side."""
    lo, hi = points_2d.min(0), points_2d.max(0)
    side = max(float((hi - lo).max()), 8.0) * (1 + 2 * margin)
    x0, y0 = np.floor((lo + hi) / 2 - side / 2).astype(int)
    return int(x0), int(y0), int(np.ceil(side))


def crop_square(frame: np.ndarray, camera: Camera, box: tuple[int, int, int], size: int) -> Crop:
    """Resample the box (x0, y0, side) of an (H, W, 3) uint8 frame to size x size: a triangle
    filter as wide as the scale when shrinking (area-like, no aliasing), bilinear when enlarging
    (torch's `interpolate(mode="bilinear", antialias=True)`, which the tests hold it to); zeros
    outside the frame."""
    x0, y0, side = box
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"crop_square needs an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    first, weights = _triangle_taps(side, size)
    image, valid = _resample(np.ascontiguousarray(frame), x0, y0, side, first, weights)
    return Crop(image, valid, crop_camera(camera, box, size), box)


def crop_camera(camera: Camera, box: tuple[int, int, int], size: int) -> Camera:
    """The intrinsics of the box (x0, y0, side) resampled to size x size pixels."""
    x0, y0, side = box
    s = size / side
    # Pixel corners map to pixel corners: u' = (u - x0) s, so the principal point moves likewise.
    return Camera(camera.fx * s, camera.fy * s, (camera.cx - x0) * s, (camera.cy - y0) * s, assumed=camera.assumed)


@numba.njit(cache=True)
def _triangle_taps(side: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `size` output pixels, the first of the `side` input pixels it reads and the
    normalised weights of those it reads (size, taps). Pixel centres at half-integers; the
    triangle filter is stretched by the scale when shrinking (Pillow's and torch's antialiased
    resampling), plain bilinear when enlarging."""
    scale = side / size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    first = np.zeros(size, np.int64)
    weights = np.zeros((size, int(2 * support) + 2))
    for i in range(size):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), side)
        total = 0.0
        for j in range(hi - lo):
            w = max(0.0, 1.0 - abs((j + lo - centre + 0.5) * invscale))
            weights[i, j] = w
            total += w
        if total > 0:
            weights[i] /= total
        first[i] = lo
    return first, weights


@numba.njit(cache=True)
def _resample(frame: np.ndarray, x0: int, y0: int, side: int, first: np.ndarray,
              weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box resampled separably with the taps of `_triangle_taps`: (S, S, 3) float32 RGB in
    [0, 1] and (S, S) float32 validity (1 where all it reads lies inside the frame)."""
    height, width = frame.shape[0], frame.shape[1]
    size, taps = weights.shape
    rows = np.zeros((side, size, 4))  # each row of the box resampled across: RGB, share inside
    for ry in range(max(0, -y0), min(side, height - y0)):
        y = y0 + ry
        for i in range(size):
            r = g = b = inside = 0.0
            for j in range(taps):
                x = x0 + first[i] + j
                if 0 <= x < width:
                    w = weights[i, j]
                    r += w * frame[y, x, 0]
                    g += w * frame[y, x, 1]
                    b += w * frame[y, x, 2]
                    inside += w
            rows[ry, i, 0], rows[ry, i, 1], rows[ry, i, 2], rows[ry, i, 3] = r, g, b, inside
    image, valid = np.empty((size, size, 3), np.float32), np.empty((size, size), np.float32)
    for i in range(size):
        for k in range(size):
            r = g = b = inside = 0.0
            for j in range(taps):
                w = weights[i, j]
                if w != 0.0:
                    ry = first[i] + j
                    r += w * rows[ry, k, 0]
                    g += w * rows[ry, k, 1]
                    b += w * rows[ry, k, 2]
                    inside += w * rows[ry, k, 3]
            image[i, k, 0], image[i, k, 1], image[i, k, 2] = r / 255.0, g / 255.0, b / 255.0
            valid[i, k] = 1.0 if inside > 0.999 else 0.0
    return image, valid
