"""Analysis-by-synthesis sanity: pose from a silhouette, texture from renders of known geometry."""

from __future__ import annotations

import torch

from harp_track.hand.rotations import axis_angle_to_matrix
from harp_track.render import (Light, RenderMesh, antialias, antialias_topology, projection_from_intrinsics,
                               rasterize, render_shaded, transform_points)


def test_recover_hand_pose_from_its_silhouette(hand_mesh):
    vertices, faces, _, _ = hand_mesh()
    size = 96
    proj = projection_from_intrinsics(200.0, 200.0, size / 2, size / 2, (size, size))
    topo = antialias_topology(faces)

    def silhouette(rotvec: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
        v = vertices @ axis_angle_to_matrix(rotvec).T + transl
        pos = transform_points(v[None], proj)
        rast, _ = rasterize(pos, faces, (size, size), grad_db=False)
        return antialias((rast[..., 3:] > 0).float(), rast, pos, faces, topo)

    true_rot, true_t = torch.tensor([0.3, -0.2, 0.1]), torch.tensor([0.01, -0.005, 0.5])
    target = silhouette(true_rot, true_t)
    assert 0.1 < target.mean() < 0.6
    rot = (true_rot + torch.tensor([0.08, -0.06, 0.1])).requires_grad_()
    transl = (true_t + torch.tensor([-0.012, 0.01, 0.02])).requires_grad_()
    start_err = (rot - true_rot).norm().item(), (transl - true_t).norm().item()
    opt = torch.optim.Adam([{"params": [rot], "lr": 0.01}, {"params": [transl], "lr": 0.002}])
    for step in range(200):
        opt.zero_grad()
        loss = (silhouette(rot, transl) - target).square().mean()
        loss.backward()
        opt.step()
        if step == 150:
            for group in opt.param_groups:
                group["lr"] *= 0.2
    rot_err, t_err = (rot - true_rot).norm().item(), (transl - true_t).norm().item()
    assert rot_err < 0.15 * start_err[0] and rot_err < 0.02
    assert t_err < 0.15 * start_err[1] and t_err < 0.003


def test_recover_texture_from_renders_of_known_geometry():
    gen = torch.Generator().manual_seed(0)
    target_tex = torch.rand(1, 8, 8, 3, generator=gen)
    # A plane whose uv square spans the texture, seen from three poses.
    verts = torch.tensor([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [-0.1, 0.1, 0.0]])
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int32)
    mesh = RenderMesh.create(faces, uvs, faces)
    poses = [torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.4, 0.0, 0.0]), torch.tensor([0.0, -0.4, 0.2])]
    views = torch.stack([verts @ axis_angle_to_matrix(p).T + torch.tensor([0.0, 0.0, 0.35]) for p in poses])
    proj = projection_from_intrinsics(60.0, 60.0, 24.0, 24.0, (48, 48))
    light = Light(torch.tensor([[0.0, 0.0, 0.0]]).expand(3, 3))

    def render(tex: torch.Tensor) -> torch.Tensor:
        return render_shaded(views, mesh, proj, (48, 48), light, tex, ambient=1.0, shadow=None).image

    target = render(target_tex)
    tex = torch.full((1, 8, 8, 3), 0.5, requires_grad=True)
    opt = torch.optim.Adam([tex], lr=0.05)
    for step in range(300):
        opt.zero_grad()
        (render(tex) - target).square().sum().backward()
        opt.step()
        if step == 200:
            opt.param_groups[0]["lr"] = 0.01
    # Border texels are only reached through the wrap-around half of the bilinear footprint.
    torch.testing.assert_close(tex.detach()[:, 1:-1, 1:-1], target_tex[:, 1:-1, 1:-1], atol=0.02, rtol=0)
