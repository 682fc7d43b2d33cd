"""Backend selection, and agreement of torch-CPU, torch-CUDA and nvdiffrast (GPU tests skip without CUDA)."""

from __future__ import annotations

import logging

import pytest
import torch

from harp_track.render import (Light, RenderMesh, projection_from_intrinsics, render_shaded, select_backend,
                               transform_points)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_select_backend_logs_its_choice(caplog):
    with caplog.at_level(logging.INFO, logger="harp_track.render.backend"):
        backend = select_backend("torch", "cpu")
    assert backend.name == "torch" and backend.device == torch.device("cpu")
    assert "torch backend on cpu" in caplog.text
    auto = select_backend()
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_nvdiffrast_is_never_implicit_and_needs_cuda():
    assert select_backend().name == "torch"
    with pytest.raises(ValueError, match="CUDA"):
        select_backend("nvdiffrast", "cpu")
    with pytest.raises(ValueError, match="unknown"):
        select_backend("opengl", "cpu")


def hand_frame(hand_mesh, device):
    v, f, uv, fuv = hand_mesh()
    size = 96
    vertices = (v + torch.tensor([0.0, 0.0, 0.45]))[None].to(device)
    proj = projection_from_intrinsics(180.0, 180.0, size / 2, size / 2, (size, size), device=device)
    gen = torch.Generator().manual_seed(0)
    albedo = torch.rand(1, 64, 64, 3, generator=gen).to(device)
    normal_map = (torch.tensor([0.5, 0.5, 1.0]) + 0.2 * torch.rand(1, 64, 64, 3, generator=gen) - 0.1).to(device)
    return vertices, f, uv, fuv, proj, size, albedo, normal_map


def render_with(backend, hand_mesh):
    vertices, f, uv, fuv, proj, size, albedo, normal_map = hand_frame(hand_mesh, backend.device)
    vertices = vertices.clone().requires_grad_()
    albedo = albedo.clone().requires_grad_()
    mesh = RenderMesh.create(f, uv, fuv, backend)
    light = Light(torch.tensor([[-0.2, -0.3, 0.1]], device=backend.device))
    out = render_shaded(vertices, mesh, proj, (size, size), light, albedo, normal_map, backend=backend)
    (out.image.square().sum() + out.alpha.sum()).backward()
    return out, vertices.grad, albedo.grad


@pytest.mark.gpu
@needs_cuda
def test_torch_backend_cpu_and_cuda_agree(hand_mesh):
    cpu, gv_cpu, ga_cpu = render_with(select_backend("torch", "cpu"), hand_mesh)
    gpu, gv_gpu, ga_gpu = render_with(select_backend("torch", "cuda"), hand_mesh)
    ids_equal = (cpu.rast[..., 3] == gpu.rast[..., 3].cpu()).float().mean()
    assert ids_equal > 0.999
    for a, b in ((cpu.image, gpu.image), (cpu.alpha, gpu.alpha), (cpu.visibility, gpu.visibility)):
        assert (a - b.cpu()).abs().mean() < 1e-3
    assert torch.nn.functional.cosine_similarity(gv_cpu.flatten(), gv_gpu.cpu().flatten(), dim=0) > 0.99
    assert torch.nn.functional.cosine_similarity(ga_cpu.flatten(), ga_gpu.cpu().flatten(), dim=0) > 0.99


@pytest.mark.gpu
@needs_cuda
@pytest.mark.xfail(strict=True, reason="open: on an H200 (torch 2.11, diffrp-nvdiffrast 0.3.3.1) the forward "
                   "passes agree but the position gradients do not (cosine 0.49); our torch backend's gradients "
                   "match finite differences (test_gradients), nvdiffrast's are not yet checked that way")
def test_nvdiffrast_and_torch_backends_agree(hand_mesh):
    pytest.importorskip("nvdiffrast.torch")
    torch_be, dr_be = select_backend("torch", "cuda"), select_backend("nvdiffrast", "cuda")
    vertices, f, uv, fuv, proj, size, albedo, _ = hand_frame(hand_mesh, torch_be.device)
    pos = transform_points(vertices, proj).contiguous()
    tri = f.to(torch_be.device)
    results = []
    for be in (torch_be, dr_be):
        p = pos.clone().requires_grad_()
        rast, _ = be.rasterize(p, tri, (size, size))
        attr = be.interpolate(vertices, rast, tri)[0]
        color = be.antialias(attr, rast, p, tri, be.antialias_topology(tri))
        color.square().sum().backward()
        results.append((rast, attr, color, p.grad))
    (r1, a1, c1, g1), (r2, a2, c2, g2) = results
    same = r1[..., 3] == r2[..., 3]
    assert same.float().mean() > 0.995
    torch.testing.assert_close(r1[..., :3][same], r2[..., :3][same], atol=1e-4, rtol=0)
    torch.testing.assert_close(a1[same], a2[same], atol=1e-4, rtol=0)
    assert (c1 - c2).abs().mean() < 1e-3
    assert torch.nn.functional.cosine_similarity(g1.flatten(), g2.flatten(), dim=0) > 0.9
    uv = torch.rand(1, 32, 32, 2, device=torch_be.device)
    torch.testing.assert_close(torch_be.texture(albedo, uv, filter_mode="linear"),
                               dr_be.texture(albedo, uv, filter_mode="linear"), atol=1e-5, rtol=0)


def test_numba_kernels_and_vectorized_torch_agree_on_a_full_render(hand_mesh, monkeypatch):
    """The CPU kernels against the vectorized path that CUDA runs: a two-frame hand render with
    normal map and self-shadowing, image and gradients."""
    from harp_track.render import ops

    if not ops.HAS_NUMBA:
        pytest.skip("numba not installed")
    vertices, f, uv, fuv, proj, size, albedo, normal_map = hand_frame(hand_mesh, torch.device("cpu"))
    vertices = torch.cat([vertices, vertices + torch.tensor([0.01, -0.01, 0.03])])
    mesh = RenderMesh.create(f, uv, fuv)
    light = Light(torch.tensor([[-0.2, -0.3, 0.1], [0.3, 0.1, 0.2]]))
    results = []
    for use_numba in (True, False):
        monkeypatch.setattr(ops, "HAS_NUMBA", use_numba)
        v = vertices.clone().requires_grad_()
        tex = albedo.clone().requires_grad_()
        out = render_shaded(v, mesh, proj, (size, size), light, tex, normal_map, ambient=torch.tensor([0.3, 0.5]))
        (out.image.square().sum() + out.alpha.sum()).backward()
        results.append((out, v.grad, tex.grad))
    (a, gv_a, gt_a), (b, gv_b, gt_b) = results
    assert torch.equal(a.rast[..., 3], b.rast[..., 3])
    torch.testing.assert_close(a.image, b.image, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.alpha, b.alpha, atol=1e-3, rtol=0)  # float64 kernel vs float32 torch
    assert ((a.visibility - b.visibility).abs() > 1e-3).float().mean() < 0.002
    torch.testing.assert_close(gv_a, gv_b, atol=1e-3 * gv_a.abs().max().item(), rtol=1e-3)
    torch.testing.assert_close(gt_a, gt_b, atol=1e-5, rtol=1e-3)
