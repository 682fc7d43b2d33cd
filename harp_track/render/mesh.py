"""Mesh utilities for rendering: midpoint subdivision, vertex normals and tangents, the open rim."""

from __future__ import annotations

import numpy as np
import torch

from . import ops


def _edge_midpoints(faces: torch.Tensor, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique edges of `faces` and, per face corner k, the new vertex on edge (k, k+1)."""
    faces = faces.long()
    edges = torch.stack([faces, faces.roll(-1, dims=1)], dim=-1).reshape(-1, 2)  # (3F, 2)
    key = edges.min(-1).values * num_vertices + edges.max(-1).values
    unique_key, inverse = torch.unique(key, return_inverse=True)
    pairs = torch.stack([unique_key // num_vertices, unique_key % num_vertices], dim=-1)
    return pairs, num_vertices + inverse.reshape(-1, 3)


def _split_faces(faces: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
    a, b, c = faces.long().unbind(-1)
    mab, mbc, mca = mid.unbind(-1)
    return torch.stack([
        torch.stack([a, mab, mca], -1), torch.stack([mab, b, mbc], -1),
        torch.stack([mca, mbc, c], -1), torch.stack([mab, mbc, mca], -1),
    ], dim=1).reshape(-1, 3)


def subdivide(
    vertices: torch.Tensor, faces: torch.Tensor,
    uvs: torch.Tensor | None = None, faces_uv: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One level of midpoint subdivision (each triangle becomes 4, orientation preserved).

    vertices: (..., V, 3) metres (any leading batch dims; differentiable, the new vertices are edge
    midpoints); faces: (F, 3) int; uvs: (T, 2) and faces_uv: (F, 3) int, subdivided on their own
    topology so UV seams are kept. Returns (vertices (..., V+E, 3), faces (4F, 3) int32,
    uvs (T+E_uv, 2) or None, faces_uv (4F, 3) int32 or None); face order matches between the two.
    """
    pairs, mid = _edge_midpoints(faces, vertices.shape[-2])
    new_vertices = torch.cat([vertices, 0.5 * (vertices[..., pairs[:, 0], :] + vertices[..., pairs[:, 1], :])], -2)
    new_faces = _split_faces(faces, mid).to(torch.int32)
    new_uvs = new_faces_uv = None
    if uvs is not None and faces_uv is not None:
        uv_pairs, uv_mid = _edge_midpoints(faces_uv, uvs.shape[-2])
        new_uvs = torch.cat([uvs, 0.5 * (uvs[..., uv_pairs[:, 0], :] + uvs[..., uv_pairs[:, 1], :])], -2)
        new_faces_uv = _split_faces(faces_uv, uv_mid).to(torch.int32)
    return new_vertices, new_faces, new_uvs, new_faces_uv


def open_rim_faces(faces: torch.Tensor) -> torch.Tensor:
    """(F,) bool: the faces with a corner on the mesh's open boundary (edges that only one face
    uses; on a hand model, the cut at the wrist). faces: (F, 3) int."""
    faces = faces.long()
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    unique, counts = torch.unique(edges, dim=0, return_counts=True)
    on_rim = torch.zeros(int(faces.max()) + 1, dtype=torch.bool, device=faces.device)
    on_rim[unique[counts == 1].reshape(-1)] = True
    return on_rim[faces].any(1)


def _flat_corners(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Face corner indices into vertices.reshape(-1, 3), one (B * F,) tensor per corner."""
    nb, nv = vertices.shape[:2]
    off = (torch.arange(nb, device=vertices.device) * nv)[:, None]
    return tuple((faces[:, k].long() + off).reshape(-1) for k in range(3))


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unnormalized face normals (twice the area; right-hand rule over the corner order).

    vertices: (B, V, 3); faces: (F, 3). Returns (B, F, 3).
    """
    flat = vertices.reshape(-1, 3)
    i0, i1, i2 = _flat_corners(vertices, faces)
    v0 = flat[i0]
    return torch.linalg.cross(flat[i1] - v0, flat[i2] - v0).view(vertices.shape[0], -1, 3)


class _VertexNormalsNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vertices, faces):
        v = ops._np(vertices)
        acc = np.zeros_like(v)
        out = np.zeros_like(v)
        ops._kernels.vertex_normals_fwd(v, faces.numpy(), acc, out)
        ctx.save_for_backward(vertices, faces)
        ctx.acc = acc
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        vertices, faces = ctx.saved_tensors
        v = ops._np(vertices)
        gv = np.zeros_like(v)
        ops._kernels.vertex_normals_bwd(v, faces.numpy(), ctx.acc, ops._np(grad).astype(v.dtype, copy=False), gv,
                                        np.empty(v.shape[1:], dtype=v.dtype))
        return torch.from_numpy(gv), None


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals. vertices: (B, V, 3); faces: (F, 3). Returns (B, V, 3)."""
    if ops._use_kernels(vertices):
        return _VertexNormalsNumba.apply(vertices, ops._tri32(faces))
    fn = face_normals(vertices, faces).reshape(-1, 3)
    acc = torch.zeros_like(vertices.reshape(-1, 3))
    for corner in _flat_corners(vertices, faces):
        acc = acc.index_add(0, corner, fn)
    return torch.nn.functional.normalize(acc.view_as(vertices), dim=-1, eps=1e-12)


def vertex_tangents(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
                    faces_uv: torch.Tensor) -> torch.Tensor:
    """Per-UV-vertex tangents (direction of increasing u), for tangent-space normal mapping.

    vertices: (B, V, 3); faces: (F, 3); uvs: (T, 2); faces_uv: (F, 3). Returns (B, T, 4): unit tangent
    and, in w, the handedness sign (+1/-1) of the (tangent, bitangent, normal) frame. Accumulated on
    UV vertices rather than position vertices because tangents are only continuous within a UV chart.
    """
    nb, nt = vertices.shape[0], uvs.shape[0]
    if ops._use_kernels(vertices, uvs) and not (torch.is_grad_enabled() and (vertices.requires_grad or uvs.requires_grad)):
        acc = np.zeros((nb, nt, 4), dtype=ops._np(vertices).dtype)
        ops._kernels.vertex_tangents_fwd(ops._np(vertices), ops._tri32(faces).numpy(),
                                         ops._np(uvs).astype(acc.dtype, copy=False), ops._tri32(faces_uv).numpy(), acc)
        out = np.empty_like(acc)
        ops._kernels.tangent_frames(acc, out)
        return torch.from_numpy(out)
    else:
        acc = _tangent_sums(vertices, faces, uvs, faces_uv)
    t = torch.nn.functional.normalize(acc[..., :3], dim=-1, eps=1e-12)
    return torch.cat([t, torch.where(acc[..., 3:] < 0, -1.0, 1.0).to(vertices.dtype)], -1)


def _tangent_sums(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor, faces_uv: torch.Tensor) -> torch.Tensor:
    flat = vertices.reshape(-1, 3)
    v0, v1, v2 = (flat.index_select(0, c) for c in _flat_corners(vertices, faces))
    nb, nt = vertices.shape[0], uvs.shape[0]
    fu = faces_uv.long()
    t0, t1, t2 = (uvs.index_select(0, fu[:, k]).repeat(nb, 1) for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    d1, d2 = t1 - t0, t2 - t0
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    # Multiplying by sign(det) instead of dividing by det keeps degenerate UV triangles finite and
    # weights each face by its size, which is what the accumulation below wants.
    sign = torch.where(det < 0, -1.0, 1.0).to(vertices.dtype)[:, None]
    tangent = (e1 * d2[:, 1:] - e2 * d1[:, 1:]) * sign
    bitangent = (e2 * d1[:, :1] - e1 * d2[:, :1]) * sign
    handed = torch.where((torch.linalg.cross(torch.linalg.cross(e1, e2), tangent) * bitangent).sum(-1) < 0, -1.0, 1.0)
    vals = torch.cat([tangent, handed.to(vertices.dtype)[:, None]], -1)
    off = (torch.arange(nb, device=vertices.device) * nt)[:, None]
    acc = torch.zeros(nb * nt, 4, dtype=vertices.dtype, device=vertices.device)
    for k in range(3):
        acc = acc.index_add(0, (fu[:, k] + off).reshape(-1), vals)
    return acc.view(nb, nt, 4)
