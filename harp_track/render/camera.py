"""Camera helpers: OpenCV intrinsics to clip space, orthographic projection, look-at.

Clip space follows nvdiffrast (x_ndc, y_ndc, z_ndc in [-1, 1], w = depth), with y_ndc = -1 at the
top row so that image row 0 of every rasterized tensor is the top row of the OpenCV image.
"""

from __future__ import annotations

from typing import Sequence

import torch

Number = float | torch.Tensor


def projection_from_intrinsics(
    fx: Number, fy: Number, cx: Number, cy: Number, image_size: Sequence[int],
    near: float = 0.01, far: float = 10.0,
    dtype: torch.dtype | None = None, device: torch.device | str | None = None,
) -> torch.Tensor:
    """Projection matrix taking OpenCV camera space (x right, y down, z forward; metres) to clip space.

    fx, fy, cx, cy: pixels, scalars or (B,) tensors; image_size: (H, W) pixels; near/far: metres.
    Returns (4, 4), or (B, 4, 4) when any intrinsic is batched. A point projecting to pixel (u, v)
    (OpenCV, pixel centres at +0.5) lands at x_ndc = 2u/W - 1, y_ndc = 2v/H - 1, and w = z.
    """
    ref = next((t for t in (fx, fy, cx, cy) if isinstance(t, torch.Tensor)), None)
    dtype = dtype or (ref.dtype if ref is not None and ref.is_floating_point() else torch.float32)
    device = device or (ref.device if ref is not None else None)
    fx, fy, cx, cy = (torch.as_tensor(t, dtype=dtype, device=device) for t in (fx, fy, cx, cy))
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    h, w = float(image_size[0]), float(image_size[1])
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    a = torch.full_like(fx, (far + near) / (far - near))
    b = torch.full_like(fx, -2.0 * far * near / (far - near))
    rows = [
        2.0 * fx / w, zero, 2.0 * cx / w - 1.0, zero,
        zero, 2.0 * fy / h, 2.0 * cy / h - 1.0, zero,
        zero, zero, a, b,
        zero, zero, one, zero,
    ]
    return torch.stack(rows, dim=-1).reshape(*fx.shape, 4, 4)


def orthographic_projection(
    half_width: Number, half_height: Number, near: Number, far: Number,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> torch.Tensor:
    """Orthographic projection of the view box [-hw, hw] x [-hh, hh] x [near, far] (metres) to clip space.

    Arguments are scalars or (B,) tensors; returns (4, 4) or (B, 4, 4). Same axis conventions as
    `projection_from_intrinsics`, with w = 1.
    """
    hw, hh, n, f = torch.broadcast_tensors(*(torch.as_tensor(t, dtype=dtype, device=device)
                                             for t in (half_width, half_height, near, far)))
    zero, one = torch.zeros_like(hw), torch.ones_like(hw)
    rows = [
        1.0 / hw, zero, zero, zero,
        zero, 1.0 / hh, zero, zero,
        zero, zero, 2.0 / (f - n), -(f + n) / (f - n),
        zero, zero, zero, one,
    ]
    return torch.stack(rows, dim=-1).reshape(*hw.shape, 4, 4)


def transform_points(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a homogeneous transform.

    points: (B, V, 3); matrix: (4, 4) or (B, 4, 4). Returns (B, V, 4) homogeneous points (clip space
    when `matrix` is a projection, or view space with w = 1 for a rigid transform).
    """
    if matrix.dim() == 2 or matrix.shape[0] == 1:  # one matmul over all points beats a batched one on the CPU
        m = matrix.reshape(4, 4)
        return torch.addmm(m[:, 3], points.reshape(-1, 3), m[:, :3].T).view(*points.shape[:-1], 4)
    return torch.baddbmm(matrix[:, None, :, 3], points, matrix[..., :, :3].transpose(-1, -2))


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-view rigid transform of a camera (or light) at `eye` looking at `target`.

    eye, target, up: (..., 3) metres. Returns (..., 4, 4) mapping world points into an OpenCV-style
    view frame (z towards the target, y towards -up on screen). `up` defaults to -y (OpenCV's up); it
    must not be parallel to the viewing direction.
    """
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype, device=eye.device)
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    x = torch.nn.functional.normalize(torch.linalg.cross(z, up), dim=-1)
    y = torch.linalg.cross(z, x)
    rot = torch.stack([x, y, z], dim=-2)
    t = -(rot @ eye.unsqueeze(-1))
    bottom = torch.zeros(*eye.shape[:-1], 1, 4, dtype=eye.dtype, device=eye.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([torch.cat([rot, t], dim=-1), bottom], dim=-2)
