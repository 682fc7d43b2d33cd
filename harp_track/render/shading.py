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
            out = _shadow_visibility_np(ops._np(points), ops._np(normals), ops._np(batch), ops._np(vertices),
                                        ops._tri32(faces).numpy(), ops._np(light_pos.to(vertices)), light.directional,
                                        settings, s)
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


def _shadow_visibility_np(points: np.ndarray, normals: np.ndarray, batch: np.ndarray, vertices: np.ndarray,
                          faces: np.ndarray, light_pos: np.ndarray, directional: bool, settings: ShadowSettings,
                          s: int) -> np.ndarray:
    """The numba path of `_shadow_visibility` on numpy arrays; returns (N,) float64."""
    nb = vertices.shape[0]
    view, proj = np.empty((nb, 4, 4)), np.empty((nb, 4, 4))
    texel, pos_l = np.empty(nb), np.empty(tuple(vertices.shape[:2]) + (4,), dtype=np.float32)
    ops._kernels.light_camera(vertices, light_pos, directional, s, view, proj, texel, pos_l)
    # Depth-only rasterization: the shadow test needs neither barycentrics nor an autograd node.
    depth = np.empty((nb, s, s))
    ops._kernels.shadow_depth_map(pos_l, faces, proj, np.empty((pos_l.shape[1], 4)), np.empty((s, s)),
                                  np.empty((s, s), dtype=np.int64), depth)
    out = np.empty(points.shape[0], dtype=np.float64)
    ops._kernels.shadow_visibility(depth, proj, view, batch, points.astype(np.float64), normals.astype(np.float64),
                                   light_pos.astype(np.float64), directional, texel, float(settings.bias_texels),
                                   settings.pcf_radius, out)
    return out


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


_FUSED = True  # take `_RenderNumba` where it applies (tests turn it off to compare with the per-primitive path)


class _RenderNumba(torch.autograd.Function):
    """The whole of `render_shaded` on the numba kernels as one autograd node (CPU): the same kernels
    the per-primitive functions run, chained in numpy, so a frame pays for one graph node instead of
    a dozen plus their torch glue. Inputs: pos (B,V,4) clip space, vertices (B,V,3), the mip pyramid's
    flat texels, light_pos (B,3), intensity, ambient (B,), background (B*H*W,3) or None; cfg holds
    the constants. Outputs: image, alpha (differentiable), normals, visibility, rast."""

    @staticmethod
    def forward(ctx, pos, vertices, flat, light_pos, intensity, ambient, background, cfg):
        ctx.set_materialize_grads(False)
        k = ops._kernels
        (faces, faces_uv, uvs, topo, offs, hs, ws, max_lod, shadow, directional, use_nmap, h, w) = cfg
        nb, nv = vertices.shape[:2]
        pos_np, v = ops._np(pos), ops._np(vertices)
        dtype = v.dtype
        pos_np = pos_np.astype(dtype, copy=False)
        # Camera rasterization with barycentric screen derivatives.
        rast = np.zeros((nb, h, w, 4), dtype=dtype)
        db = np.empty((nb, h, w, 4), dtype=dtype)  # read at covered pixels only
        k.rasterize_fwd(pos_np, faces, rast, db, True, np.empty((nv, 4)), np.empty((h, w)),
                        np.empty((h, w), dtype=np.int64))
        pix = np.flatnonzero(rast[..., 3] > 0)
        batch = pix // (h * w)
        n = pix.shape[0]
        # Per-vertex attributes: positions and area-weighted normals; uvs and tangent frames.
        acc_n = np.zeros_like(v)
        normals_v = np.zeros_like(v)
        k.vertex_normals_fwd(v, faces, acc_n, normals_v)
        geo_attr = np.concatenate([v, normals_v], -1)
        uv_b = uvs.astype(dtype, copy=False)[None]
        if use_nmap:
            acc_t = np.zeros((nb, uvs.shape[0], 4), dtype=dtype)
            k.vertex_tangents_fwd(v, faces, uv_b[0], faces_uv, acc_t)
            tangents = np.empty_like(acc_t)
            k.tangent_frames(acc_t, tangents)
            uv_attr = np.concatenate([np.broadcast_to(uv_b, (nb,) + uv_b.shape[1:]), tangents], -1)
        else:
            uv_attr = np.ascontiguousarray(uv_b)
        geo = np.empty((n, 6), dtype=dtype)
        surf = np.empty((n, uv_attr.shape[2]), dtype=dtype)
        uv_da = np.empty((n, 4), dtype=dtype)
        k.surface_fwd(geo_attr, faces, uv_attr, faces_uv, rast, db, pix, geo, surf, uv_da)
        # Texture at the covered pixels, with d(texel)/d(uv) for the backward pass.
        flat_np = ops._np(flat)
        nc = flat_np.shape[2]
        uv_px = np.ascontiguousarray(surf[:, :2]).astype(flat_np.dtype, copy=False).reshape(1, n, 1, 2)
        da_px = uv_da.astype(flat_np.dtype, copy=False).reshape(1, n, 1, 4)
        tex = np.empty((1, n, 1, nc), dtype=flat_np.dtype)
        duv = np.empty((1, n, 1, nc, 2), dtype=flat_np.dtype)
        k.texture_fwd(flat_np, offs, hs, ws, uv_px, da_px, max_lod, True, tex, duv, True)
        tex2 = tex.reshape(n, nc).astype(dtype, copy=False)
        light_np = ops._np(light_pos).astype(dtype, copy=False)
        if shadow is not None:
            vis = _shadow_visibility_np(geo[:, :3], geo[:, 3:], batch, v, faces, ops._np(light_pos).astype(dtype, copy=False),
                                        directional, shadow[0], shadow[1]).astype(dtype)
        else:
            vis = np.ones(n, dtype=dtype)
        inten = ops._np(intensity).astype(dtype, copy=False)
        amb = ops._np(ambient).astype(dtype, copy=False)
        color = np.empty((n, 3), dtype=dtype)
        normals = np.empty((n, 3), dtype=dtype)
        k.shade_fwd(geo, surf, tex2, batch, light_np, directional, inten, amb, vis, use_nmap, color, normals)
        # Composite over the background, antialias.
        bg = np.zeros((0, 3), dtype) if background is None else ops._np(background).astype(dtype, copy=False)
        img = np.empty((nb, h, w, 4), dtype=dtype)
        out = np.empty_like(img)
        k.composite_pack(color, bg, pix, img.reshape(-1, 4), out.reshape(-1, 4))
        hits, hit_t = ops._aa_hit_buffers(nb, h, w)
        count = k.antialias_fwd(img, rast, pos_np, faces, topo, out, np.empty((nb, nv, 3)),
                                np.empty((nb, faces.shape[0]), dtype=np.int64), hits, hit_t)
        image, alpha = np.empty((nb, h, w, 3), dtype), np.empty((nb, h, w, 1), dtype)
        k.split_rgba(out.reshape(-1, 4), image.reshape(-1, 3), alpha.reshape(-1, 1))
        full_normals = np.zeros((nb, h, w, 3), dtype=dtype)
        full_vis = np.zeros((nb, h, w, 1), dtype=dtype)
        k.scatter_rows(normals, pix, full_normals.reshape(-1, 3))
        k.scatter_rows(vis.reshape(-1, 1), pix, full_vis.reshape(-1, 1))

        ctx.state = (pos_np, v, rast, pix, batch, acc_n, geo_attr, uv_attr, geo, surf, tex2, light_np, inten, amb,
                     vis, img, (hits[:count].copy(), hit_t[:count].copy(), count), uv_px, da_px, duv)
        ctx.cfg = cfg
        ctx.dtypes = (pos.dtype, vertices.dtype, flat.dtype, light_pos.dtype, intensity.dtype, ambient.dtype,
                      None if background is None else background.dtype, flat.shape)
        outs = [torch.from_numpy(a) for a in (image, alpha, full_normals, full_vis, rast)]
        ctx.mark_non_differentiable(*outs[2:])
        return tuple(outs)

    @staticmethod
    def backward(ctx, grad_image, grad_alpha, _gn, _gv, _gr):
        if grad_image is None and grad_alpha is None:
            return (None,) * 8
        k = ops._kernels
        (faces, faces_uv, uvs, topo, offs, hs, ws, max_lod, shadow, directional, use_nmap, h, w) = ctx.cfg
        (pos_np, v, rast, pix, batch, acc_n, geo_attr, uv_attr, geo, surf, tex2, light_np, inten, amb, vis, img,
         hits, uv_px, da_px, duv) = ctx.state
        pos_t, vert_t, flat_t, light_t, int_t, amb_t, bg_t, flat_shape = ctx.dtypes
        dtype = v.dtype
        nb, nv = v.shape[:2]
        n = pix.shape[0]
        # Antialias.
        gi = np.zeros((0, 3), dtype) if grad_image is None else ops._np(grad_image).astype(dtype, copy=False).reshape(-1, 3)
        ga = np.zeros((0, 1), dtype) if grad_alpha is None else ops._np(grad_alpha).astype(dtype, copy=False).reshape(-1, 1)
        grad = np.empty(img.shape, dtype=dtype)
        grad_img = np.empty_like(grad)
        k.merge_rgba(gi, ga, grad.reshape(-1, 4), grad_img.reshape(-1, 4))
        grad_pos = np.zeros(pos_np.shape, dtype=dtype)
        k.antialias_bwd(img, pos_np, faces, hits[0], hits[1], hits[2], grad, grad_img, grad_pos, np.empty((nb, nv, 3)))
        flat_g = grad_img.reshape(-1, 4)
        grad_color = np.empty((n, 3), dtype)
        k.gather_rgb(flat_g, pix, grad_color)
        grad_bg = None
        if ctx.needs_input_grad[6]:
            gb = flat_g[:, :3].copy()
            gb[pix] = 0.0
            grad_bg = torch.from_numpy(gb).to(bg_t)
        # Shading.
        g_geo, g_tex = np.zeros_like(geo), np.zeros_like(tex2)
        g_light, g_int, g_amb = np.zeros_like(light_np), np.zeros_like(inten), np.zeros_like(inten)
        k.shade_bwd(geo, surf, tex2, batch, light_np, directional, inten, amb, vis, use_nmap, grad_color,
                    g_geo, g_tex, g_light, g_int, g_amb)
        # Texture.
        nc = tex2.shape[1]
        g_tex_t = g_tex.astype(duv.dtype, copy=False)
        grad_flat = None
        if ctx.needs_input_grad[2]:
            gf = np.zeros(flat_shape, dtype=duv.dtype)
            k.texture_bwd_tex(offs, hs, ws, uv_px, da_px, max_lod, True, g_tex_t.reshape(1, n, 1, nc), gf)
            grad_flat = torch.from_numpy(gf).to(flat_t)
        g_surf = np.zeros_like(surf)
        guv = np.empty((n, 2), dtype=duv.dtype)
        k.texture_bwd_uv(g_tex_t, duv.reshape(n, nc, 2), guv)
        g_surf[:, :2] = guv
        # Interpolation, vertex normals, rasterization.
        g_attr = np.zeros(geo_attr.shape, dtype)
        grad_rast = np.zeros(rast.shape, dtype)
        k.surface_bwd(geo_attr, faces, uv_attr, faces_uv, rast, pix, g_geo, g_surf, g_attr,
                      np.zeros((0, 0, 0), dtype), grad_rast, True, False)
        g_vert = np.ascontiguousarray(g_attr[..., :3])
        k.vertex_normals_bwd(v, faces, acc_n, np.ascontiguousarray(g_attr[..., 3:]), g_vert,
                             np.empty(v.shape[1:], dtype=dtype))
        k.rasterize_bwd(pos_np, faces, rast, grad_rast, grad_pos)
        return (torch.from_numpy(grad_pos).to(pos_t), torch.from_numpy(g_vert).to(vert_t), grad_flat,
                torch.from_numpy(g_light).to(light_t), torch.from_numpy(g_int).to(int_t),
                torch.from_numpy(g_amb).to(amb_t), grad_bg, None)


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
    if (_FUSED and ops._use_kernels(pos, vertices, mip.flat) and mip.flat.shape[0] == 1 and not mesh.uvs.requires_grad
            and isinstance(mesh.aa_topology, torch.Tensor)):
        light_pos = light.position.to(vertices).expand(nb, 3)
        intensity = torch.as_tensor(light.intensity, dtype=vertices.dtype, device=vertices.device).expand(nb)
        amb = torch.as_tensor(ambient, dtype=vertices.dtype, device=vertices.device).expand(nb)
        bg = None if background is None else background.to(vertices).reshape(-1, 3)
        max_lod = float(len(mip.offsets) - 1)
        meta = tuple(np.asarray(m, dtype=np.int64) for m in (mip.offsets, mip.heights, mip.widths))
        shadow_cfg = None if shadow is None else (shadow, int(shadow.resolution or max(h, w)))
        cfg = (ops._tri32(faces).numpy(), ops._tri32(mesh.faces_uv).numpy(), ops._np(mesh.uvs),
               mesh.aa_topology.to(torch.int32).contiguous().numpy(), *meta, max_lod, shadow_cfg,
               bool(light.directional), has_normal_map, h, w)
        image, alpha, full_normals, full_vis, rast = _RenderNumba.apply(pos, vertices, mip.flat, light_pos, intensity,
                                                                        amb, bg, cfg)
        return ShadedRender(image, alpha, full_normals, full_vis, rast)
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
