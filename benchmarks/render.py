"""Render benchmark: full hand render (rasterize, interpolate, texture, shading with shadow map,
antialias) forward and forward+backward, at several resolutions, for the open hand and its
subdivision. Prints a markdown table. Run: python -m benchmarks.render
"""

from __future__ import annotations

import argparse
import math
import os

import torch

import harp_track as ht

from benchmarks.timing import machine_description, markdown_table, median_ms
from harp_track.render import (Light, RenderMesh, material_mip, projection_from_intrinsics, render_shaded,
                               select_backend, subdivide)

def load_hand() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Open hand at its zero pose (vertices (V, 3) metres, centred at the origin), faces (F, 3),
    uvs (T, 2), faces_uv (F, 3)."""
    model = ht.load_hand_model()
    with torch.no_grad():
        vertices = model().vertices[0]
    return vertices - vertices.mean(0), model.faces.int(), model.uvs, model.faces_uv.int()


def hand_scene(vertices: torch.Tensor, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Light]:
    """Hand 0.45 m in front of a camera whose image it mostly fills, palm towards the camera, and a
    point light up-left of the camera. Returns vertices (1, V, 3), projection (4, 4) and the light."""
    # The baked hand is thinnest along x; a quarter turn about y shows the palm (x, z) -> (z, -x).
    vertices = torch.stack([vertices[:, 2], vertices[:, 1], -vertices[:, 0]], -1)
    extent = float((vertices[:, :2].amax(0) - vertices[:, :2].amin(0)).max())
    focal = 0.8 * size * 0.45 / extent
    proj = projection_from_intrinsics(focal, focal, size / 2, size / 2, (size, size), device=device)
    placed = (vertices + torch.tensor([0.0, 0.0, 0.45])).to(device)[None]
    light = Light(torch.tensor([[-0.3, -0.4, 0.0]], device=device))
    return placed, proj, light


def synthetic_textures(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth albedo and a bumpy tangent-space normal map, (1, size, size, 3) each."""
    g = torch.linspace(0, 2 * math.pi, size, device=device)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    albedo = torch.stack([0.7 + 0.1 * torch.sin(3 * xx), 0.5 + 0.1 * torch.cos(2 * yy), 0.4 + 0.05 * torch.sin(xx + yy)], -1)
    nx, ny = 0.2 * torch.sin(8 * xx), 0.2 * torch.cos(8 * yy)
    normal = torch.nn.functional.normalize(torch.stack([nx, ny, torch.ones_like(nx)], -1), dim=-1) * 0.5 + 0.5
    return albedo[None], normal[None]


def run(device: str = "cpu", backend_name: str = "torch", resolutions: tuple[int, ...] = (128, 256, 512),
        repeats: int = 10, threads: int = 1) -> str:
    """Markdown table of median forward and forward+backward times of the full shaded hand render."""
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the numba kernels are single-threaded; torch threads only add hand-offs
    backend = select_backend(backend_name, device)
    vertices, faces, uvs, faces_uv = load_hand()
    sub_v, sub_f, sub_uv, sub_fuv = subdivide(vertices, faces, uvs, faces_uv)
    meshes = [("open hand", vertices, faces, uvs, faces_uv), ("open hand, subdivided", sub_v, sub_f, sub_uv, sub_fuv)]
    albedo, normal_map = synthetic_textures(512, backend.device)
    mip = material_mip(albedo, normal_map)
    rows = []
    for size in resolutions:
        for label, v, f, uv, fuv in meshes:
            mesh = RenderMesh.create(f, uv, fuv, backend)
            placed, proj, light = hand_scene(v, size, backend.device)
            verts = placed.clone().requires_grad_(True)

            def forward():
                return render_shaded(verts, mesh, proj, (size, size), light, mip=mip, backend=backend)

            def forward_backward():
                out = forward()
                (out.image.sum() + out.alpha.sum()).backward()

            rows.append([f"{size}x{size}", label, f.shape[0],
                         median_ms(forward, repeats, 2, backend.device), median_ms(forward_backward, repeats, 2, backend.device)])
    torch.set_num_threads(default_threads)
    header = (f"backend={backend.name} device={backend.device} torch threads={threads} load average="
              f"{os.getloadavg()[0]:.2f}; 512x512 albedo + normal map, shadow map at the image resolution, "
              f"backward w.r.t. vertices, median of {repeats}\n\n")
    return header + markdown_table(["resolution", "mesh", "faces", "forward ms", "forward+backward ms"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--backend", default="torch", help="torch or nvdiffrast")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 1 is fastest here")
    args = parser.parse_args(argv)
    print(machine_description())
    print(run(args.device, args.backend, tuple(args.resolutions), args.repeats, args.threads))


if __name__ == "__main__":
    main()
