"""Midpoint subdivision, normals and the open rim."""

from __future__ import annotations

import torch

import harp_track as ht
from harp_track.render import (interpolate, open_rim_faces, projection_from_intrinsics, rasterize, subdivide,
                               transform_points, vertex_normals)


def euler_characteristic(num_vertices: int, faces: torch.Tensor) -> int:
    f = faces.long()
    edges = torch.stack([f, f.roll(-1, 1)], -1).reshape(-1, 2).sort(-1).values.unique(dim=0)
    return num_vertices - edges.shape[0] + faces.shape[0]


def test_subdivide_is_crack_free_with_midpoints(hand_mesh):
    v, f, uv, fuv = hand_mesh()
    v2, f2, uv2, fuv2 = subdivide(v, f, uv, fuv)
    assert f2.shape == (4 * f.shape[0], 3) and fuv2.shape == f2.shape
    assert torch.equal(v2[: v.shape[0]], v) and torch.equal(uv2[: uv.shape[0]], uv)
    # Shared edges share their midpoint: the topology (Euler characteristic) is unchanged.
    assert euler_characteristic(v2.shape[0], f2) == euler_characteristic(v.shape[0], f)
    assert euler_characteristic(uv2.shape[0], fuv2) == euler_characteristic(uv.shape[0], fuv)
    # Corner 0 of each face keeps its vertex; the new vertex on edge (0, 1) is that edge's midpoint.
    fl, f2l = f.long(), f2.long()
    torch.testing.assert_close(v2[f2l[0::4, 0]], v[fl[:, 0]])
    torch.testing.assert_close(v2[f2l[0::4, 1]], 0.5 * (v[fl[:, 0]] + v[fl[:, 1]]))
    area = lambda vv, ff: torch.linalg.cross(vv[ff[:, 1].long()] - vv[ff[:, 0].long()],
                                             vv[ff[:, 2].long()] - vv[ff[:, 0].long()]).norm(dim=-1).sum()
    torch.testing.assert_close(area(v2, f2), area(v, f))


def test_subdivided_mesh_renders_identically(hand_mesh, impl):
    """Midpoint subdivision does not move the surface, so coverage and interpolated points and uvs match."""
    v, f, uv, fuv = hand_mesh()
    v2, f2, uv2, fuv2 = subdivide(v, f, uv, fuv)
    proj = projection_from_intrinsics(150.0, 150.0, 32.0, 32.0, (64, 64))
    shift = torch.tensor([0.0, 0.0, 0.45])
    images = []
    for verts, faces, uvs, faces_uv in ((v, f, uv, fuv), (v2, f2, uv2, fuv2)):
        rast, _ = rasterize(transform_points((verts + shift)[None], proj), faces, (64, 64))
        points = interpolate(verts[None], rast, faces)[0]
        images.append((rast[..., 3] > 0, points, interpolate(uvs, rast, faces_uv)[0]))
    (m1, p1, t1), (m2, p2, t2) = images
    assert m1.sum() > 300
    assert (m1 != m2).sum() <= 2  # pixel centres exactly on an edge may flip
    both = m1 & m2
    torch.testing.assert_close(p1[both], p2[both], atol=1e-5, rtol=0)
    torch.testing.assert_close(t1[both], t2[both], atol=1e-4, rtol=0)


def test_subdivide_batched_vertices_is_differentiable(icosphere):
    v, f = icosphere(0)
    batch = v[None].repeat(2, 1, 1).requires_grad_()
    v2, f2, _, _ = subdivide(batch, f)
    assert v2.shape == (2, 42, 3) and f2.shape == (80, 3)
    v2.sum().backward()
    # Each vertex has valence 5 on an icosahedron: itself plus half of each of its 5 edge midpoints.
    torch.testing.assert_close(batch.grad, torch.full_like(batch, 3.5))


def test_vertex_normals_of_a_sphere_are_radial(icosphere, impl):
    v, f = icosphere(3)
    n = vertex_normals(v[None] * 2.0 + 1.0, f)[0]
    assert torch.all((n * v).sum(-1) > 0.999)


def test_open_rim_is_the_ring_of_faces_at_the_wrist_cut(icosphere):
    """None on a closed mesh; with one face cut out of it, that face's neighbours by a corner; on
    the hand model, a thin ring of faces, all at the wrist."""
    _, sphere = icosphere(0)
    assert not open_rim_faces(sphere).any()
    rim = open_rim_faces(sphere[1:])
    touching = torch.isin(sphere[1:], sphere[0]).any(1)
    assert torch.equal(rim, touching)

    model = ht.load_hand_model()
    rim = open_rim_faces(model.faces)
    assert 0 < int(rim.sum()) < 0.05 * len(model.faces)
    with torch.no_grad():
        rest = model()
    corners = rest.vertices[0][model.faces[rim]]
    assert float((corners - rest.keypoints[0, 0]).norm(dim=-1).max()) < 0.04  # metres from the wrist keypoint
