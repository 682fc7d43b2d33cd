"""HARP's appearance model: albedo x (ambient + diffuse) with normal mapping and shadow-mapped
self-shadowing, rendered through any `RenderBackend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .backend import RenderBackend, select_backend
from .camera import look_at, orthographic_projection, projection_from_intrinsics, transform_points
from .mesh import vertex_normals, vertex_tangents


@dataclass(frozen=True)
class RenderMesh:
    """Per-topology data reused across frames: faces (F, 3) int32, uvs (T, 2) in texture convention
    (v = 0 at texture row 0), faces_uv (F, 3) int32 and the antialiasing topology of `faces`."""

    faces: torch.Tensor
    uvs: torch.Tensor
    faces_uv: torch.Tensor
    aa_topology: object

    @classmethod
    def create(cls, faces: torch.Tensor, uvs: torch.Tensor, faces_uv: torch.Tensor,
               backend: RenderBackend | None = None) -> "RenderMesh":
        """Build from (F, 3) faces, (T, 2) uvs and (F, 3) faces_uv (moved to the backend's device)."""
        backend = backend or select_backend()
        faces = torch.as_tensor(faces).to(device=backend.device, dtype=torch.int32).contiguous()
        faces_uv = torch.as_tensor(faces_uv).to(device=backend.device, dtype=torch.int32).contiguous()
        uvs = torch.as_tensor(uvs, dtype=torch.float32).to(backend.device)
        return cls(faces, uvs, faces_uv, backend.antialias_topology(faces))


@dataclass
class Light:
    """One light per frame. position: (B, 3) metres in camera space for a point light, or, when
    `directional`, the direction the light travels (B, 3). intensity: scalar or (B,)."""

    position: torch.Tensor
    directional: bool = False
    intensity: float | torch.Tensor = 1.0


@dataclass(frozen=True)
class ShadowSettings:
    """Shadow map resolution (texels a side; None = the larger image side), PCF radius (texels;
    0 = bilinear PCF only) and depth bias in shadow-map texels, scaled up on slopes facing away
    from the light."""

    resolution: int | None = None
    pcf_radius: int = 1
    bias_texels: float = 1.0


@dataclass
class ShadedRender:
    """image (B, H, W, 3) antialiased colour over `background`; alpha (B, H, W, 1) antialiased
    silhouette; normals (B, H, W, 3) unit shading normals in camera space (0 on background);
    visibility (B, H, W, 1) light visibility from the shadow map in [0, 1]; rast (B, H, W, 4)."""

    image: torch.Tensor
    alpha: torch.Tensor
    normals: torch.Tensor
    visibility: torch.Tensor
    rast: torch.Tensor


def material_mip(albedo: torch.Tensor, normal_map: torch.Tensor | None = None) -> ops.MipPyramid:
    """Mip pyramid of albedo (Bt, Ht, Wt, 3) and tangent-space normal map (same size, values in [0, 1])
    sampled together; build once and pass to `render_shaded` when the textures are not optimized."""
    tex = albedo if normal_map is None else torch.cat([albedo, normal_map], -1)
    return ops.texture_mip(tex)


def _light_camera(vertices: torch.Tensor, light: Light, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Light view (B, 4, 4) looking at the mesh centroid, a projection (B, 4, 4) fitted to the
    vertices' extent in that view, and the shadow-map texel size (B,): metres for a directional
    light, metres per metre of light-view depth for a point light."""
    centre = vertices.mean(1)
    radius = (vertices - centre[:, None]).norm(dim=-1).amax(1) * 1.05 + 1e-6
    light_pos = light.position.to(vertices)
    if light.directional:
        direction = F.normalize(light_pos, dim=-1)
        dist = 2.0 * radius + 0.1
        eye = centre - direction * dist[:, None]
    else:
        eye = light_pos
        direction = F.normalize(centre - eye, dim=-1)
    up = torch.tensor([0.0, -1.0, 0.0], dtype=vertices.dtype, device=vertices.device).expand_as(direction)
    side = torch.tensor([1.0, 0.0, 0.0], dtype=vertices.dtype, device=vertices.device).expand_as(direction)
    up = torch.where(((direction * up).sum(-1, keepdim=True)).abs() > 0.99, side, up)
    view = look_at(eye, centre, up)
    v = transform_points(vertices, view)
    if light.directional:
        half = v[..., :2].abs().amax(-1).amax(-1) * 1.02 + 1e-6
        proj = orthographic_projection(half, half, dist - radius, dist + radius,
                                       dtype=vertices.dtype, device=vertices.device)
        return view, proj, 2.0 * half / resolution
    # A point light's frustum only sees what is in front of it; vertices behind it cannot be
    # shadow casters in a single map and are dropped by the rasterizer (w <= 0).
    z = v[..., 2]
    slope = torch.where(z > 1e-6, v[..., :2].abs().amax(-1) / z.clamp(min=1e-6), torch.zeros_like(z))
    tan_half = (slope.amax(-1) * 1.02).clamp(min=1e-3)
    s = float(resolution)
    focal = s / (2.0 * tan_half)
    proj = projection_from_intrinsics(focal, focal, s / 2, s / 2, (resolution, resolution), near=1e-3, far=100.0)
    return view, proj, 2.0 * tan_half / s


def _per_pixel(values: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """values (B, ...) looked up at each pixel's frame; a single frame broadcasts without a gather."""
    return values if values.shape[0] == 1 else values.index_select(0, batch)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Written out: torch.linalg.cross is several times slower on small CPU tensors.
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)


def _shadow_visibility(points: torch.Tensor, normals: torch.Tensor, batch: torch.Tensor, vertices: torch.Tensor,
                       faces: torch.Tensor, light: Light, settings: ShadowSettings, resolution: int,
                       backend: RenderBackend) -> torch.Tensor:
    """Percentage-closer shadow-map test (not differentiable: a depth comparison is a step).

    points, normals: (N, 3) camera-space surface points (metres) and geometric normals (any length);
    batch: (N,) frame index of each point; vertices: (B, V, 3) camera space; faces: (F, 3);
    resolution: shadow map side in texels. Returns (N,) in [0, 1], 1 = fully lit.
    """
    with torch.no_grad():
        s = resolution
        nb = vertices.shape[0]
        light_pos = light.position.to(points).expand(nb, 3)
        if ops._use_kernels(points, vertices):
            view, proj = np.empty((nb, 4, 4)), np.empty((nb, 4, 4))
            texel, pos_l = np.empty(nb), np.empty(tuple(vertices.shape[:2]) + (4,), dtype=np.float32)
            ops._kernels.light_camera(ops._np(vertices), ops._np(light_pos.to(vertices)), light.directional, s,
                                      view, proj, texel, pos_l)
            rast_l, _ = backend.rasterize(torch.from_numpy(pos_l), faces, (s, s), grad_db=False)
            out = np.empty(points.shape[0], dtype=np.float64)
            ops._kernels.shadow_visibility(
                ops._np(rast_l), proj, view, ops._np(batch), ops._np(points.double()), ops._np(normals.double()),
                ops._np(light_pos.double()), light.directional, texel, float(settings.bias_texels),
                settings.pcf_radius, out)
            return torch.from_numpy(out).to(points.dtype)
        view, proj, texel = _light_camera(vertices, light, s)
        proj = proj.expand(nb, 4, 4)
        rast_l, _ = backend.rasterize(transform_points(transform_points(vertices, view)[..., :3], proj).float().contiguous(),
                                      faces, (s, s), grad_db=False)
        # Light-view depth from z_ndc = (p22 z + p23) / (p32 z + p33), for perspective and orthographic alike.
        p = proj[:, None, None].to(rast_l)
        zn = rast_l[..., 2]
        depth = (p[..., 2, 3] - zn * p[..., 3, 3]) / (zn * p[..., 3, 2] - p[..., 2, 2])
        depth = torch.where(rast_l[..., 3] > 0, depth, torch.full_like(depth, float("inf")))
        full = proj @ view
        rows = _per_pixel(torch.stack([full[:, 0], full[:, 1], view[:, 2], full[:, 3]], 1), batch)  # (B|N, 4, 4)
        proj_pts = (rows[..., :3] * points[:, None]).sum(-1) + rows[..., 3]  # x_clip, y_clip, z_view, w_clip
        xy = (proj_pts[:, :2] / proj_pts[:, 3:] + 1.0) * (0.5 * s)
        z = proj_pts[:, 2]
        lp = _per_pixel(light_pos, batch)
        to_light = -lp if light.directional else lp - points
        cos = (F.normalize(to_light, dim=-1) * F.normalize(normals, dim=-1)).sum(-1).abs().clamp(min=0.2)
        slope = torch.sqrt(1.0 - cos**2) / cos
        texel_m = _per_pixel(texel, batch) if light.directional else _per_pixel(texel, batch) * z
        coords = torch.cat([xy, (z - texel_m * (settings.bias_texels + settings.pcf_radius * slope))[:, None]], -1)
        return _pcf_torch(depth, batch, coords, settings.pcf_radius).to(points.dtype)


def _pcf_torch(depth: torch.Tensor, batch: torch.Tensor, coords: torch.Tensor, radius: int) -> torch.Tensor:
    """depth (B, S, S); coords (N, 3) = shadow-map pixel x, y and biased depth. Returns (N,)."""
    nb, sy, sx = depth.shape
    x = coords[:, 0] - 0.5
    y = coords[:, 1] - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    flat = depth.reshape(-1)
    base = batch * (sy * sx)
    acc = torch.zeros_like(x)
    for dy in range(-radius, radius + 2):
        wy = 1.0 - fy if dy == -radius else (fy if dy == radius + 1 else torch.ones_like(fy))
        yy = (y0 + dy).clamp(0, sy - 1)
        for dx in range(-radius, radius + 2):
            wx = 1.0 - fx if dx == -radius else (fx if dx == radius + 1 else torch.ones_like(fx))
            xx = (x0 + dx).clamp(0, sx - 1)
            acc = acc + wx * wy * (coords[:, 2] <= flat[base + yy * sx + xx]).to(x.dtype)
    return acc / (2 * radius + 1) ** 2


def _shade_torch(geo: torch.Tensor, surf: torch.Tensor, tex: torch.Tensor, batch: torch.Tensor,
                 light_pos: torch.Tensor, directional: bool, intensity: torch.Tensor, ambient: torch.Tensor,
                 visibility: torch.Tensor, use_normal_map: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Deferred shading of N pixels (what `_kernels.shade_fwd` computes): geo (N, 6) points and
    interpolated normals; surf (N, 6) uv, tangent, handedness; tex (N, 6) albedo and normal-map
    texels; batch (N,); light_pos, (B, 3); intensity, ambient (B,); visibility (N,).
    Returns color (N, 3) and unit shading normals (N, 3)."""
    points = geo[:, :3]
    normals = n_geo = F.normalize(geo[:, 3:], dim=-1, eps=1e-12)
    if use_normal_map:
        tangent = surf[:, 2:5]
        tangent = F.normalize(tangent - (tangent * n_geo).sum(-1, keepdim=True) * n_geo, dim=-1, eps=1e-12)
        bitangent = _cross(n_geo, tangent) * torch.where(surf[:, 5:6] < 0, -1.0, 1.0)
        nm = tex[:, 3:6] * 2.0 - 1.0
        normals = F.normalize(nm[:, :1] * tangent + nm[:, 1:2] * bitangent + nm[:, 2:3] * n_geo, dim=-1, eps=1e-12)
    lp = _per_pixel(light_pos, batch)
    to_light = -lp if directional else lp - points
    diffuse = (normals * F.normalize(to_light, dim=-1, eps=1e-12)).sum(-1).clamp(min=0.0) * _per_pixel(intensity, batch)
    amb = _per_pixel(ambient, batch)
    return tex[:, :3] * (amb + (1.0 - amb) * diffuse * visibility)[:, None], normals


class _ShadeNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, geo, surf, tex, batch, light_pos, directional, intensity, ambient, visibility, use_nmap):
        dtype = ops._np(geo).dtype
        as_np = lambda t: ops._np(t).astype(dtype, copy=False)  # noqa: E731
        args = [as_np(geo), as_np(surf), as_np(tex), ops._np(batch), as_np(light_pos), directional,
                as_np(intensity), as_np(ambient), as_np(visibility), use_nmap]
        ctx.dtypes = (tex.dtype, light_pos.dtype, intensity.dtype, ambient.dtype)
        color = np.empty((geo.shape[0], 3), dtype=dtype)
        normals = np.empty((geo.shape[0], 3), dtype=dtype)
        ops._kernels.shade_fwd(*args, color, normals)
        ctx.args = args
        normals_t = torch.from_numpy(normals)
        ctx.mark_non_differentiable(normals_t)
        return torch.from_numpy(color), normals_t

    @staticmethod
    def backward(ctx, grad_color, _grad_normals):
        args = ctx.args
        geo, tex, light, intensity = args[0], args[2], args[4], args[6]
        grads = [np.zeros_like(geo), np.zeros_like(tex), np.zeros_like(light), np.zeros_like(intensity),
                 np.zeros_like(intensity)]
        ops._kernels.shade_bwd(*args, ops._np(grad_color).astype(geo.dtype, copy=False), *grads)
        g_geo, g_tex, g_light, g_int, g_amb = (torch.from_numpy(g) for g in grads)
        tex_t, light_t, int_t, amb_t = ctx.dtypes
        return (g_geo, None, g_tex.to(tex_t), None, g_light.to(light_t), None, g_int.to(int_t), g_amb.to(amb_t),
                None, None)


def render_shaded(
    vertices: torch.Tensor, mesh: RenderMesh, projection: torch.Tensor, image_size: Sequence[int],
    light: Light, albedo: torch.Tensor | None = None, normal_map: torch.Tensor | None = None,
    ambient: float | torch.Tensor = 0.4, shadow: ShadowSettings | None = ShadowSettings(),
    background: torch.Tensor | None = None, mip: ops.MipPyramid | None = None,
    backend: RenderBackend | None = None,
) -> ShadedRender:
    """Render the textured, lit, self-shadowed mesh: albedo x (ambient + (1 - ambient) x diffuse).

    vertices: (B, V, 3) float32, metres, OpenCV camera space; projection: (4, 4) or (B, 4, 4) from
    `projection_from_intrinsics`; image_size: (H, W); albedo: (Bt, Ht, Wt, 3) in [0, 1]; normal_map:
    tangent-space normals encoded in [0, 1], same size as albedo, or None for the interpolated vertex
    normals; `mip`: `material_mip(albedo, normal_map)` to skip rebuilding the pyramid (albedo and
    normal_map are then not needed). ambient: ratio in [0, 1], scalar or (B,). shadow: None disables
    self-shadowing. background: (B, H, W, 3) composited before antialiasing.
    Differentiable w.r.t. vertices, textures, light position/intensity and ambient. The tangent frame
    of the normal map is treated as constant w.r.t. the vertices (the geometric normal is not).
    """
    backend = backend or select_backend(device=vertices.device)
    nb = vertices.shape[0]
    h, w = int(image_size[0]), int(image_size[1])
    faces = mesh.faces
    if mip is None:
        if albedo is None:
            raise ValueError("render_shaded needs albedo or mip")
        mip = material_mip(albedo, normal_map)
    has_normal_map = mip.flat.shape[-1] == 6

    pos = transform_points(vertices, projection)
    rast, rast_db = backend.rasterize(pos, faces, (h, w), grad_db=True)
    covered = rast[..., 3:] > 0
    # Shading runs on the covered pixels only (a hand covers a fraction of the frame).
    pix = torch.nonzero(covered.reshape(-1)).squeeze(1)
    batch = torch.div(pix, h * w, rounding_mode="floor")

    normals_v = vertex_normals(vertices, faces)
    geo, _ = backend.interpolate(torch.cat([vertices, normals_v], -1), rast, faces)
    geo = geo.reshape(-1, 6).index_select(0, pix)
    uvs = mesh.uvs.to(vertices.dtype)
    uv_attr = uvs.expand(nb, -1, -1)
    if has_normal_map:
        with torch.no_grad():
            tangents = vertex_tangents(vertices, faces, uvs, mesh.faces_uv)
        uv_attr = torch.cat([uv_attr, tangents], -1)
    surf, uv_da = backend.interpolate(uv_attr, rast, mesh.faces_uv, rast_db=rast_db, diff_attrs=[0, 1])
    surf = surf.reshape(-1, surf.shape[-1]).index_select(0, pix)
    uv_da = uv_da.reshape(-1, 4).index_select(0, pix)
    if mip.flat.shape[0] == 1:
        tex = backend.texture(None, surf[None, :, None, :2].contiguous(), uv_da[None, :, None].contiguous(), mip=mip)
        tex = tex.reshape(-1, mip.flat.shape[-1])
    else:
        full_uv = torch.zeros(nb * h * w, 2, dtype=surf.dtype, device=surf.device).index_copy(0, pix, surf[:, :2])
        full_da = torch.zeros(nb * h * w, 4, dtype=surf.dtype, device=surf.device).index_copy(0, pix, uv_da)
        tex = backend.texture(None, full_uv.view(nb, h, w, 2), full_da.view(nb, h, w, 4), mip=mip)
        tex = tex.reshape(-1, tex.shape[-1]).index_select(0, pix)

    light_pos = light.position.to(vertices).expand(nb, 3)
    intensity = torch.as_tensor(light.intensity, dtype=vertices.dtype, device=vertices.device).expand(nb)
    amb = torch.as_tensor(ambient, dtype=vertices.dtype, device=vertices.device).expand(nb)
    if shadow is not None:
        visibility = _shadow_visibility(geo[:, :3], geo[:, 3:], batch, vertices, faces, light, shadow,
                                        shadow.resolution or max(h, w), backend)
    else:
        visibility = torch.ones_like(geo[:, 0])
    if ops._use_kernels(geo, tex):
        color, normals = _ShadeNumba.apply(geo, surf, tex, batch, light_pos, light.directional, intensity, amb,
                                           visibility, has_normal_map)
    else:
        color, normals = _shade_torch(geo, surf, tex, batch, light_pos, light.directional, intensity, amb,
                                      visibility, has_normal_map)

    flat_bg = vertices.new_zeros(nb * h * w, 3) if background is None else background.to(vertices).reshape(-1, 3)
    image = torch.cat([flat_bg.index_copy(0, pix, color), covered.reshape(-1, 1).to(vertices.dtype)], -1)
    out = backend.antialias(image.view(nb, h, w, 4), rast, pos, faces, topology=mesh.aa_topology)
    full_normals = vertices.new_zeros(nb * h * w, 3).index_copy(0, pix, normals).view(nb, h, w, 3)
    full_vis = vertices.new_zeros(nb * h * w, 1).index_copy(0, pix, visibility[:, None]).view(nb, h, w, 1)
    return ShadedRender(out[..., :3], out[..., 3:], full_normals, full_vis, rast)
