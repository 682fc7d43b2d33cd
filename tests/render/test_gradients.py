"""Finite differences vs autograd (float64) for every differentiable path, on both CPU implementations."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from harp_track.render import antialias, antialias_topology, interpolate, ops, rasterize, texture, vertex_normals


def grid_scene(seed: int, batch: int = 2, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A perturbed n x n vertex grid (boundary silhouettes, shared interior edges) partly covered by a
    nearer triangle (occlusion boundaries), in clip space with varying w. Returns pos (B, V, 4), tri."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.linspace(-0.7, 0.7, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    xy = torch.stack([xx, yy], -1).reshape(-1, 2).expand(batch, -1, -1)
    xy = xy + 0.06 * torch.randn(batch, n * n, 2, generator=gen, dtype=torch.float64)
    front = torch.tensor([[0.1, -0.9], [0.95, 0.2], [-0.2, 0.5]], dtype=torch.float64)
    front = front + 0.05 * torch.randn(batch, 3, 2, generator=gen, dtype=torch.float64)
    xy = torch.cat([xy, front], 1)
    z = torch.cat([0.4 + 0.2 * torch.rand(batch, n * n, generator=gen, dtype=torch.float64),
                   torch.full((batch, 3), 0.1, dtype=torch.float64)], 1)
    w = 1.0 + 0.4 * torch.rand(batch, n * n + 3, generator=gen, dtype=torch.float64)
    pos = torch.cat([xy * w[..., None], (z * w)[..., None], w[..., None]], -1)
    quads = [(i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j) for i in range(n - 1) for j in range(n - 1)]
    tri = [[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads] + [[n * n, n * n + 1, n * n + 2]]
    return pos, torch.tensor(tri, dtype=torch.int32)


RES = (14, 15)


def test_rasterize_barycentrics_and_depth_gradients(impl):
    pos, tri = grid_scene(0)

    def f(p):
        return rasterize(p, tri, RES, grad_db=False)[0][..., :3]

    assert gradcheck(f, fast_mode=impl == "torch", inputs=(pos.requires_grad_(),))


def test_interpolate_gradients_wrt_attributes_and_positions(impl):
    pos, tri = grid_scene(1)
    gen = torch.Generator().manual_seed(1)
    attr = torch.randn(2, pos.shape[1], 3, generator=gen, dtype=torch.float64)
    shared = torch.randn(1, pos.shape[1], 2, generator=gen, dtype=torch.float64)

    def f(p, a, s):
        rast = rasterize(p, tri, RES, grad_db=False)[0]
        return interpolate(a, rast, tri)[0], interpolate(s, rast, tri)[0]

    assert gradcheck(f, fast_mode=impl == "torch", inputs=(pos.requires_grad_(), attr.requires_grad_(), shared.requires_grad_()))


def test_texture_gradients_wrt_texture_and_uv(impl):
    gen = torch.Generator().manual_seed(2)
    tex = torch.rand(2, 5, 7, 3, generator=gen, dtype=torch.float64)
    uv = torch.rand(2, 4, 6, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2
    for boundary in ("wrap", "clamp"):
        assert gradcheck(lambda t, u: texture(t, u, boundary_mode=boundary), (tex.requires_grad_(), uv.requires_grad_()),
                         fast_mode=impl == "torch")


def test_mipmapped_texture_gradients(impl):
    gen = torch.Generator().manual_seed(3)
    tex = torch.rand(1, 16, 8, 2, generator=gen, dtype=torch.float64)
    uv = torch.rand(2, 3, 5, 2, generator=gen, dtype=torch.float64)
    uv_da = torch.rand(2, 3, 5, 4, generator=gen, dtype=torch.float64) * 0.4  # up to ~6 texels per pixel
    assert gradcheck(lambda t, u: texture(t, u, uv_da), (tex.requires_grad_(), uv.requires_grad_()), fast_mode=impl == "torch")


def test_textured_render_gradients_wrt_positions_and_texture(impl):
    """rasterize -> interpolate uv -> bilinear texture -> antialias. (With mipmapping the level is a
    constant of the backward pass, so the finite differences would also see the level change.)"""
    pos, tri = grid_scene(8)
    topo = antialias_topology(tri)
    gen = torch.Generator().manual_seed(8)
    uv = torch.rand(1, pos.shape[1], 2, generator=gen, dtype=torch.float64)
    tex = torch.rand(1, 8, 8, 2, generator=gen, dtype=torch.float64)

    def f(p, t):
        rast, _ = rasterize(p, tri, RES, grad_db=False)
        return antialias(texture(t, interpolate(uv, rast, tri)[0]), rast, p, tri, topo)

    assert gradcheck(f, fast_mode=impl == "torch", inputs=(pos.requires_grad_(), tex.requires_grad_()))


def test_antialias_gradients_wrt_positions_and_colors(impl):
    pos, tri = grid_scene(4)
    topo = antialias_topology(tri)
    gen = torch.Generator().manual_seed(4)
    attr = torch.rand(2, pos.shape[1], 3, generator=gen, dtype=torch.float64)

    def f(p, a):
        rast = rasterize(p, tri, RES, grad_db=False)[0]
        color = interpolate(a, rast, tri)[0]
        return antialias(color, rast, p, tri, topo)

    assert gradcheck(f, fast_mode=impl == "torch", inputs=(pos.requires_grad_(), attr.requires_grad_()))


def test_antialias_moves_silhouette_vertices(impl):
    """With a constant colour, only antialiasing can make the image depend on vertex positions."""
    pos, tri = grid_scene(5, batch=1)
    pos.requires_grad_()
    rast = rasterize(pos, tri, RES, grad_db=False)[0]
    mask = (rast[..., 3:] > 0).double()
    out = antialias(mask, rast, pos, tri)
    assert 0 < (out != mask).sum() < mask.numel() // 2
    out.sum().backward()
    moved = pos.grad[0, :, :2].abs().sum(-1) > 0
    boundary = [0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18]
    assert moved.any()
    assert not moved[[5, 6, 9, 10]].any()  # interior grid vertices are on no silhouette
    assert set(torch.nonzero(moved).flatten().tolist()) <= set(boundary)


def test_vertex_normals_gradients(impl, icosphere):
    v, f = icosphere(1)
    v = (v * torch.tensor([1.0, 0.7, 1.3], dtype=torch.float64))[None].repeat(2, 1, 1)
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert gradcheck(lambda x: vertex_normals(x, f), (v.requires_grad_(),), fast_mode=impl == "torch")


def test_vertex_tangents_kernel_matches_torch(hand_mesh, monkeypatch):
    from harp_track.render import vertex_tangents
    v, f, uv, fuv = hand_mesh(torch.float64)
    v = v[None].repeat(2, 1, 1) * torch.tensor([[[1.0]], [[1.3]]], dtype=torch.float64)
    kernel = vertex_tangents(v, f, uv, fuv)
    monkeypatch.setattr(ops, "HAS_NUMBA", False)
    torch.testing.assert_close(kernel, vertex_tangents(v, f, uv, fuv))
    assert torch.all(kernel[..., 3].abs() == 1)


def test_shading_gradients_and_kernel_matches_torch(monkeypatch):
    """The fused numba shading (CPU) against its torch reference, values and gradients, with and
    without a normal map, for point and directional lights."""
    from harp_track.render import shading

    if not ops.HAS_NUMBA:
        pytest.skip("numba not installed")

    gen = torch.Generator().manual_seed(7)
    n = 40
    batch = torch.randint(0, 2, (n,), generator=gen).sort().values
    geo = torch.cat([torch.randn(n, 2, generator=gen, dtype=torch.float64) * 0.1,
                     0.5 + torch.rand(n, 1, generator=gen, dtype=torch.float64),
                     torch.randn(n, 3, generator=gen, dtype=torch.float64) - torch.tensor([0.0, 0.0, 1.5])], -1)
    surf = torch.cat([torch.rand(n, 2, generator=gen, dtype=torch.float64), torch.randn(n, 3, generator=gen, dtype=torch.float64),
                      torch.where(torch.rand(n, 1, generator=gen) < 0.5, -1.0, 1.0).double()], -1)
    tex = torch.rand(n, 6, generator=gen, dtype=torch.float64)
    light = torch.randn(2, 3, generator=gen, dtype=torch.float64) * 0.3
    intensity = torch.tensor([1.0, 0.7], dtype=torch.float64)
    ambient = torch.tensor([0.3, 0.5], dtype=torch.float64)
    vis = torch.rand(n, generator=gen, dtype=torch.float64)
    for directional in (False, True):
        for nmap in (False, True):
            inputs = (geo.clone().requires_grad_(), tex.clone().requires_grad_(), light.clone().requires_grad_(),
                      intensity.clone().requires_grad_(), ambient.clone().requires_grad_())

            def kernel(g, t, lp, i, a):
                return shading._ShadeNumba.apply(g, surf, t, batch, lp, directional, i, a, vis, nmap)[0]

            def reference(g, t, lp, i, a):
                return shading._shade_torch(g, surf, t, batch, lp, directional, i, a, vis, nmap)[0]

            assert gradcheck(kernel, inputs)
            torch.testing.assert_close(kernel(*inputs), reference(*inputs))
            torch.testing.assert_close(shading._ShadeNumba.apply(geo, surf, tex, batch, light, directional, intensity,
                                                                 ambient, vis, nmap)[1],
                                       shading._shade_torch(geo, surf, tex, batch, light, directional, intensity,
                                                            ambient, vis, nmap)[1])
