"""Shading: shadow-map self-shadowing lands exactly where the occluder projects; normal mapping."""

from __future__ import annotations

import math

import pytest
import torch

from harp_track.render import Light, RenderMesh, ShadowSettings, projection_from_intrinsics, render_shaded

SIZE = 128
FOCAL = 128.0
Z_PLANE, Z_OCC, HALF_OCC = 1.0, 0.7, 0.1


def quad(x0: float, x1: float, y0: float, y1: float, z: float) -> torch.Tensor:
    return torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


def plane_and_occluder():
    """A plane at z = 1 m and a 0.2 m square at z = 0.7 m, both facing the camera (normals -z)."""
    vertices = torch.cat([quad(-0.6, 0.6, -0.6, 0.6, Z_PLANE), quad(-HALF_OCC, HALF_OCC, -HALF_OCC, HALF_OCC, Z_OCC)])
    faces = torch.tensor([[0, 2, 1], [0, 3, 2], [4, 6, 5], [4, 7, 6]], dtype=torch.int32)
    uvs = torch.tensor([[0.5, 0.5]])
    return vertices[None], RenderMesh.create(faces, uvs, torch.zeros_like(faces))


def plane_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space x, y on the plane seen through each pixel centre, (H, W) each."""
    c = (torch.arange(SIZE, dtype=torch.float32) + 0.5 - SIZE / 2) / FOCAL * Z_PLANE
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x, y


def occluder_shadow(light: Light, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance (metres, > 0 inside) of plane points to the occluder's shadow, and to the
    occluder's silhouette seen from the camera."""
    pos = light.position[0]
    if light.directional:
        shift = pos[:2] / pos[2] * (Z_PLANE - Z_OCC)
        sx, sy, scale = x - shift[0], y - shift[1], 1.0
    else:  # central projection from the light onto the occluder's plane
        t = (Z_OCC - pos[2]) / (Z_PLANE - pos[2])
        sx, sy, scale = pos[0] + (x - pos[0]) * t, pos[1] + (y - pos[1]) * t, 1.0 / t
    shadow = (HALF_OCC - torch.maximum(sx.abs(), sy.abs())) * scale
    behind = HALF_OCC * Z_PLANE / Z_OCC - torch.maximum(x.abs(), y.abs())
    return shadow, behind


@pytest.mark.parametrize("light", [
    Light(torch.tensor([[0.5, 0.0, 1.0]]), directional=True),
    Light(torch.tensor([[0.3, 0.05, 0.0]])),
], ids=["directional", "point"])
def test_plane_is_dark_exactly_where_the_occluder_projects(impl, light):
    vertices, mesh = plane_and_occluder()
    proj = projection_from_intrinsics(FOCAL, FOCAL, SIZE / 2, SIZE / 2, (SIZE, SIZE))
    albedo = torch.ones(1, 2, 2, 3)
    ambient = 0.3
    out = render_shaded(vertices, mesh, proj, (SIZE, SIZE), light, albedo, ambient=ambient,
                        shadow=ShadowSettings(resolution=256, pcf_radius=1))
    on_plane = (out.rast[0, ..., 3] == 1) | (out.rast[0, ..., 3] == 2)
    x, y = plane_points()
    shadow, behind = occluder_shadow(light, x, y)
    margin = 0.012  # two shadow-map texels plus the PCF kernel
    shadowed = on_plane & (shadow > margin)
    lit = on_plane & (shadow < -margin)
    assert shadowed.sum() > 60 and lit.sum() > 2000
    vis = out.visibility[0, ..., 0]
    assert vis[shadowed].max() < 0.02
    assert vis[lit].min() > 0.98
    assert vis[out.rast[0, ..., 3] >= 3].min() > 0.98  # the occluder does not shadow itself
    # Colours: ambient only in the shadow, ambient + diffuse in the light (away from silhouettes).
    points = torch.stack([x, y, torch.full_like(x, Z_PLANE)], -1)
    to_light = -light.position[0].expand_as(points) if light.directional else light.position[0] - points
    cos = -torch.nn.functional.normalize(to_light, dim=-1)[..., 2]  # the plane's normal is -z
    inner = torch.zeros_like(on_plane)
    inner[2:-2, 2:-2] = True
    far_from_edges = inner & (behind < -0.02)
    image = out.image[0]
    expected_dark = torch.full_like(image[..., 0], ambient)
    torch.testing.assert_close(image[shadowed & far_from_edges][:, 0], expected_dark[shadowed & far_from_edges], atol=0.02, rtol=0)
    expected_lit = ambient + (1 - ambient) * cos
    torch.testing.assert_close(image[lit & far_from_edges][:, 0], expected_lit[lit & far_from_edges], atol=0.01, rtol=0)


def test_outputs_alpha_normals_and_background(impl):
    vertices, mesh = plane_and_occluder()
    proj = projection_from_intrinsics(FOCAL, FOCAL, SIZE / 2, SIZE / 2, (SIZE, SIZE))
    background = torch.full((1, SIZE, SIZE, 3), 0.25)
    out = render_shaded(vertices * torch.tensor([0.5, 0.5, 1.0]), mesh, proj, (SIZE, SIZE), Light(torch.tensor([[0.0, 0.0, 0.0]])),
                        torch.full((1, 2, 2, 3), 0.8), background=background, shadow=None)
    covered = out.rast[0, ..., 3] > 0
    assert 0.3 < covered.float().mean() < 0.95
    assert torch.all(out.alpha[0, ..., 0][~covered] < 1) and torch.all(out.alpha[0, ..., 0][covered] > 0)
    inner = covered.clone()
    inner[1:] &= covered[:-1]
    inner[:-1] &= covered[1:]
    inner[:, 1:] &= covered[:, :-1]
    inner[:, :-1] &= covered[:, 1:]
    assert torch.all(out.alpha[0, ..., 0][inner] == 1)
    torch.testing.assert_close(out.normals[0][covered], torch.tensor([0.0, 0.0, -1.0]).expand(int(covered.sum()), 3))
    torch.testing.assert_close(out.image[0][~covered & (out.alpha[0, ..., 0] == 0)],
                               torch.full((int((~covered & (out.alpha[0, ..., 0] == 0)).sum()), 3), 0.25))
    assert torch.all(out.visibility[0][covered] == 1)


def test_normal_map_perturbs_shading(impl, icosphere):
    v, f = icosphere(2, torch.float32)
    # Equirectangular uvs; faces_uv = faces, which is fine away from the seam for this check.
    uv = torch.stack([torch.atan2(v[:, 0], -v[:, 2]) / (2 * math.pi) + 0.5, torch.acos(v[:, 1].clamp(-1, 1)) / math.pi], -1)
    mesh = RenderMesh.create(f, uv, f)
    vertices = (v * 0.1 + torch.tensor([0.0, 0.0, 0.5]))[None]
    proj = projection_from_intrinsics(200.0, 200.0, 32.0, 32.0, (64, 64))
    light = Light(torch.tensor([[0.3, -0.3, 0.0]]))
    albedo = torch.full((1, 8, 8, 3), 0.7)
    plain = render_shaded(vertices, mesh, proj, (64, 64), light, albedo, shadow=None)
    flat = render_shaded(vertices, mesh, proj, (64, 64), light, albedo, torch.tensor([0.5, 0.5, 1.0]).expand(1, 8, 8, 3),
                         shadow=None)
    torch.testing.assert_close(flat.image, plain.image, atol=1e-4, rtol=0)
    tilted = render_shaded(vertices, mesh, proj, (64, 64), light, albedo,
                           torch.tensor([0.8, 0.5, 0.9]).expand(1, 8, 8, 3), shadow=None)
    covered = plain.rast[0, ..., 3] > 0
    change = (tilted.image - plain.image)[0][covered].abs().mean()
    assert change > 0.02
    cos = (tilted.normals[0][covered] * plain.normals[0][covered]).sum(-1)
    assert cos.mean() < 0.99 and torch.allclose(tilted.normals[0][covered].norm(dim=-1), torch.ones(int(covered.sum())))


def test_shadow_kernel_matches_torch_path(hand_mesh, monkeypatch):
    """Self-shadowing of the hand under a grazing light: numba and vectorized paths agree."""
    from harp_track.render import ops

    if not ops.HAS_NUMBA:
        pytest.skip("numba not installed")
    v, f, uv, fuv = hand_mesh()
    mesh = RenderMesh.create(f, uv, fuv)
    vertices = (v + torch.tensor([0.0, 0.0, 0.45]))[None]
    proj = projection_from_intrinsics(200.0, 200.0, 48.0, 48.0, (96, 96))
    outs = []
    for light in (Light(torch.tensor([[0.4, -0.1, 0.3]])), Light(torch.tensor([[0.8, 0.2, 0.3]]), directional=True)):
        kernel = render_shaded(vertices, mesh, proj, (96, 96), light, torch.ones(1, 4, 4, 3)).visibility
        monkeypatch.setattr(ops, "HAS_NUMBA", False)
        reference = render_shaded(vertices, mesh, proj, (96, 96), light, torch.ones(1, 4, 4, 3)).visibility
        monkeypatch.setattr(ops, "HAS_NUMBA", True)
        # A tap whose depth test is within rounding of the bias may flip (float64 kernel, float32 torch).
        assert ((kernel - reference).abs() > 1e-3).float().mean() < 0.002
        outs.append(kernel)
    covered = outs[0] > 0
    assert 0.05 < (outs[0][covered] < 0.5).float().mean() < 0.95  # the light really casts shadows
