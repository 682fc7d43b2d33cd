"""Rotation conversions used by the hand models (batched, differentiable)."""

from __future__ import annotations

import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula.

    axis_angle: (..., 3) rotation vectors, radians. Returns (..., 3, 3) rotation matrices.
    Exact and differentiable at zero: the Taylor series replaces sin(t)/t and (1-cos t)/t² below
    1e-4 rad, where the closed forms lose precision or divide by zero.
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    safe_theta2 = torch.where(small, torch.ones_like(theta2), theta2)
    safe_theta = safe_theta2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(safe_theta) / safe_theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(safe_theta)) / safe_theta2)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of `axis_angle_to_matrix`, angles in [0, pi].

    matrix: (..., 3, 3) rotations. Returns (..., 3) rotation vectors, radians. Near pi the skew
    part vanishes, so the axis comes from the symmetric part, (R + R^T) / 2 = cos I + (1 - cos) a a^T.
    """
    cos = ((matrix.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) * 0.5).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    skew = torch.stack(
        [matrix[..., 2, 1] - matrix[..., 1, 2],
         matrix[..., 0, 2] - matrix[..., 2, 0],
         matrix[..., 1, 0] - matrix[..., 0, 1]], dim=-1)
    sin = torch.sin(angle)
    small = angle < 1e-3
    safe_sin = torch.where(small, torch.ones_like(sin), sin)
    scale = torch.where(small, 0.5 + angle * angle / 12.0, angle / (2.0 * safe_sin))
    result = skew * scale[..., None]

    eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
    sym = (0.5 * (matrix + matrix.transpose(-1, -2)) - cos[..., None, None] * eye) / (1.0 - cos).clamp_min(1e-6)[..., None, None]
    column = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
    axis = torch.take_along_dim(sym, column[..., None, None].expand(*column.shape, 3, 1), dim=-1)[..., 0]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = torch.where((axis * skew).sum(-1, keepdim=True) < 0, -axis, axis)  # agree with the skew part
    near_pi = angle > torch.pi - 1e-2
    return torch.where(near_pi[..., None], axis * angle[..., None], result)


def palm_to_camera(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3, 3) rotation turning a model's zero-pose axes (palm -x, fingers +y, thumb +z) so that the
    palm faces an OpenCV camera (x right, y down, z forward) with the fingers pointing up."""
    # Columns are where the model's x, y and z go: x -> +z (palm -x faces the camera), y -> -y.
    return torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype).T
