"""The CPU fast path of `render_shaded` (one autograd node over the numba kernels) against the
per-primitive path over the same kernels: every output and the gradients w.r.t. every
differentiable input. (The per-primitive path is checked against the vectorized torch one in
test_backends.)"""

from __future__ import annotations

import pytest
import torch

from harp_track.render import Light, RenderMesh, ShadowSettings, ops, projection_from_intrinsics, render_shaded


@pytest.mark.parametrize("directional, nmap, shadow, dtype", [
    (False, True, ShadowSettings(), torch.float32),
    (True, False, ShadowSettings(resolution=64, pcf_radius=0), torch.float32),
    (False, False, None, torch.float64),
])
def test_fused_render_matches_per_primitive_path(hand_mesh, monkeypatch, directional, nmap, shadow, dtype):
    from harp_track.render import shading

    if not ops.HAS_NUMBA:
        pytest.skip("numba not installed")
    v, f, uv, fuv = hand_mesh()
    size = 80
    vertices = (v + torch.tensor([0.0, 0.0, 0.45]))[None].to(dtype)
    vertices = torch.cat([vertices, vertices + torch.tensor([0.01, -0.01, 0.03], dtype=dtype)])
    proj = projection_from_intrinsics(150.0, 150.0, size / 2, size / 2, (size, size), dtype=dtype)
    mesh = RenderMesh.create(f, uv, fuv)
    gen = torch.Generator().manual_seed(3)
    albedo = torch.rand(1, 32, 32, 3, generator=gen, dtype=dtype)
    normal_map = (0.5 + 0.2 * torch.rand(1, 32, 32, 3, generator=gen, dtype=dtype) - 0.1) if nmap else None
    position = torch.tensor([[0.5, 0.2, 1.0], [-0.3, 0.4, 1.0]] if directional else [[-0.2, -0.3, 0.1], [0.3, 0.1, 0.2]],
                            dtype=dtype)
    background = torch.rand(2, size, size, 3, generator=gen, dtype=dtype)
    weights = torch.rand(2, size, size, 4, generator=gen, dtype=dtype)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(shading, "_FUSED", fused)
        inputs = [t.clone().requires_grad_() for t in (vertices, albedo, position, torch.tensor([1.0, 0.8], dtype=dtype),
                                                         torch.tensor([0.3, 0.5], dtype=dtype), background)]
        vert, alb, pos, inten, amb, bg = inputs
        out = render_shaded(vert, mesh, proj, (size, size), Light(pos, directional, inten), alb, normal_map,
                            ambient=amb, shadow=shadow, background=bg)
        (out.image * weights[..., :3]).sum().backward(retain_graph=True)
        (out.alpha * weights[..., 3:]).sum().backward()
        results.append((out, [t.grad for t in inputs]))
    (a, grads_a), (b, grads_b) = results
    assert torch.equal(a.rast[..., 3], b.rast[..., 3])
    torch.testing.assert_close(a.image, b.image)
    torch.testing.assert_close(a.alpha, b.alpha)
    torch.testing.assert_close(a.normals, b.normals)
    torch.testing.assert_close(a.visibility, b.visibility)
    for ga, gb in zip(grads_a, grads_b):
        assert ga is not None and gb is not None
        torch.testing.assert_close(ga, gb, atol=1e-5 * gb.abs().max().item(), rtol=1e-4)


def test_fused_render_of_an_empty_frame(hand_mesh):
    v, f, uv, fuv = hand_mesh()
    vertices = (v + torch.tensor([5.0, 0.0, 0.45]))[None].requires_grad_()  # far outside the view
    proj = projection_from_intrinsics(100.0, 100.0, 16.0, 16.0, (32, 32))
    out = render_shaded(vertices, RenderMesh.create(f, uv, fuv), proj, (32, 32), Light(torch.tensor([[0.0, 0.0, 0.0]])),
                        torch.ones(1, 4, 4, 3))
    assert torch.all(out.rast[..., 3] == 0) and torch.all(out.image == 0) and torch.all(out.alpha == 0)
    (out.image.sum() + out.alpha.sum()).backward()
    assert torch.all(vertices.grad == 0)
