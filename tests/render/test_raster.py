"""Exactness of rasterize / interpolate and the camera helpers on scenes with known answers."""

from __future__ import annotations

import torch

from harp_track.render import (interpolate, look_at, ops, projection_from_intrinsics, rasterize,
                               transform_points)


def screen_to_clip(xy: torch.Tensor, height: int, width: int, z: float = 0.0, w: float = 1.0) -> torch.Tensor:
    """Pixel coordinates (x right, y down) to clip space with given z_ndc and w."""
    x = (2.0 * xy[:, 0] / width - 1.0) * w
    y = (2.0 * xy[:, 1] / height - 1.0) * w
    return torch.stack([x, y, torch.full_like(x, z * w), torch.full_like(x, w)], -1)[None]


def test_single_triangle_coverage_and_barycentrics(impl):
    h, w = 12, 16
    corners = torch.tensor([[1.2, 1.3], [13.7, 2.1], [4.4, 10.9]], dtype=torch.float64)
    pos = screen_to_clip(corners, h, w)
    rast, _ = rasterize(pos, torch.tensor([[0, 1, 2]]), (h, w))
    jj, ii = torch.meshgrid(torch.arange(w, dtype=torch.float64) + 0.5, torch.arange(h, dtype=torch.float64) + 0.5, indexing="xy")
    p = torch.stack([jj, ii], -1)
    a, b, c = corners

    def edge(p0, p1):
        return (p1[0] - p0[0]) * (p[..., 1] - p0[1]) - (p1[1] - p0[1]) * (p[..., 0] - p0[0])

    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    bary = torch.stack([edge(b, c), edge(c, a), edge(a, b)], -1) / area
    inside = (bary >= 0).all(-1)
    assert torch.equal(rast[0, ..., 3] > 0, inside)
    assert inside.sum() > 30
    torch.testing.assert_close(rast[0, ..., 0][inside], bary[..., 0][inside])
    torch.testing.assert_close(rast[0, ..., 1][inside], bary[..., 1][inside])
    assert torch.all(rast[0][~inside] == 0)


def test_perspective_correct_barycentrics(impl):
    """A triangle in 3D seen through a pinhole: interpolated camera-space points lie on each pixel's ray."""
    h, w = 20, 24
    fx, fy, cx, cy = 30.0, 28.0, 11.0, 10.5
    verts = torch.tensor([[[-0.3, -0.25, 1.0], [0.35, -0.1, 1.8], [0.0, 0.4, 1.3]]], dtype=torch.float64)
    pos = transform_points(verts, projection_from_intrinsics(fx, fy, cx, cy, (h, w), dtype=torch.float64))
    rast, _ = rasterize(pos, torch.tensor([[0, 1, 2]]), (h, w))
    points, _ = interpolate(verts, rast, torch.tensor([[0, 1, 2]]))
    mask = rast[0, ..., 3] > 0
    assert mask.sum() > 50
    ii, jj = torch.nonzero(mask, as_tuple=True)
    p = points[0][mask]
    torch.testing.assert_close(fx * p[:, 0] / p[:, 2] + cx, jj.double() + 0.5)
    torch.testing.assert_close(fy * p[:, 1] / p[:, 2] + cy, ii.double() + 0.5)
    # The interpolated points are on the triangle's plane.
    n = torch.linalg.cross(verts[0, 1] - verts[0, 0], verts[0, 2] - verts[0, 0])
    torch.testing.assert_close((p - verts[0, 0]) @ n, torch.zeros(p.shape[0], dtype=torch.float64))


def test_unit_square_exact_coverage_and_attributes(impl):
    """A pixel-aligned square covers exactly its pixels; the interpolated attribute is the pixel centre."""
    h, w = 10, 10
    corners = torch.tensor([[2.0, 3.0], [6.0, 3.0], [6.0, 7.0], [2.0, 7.0]], dtype=torch.float64)
    pos = screen_to_clip(corners, h, w)
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    rast, rast_db = rasterize(pos, tri, (h, w))
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[3:7, 2:6] = True
    assert torch.equal(rast[0, ..., 3] > 0, expected)
    attr = corners[None]
    out, da = interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs="all")
    jj, ii = torch.meshgrid(torch.arange(w, dtype=torch.float64) + 0.5, torch.arange(h, dtype=torch.float64) + 0.5, indexing="xy")
    torch.testing.assert_close(out[0, ..., 0][expected], jj[expected])
    torch.testing.assert_close(out[0, ..., 1][expected], ii[expected])
    # Screen derivatives of (x, y) are the identity: dx/dx = 1, dx/dy = 0, dy/dx = 0, dy/dy = 1.
    torch.testing.assert_close(da[0][expected], torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(16, 4))


def test_depth_ordering_of_overlapping_triangles(impl):
    h, w = 16, 16
    near = screen_to_clip(torch.tensor([[1.0, 1.0], [15.0, 2.0], [3.0, 14.0]], dtype=torch.float64), h, w, z=0.2)
    far = screen_to_clip(torch.tensor([[2.0, 15.0], [14.0, 1.0], [15.0, 15.0]], dtype=torch.float64), h, w, z=0.5)
    for order in ([near, far], [far, near]):
        pos = torch.cat(order, 1)
        tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
        rast, _ = rasterize(pos, tri, (h, w))
        near_id = 1 if order[0] is near else 2
        rast_near, _ = rasterize(near, torch.tensor([[0, 1, 2]]), (h, w))
        rast_far, _ = rasterize(far, torch.tensor([[0, 1, 2]]), (h, w))
        both = (rast_near[0, ..., 3] > 0) & (rast_far[0, ..., 3] > 0)
        assert both.sum() > 10
        assert torch.all(rast[0, ..., 3][both] == near_id)
        torch.testing.assert_close(rast[0, ..., 2][both], torch.full((int(both.sum()),), 0.2, dtype=torch.float64))
        only_far = (rast_far[0, ..., 3] > 0) & ~both
        assert torch.all(rast[0, ..., 3][only_far] == 3 - near_id)


def test_numba_and_vectorized_rasterizers_agree(monkeypatch):
    if not ops.HAS_NUMBA:
        return
    gen = torch.Generator().manual_seed(3)
    pos = torch.rand(2, 60, 4, generator=gen, dtype=torch.float64) * 2.2 - 1.1
    pos[..., 3] = 0.6 + torch.rand(2, 60, generator=gen, dtype=torch.float64)
    pos[..., 2] = torch.rand(2, 60, generator=gen, dtype=torch.float64) * 0.9 * pos[..., 3]
    tri = torch.randint(0, 60, (40, 3), generator=gen)
    rast_k, db_k = rasterize(pos, tri, (30, 26))
    monkeypatch.setattr(ops, "HAS_NUMBA", False)
    rast_t, db_t = rasterize(pos, tri, (30, 26))
    assert (rast_k[..., 3] > 0).sum() > 200
    torch.testing.assert_close(rast_k, rast_t)
    torch.testing.assert_close(db_k, db_t)


def test_projection_matches_opencv_pixels(impl):
    """The point that OpenCV projects to pixel (i, j)'s centre lands there, and only there."""
    h, w = 48, 64
    fx, fy, cx, cy = 50.0, 52.0, 30.3, 22.7
    i, j, z = 17, 41, 0.9
    point = torch.tensor([(j + 0.5 - cx) / fx * z, (i + 0.5 - cy) / fy * z, z], dtype=torch.float64)
    offsets = torch.tensor([[-0.004, -0.004, 0.0], [0.006, -0.003, 0.0], [0.0, 0.006, 0.0]], dtype=torch.float64)
    proj = projection_from_intrinsics(fx, fy, cx, cy, (h, w), dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]])
    verts = (point + offsets)[None]
    rast, _ = rasterize(transform_points(verts, proj), tri, (h, w))
    assert torch.nonzero(rast[0, ..., 3]).tolist() == [[i, j]]
    torch.testing.assert_close(interpolate(verts, rast, tri)[0][0, i, j], point)


def test_look_at_is_a_rigid_view_transform():
    eye = torch.tensor([[0.3, -0.5, 0.2]])
    target = torch.tensor([[0.0, 0.1, 0.9]])
    view = look_at(eye, target)
    rot = view[0, :3, :3]
    torch.testing.assert_close(rot @ rot.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(rot) > 0
    torch.testing.assert_close(transform_points(eye[None], view)[0, 0, :3], torch.zeros(3), atol=1e-6, rtol=0)
    t = transform_points(target[None], view)[0, 0]
    torch.testing.assert_close(t[:2], torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(t[2], (target - eye).norm())
    # Default up is OpenCV's -y: a camera at the origin looking down +z is the identity.
    torch.testing.assert_close(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])), torch.eye(4))
