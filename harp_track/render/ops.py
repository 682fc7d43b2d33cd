"""Torch backend of the rendering primitives (nvdiffrast's contract: rasterize, interpolate, texture,
antialias).

Every primitive has a pure-torch implementation (CPU or CUDA, autograd does the backward) and, for
CPU tensors when numba is importable, a custom autograd function over the kernels in `_kernels.py`
with hand-written backward passes; the two agree to rounding.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

try:
    from . import _kernels
except ImportError:  # numba is optional: everything falls back to vectorized torch
    _kernels = None

HAS_NUMBA = _kernels is not None


def _use_kernels(*tensors: torch.Tensor) -> bool:
    # Reads the module attribute at call time so tests can exercise the vectorized path on the CPU.
    return HAS_NUMBA and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _tri32(tri: torch.Tensor) -> torch.Tensor:
    return tri.to(torch.int32).contiguous()


# --------------------------------------------------------------------------------------------------
# rasterize


def _pixel_ndc(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    px = (2.0 * torch.arange(width, dtype=like.dtype, device=like.device) + 1.0) / width - 1.0
    py = (2.0 * torch.arange(height, dtype=like.dtype, device=like.device) + 1.0) / height - 1.0
    return px.view(1, 1, width), py.view(1, height, 1)


def _visibility_torch(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int,
                      max_pairs: int = 1 << 22) -> torch.Tensor:
    """Triangle id + 1 per pixel (0 = empty), (B, H, W) int64, by a chunked z-buffer over bounding boxes.

    Each (triangle, covered pixel) candidate writes a key packing (depth bits, triangle id) with
    scatter_reduce('amin'), so the nearest triangle wins and ties go to the lower id, as in the kernel.
    """
    with torch.no_grad():
        nb, nv = pos.shape[:2]
        nf = tri.shape[0]
        pos = pos.double()
        w = pos[..., 3]
        sx = (pos[..., 0] / w + 1.0) * 0.5 * width
        sy = (pos[..., 1] / w + 1.0) * 0.5 * height
        zw = pos[..., 2] / w
        t = tri.long()
        fx, fy, fz, fw = sx[:, t], sy[:, t], zw[:, t], w[:, t]  # (B, F, 3)
        area = (fx[..., 1] - fx[..., 0]) * (fy[..., 2] - fy[..., 0]) - (fx[..., 2] - fx[..., 0]) * (fy[..., 1] - fy[..., 0])
        cmin = torch.ceil(fx.amin(-1) - 0.5).clamp(min=0)
        cmax = torch.floor(fx.amax(-1) - 0.5).clamp(max=width - 1)
        rmin = torch.ceil(fy.amin(-1) - 0.5).clamp(min=0)
        rmax = torch.floor(fy.amax(-1) - 0.5).clamp(max=height - 1)
        ok = (fw > 0).all(-1) & (area != 0) & torch.isfinite(area) & (cmax >= cmin) & (rmax >= rmin)
        bw = torch.where(ok, cmax - cmin + 1, 0).long()
        bh = torch.where(ok, rmax - rmin + 1, 0).long()
        flat_tri = torch.nonzero(ok.reshape(-1)).squeeze(1)  # over B*F
        counts = (bw * bh).reshape(-1)[flat_tri]
        key_buf = torch.full((nb * height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=pos.device)
        ends = counts.cumsum(0)
        start = 0
        while start < flat_tri.numel():
            base = ends[start - 1] if start > 0 else 0
            stop = int(torch.searchsorted(ends, base + max_pairs, right=True))
            stop = max(stop, start + 1)
            ids = flat_tri[start:stop]
            cnt = counts[start:stop]
            owner = torch.repeat_interleave(torch.arange(ids.numel(), device=pos.device), cnt)
            local = torch.arange(owner.numel(), device=pos.device) - torch.repeat_interleave(cnt.cumsum(0) - cnt, cnt)
            fid = ids[owner]
            b, f = fid // nf, fid % nf
            bwf = bw.reshape(-1)[fid]
            j = cmin.reshape(-1)[fid].long() + local % bwf
            i = rmin.reshape(-1)[fid].long() + local // bwf
            px, py = j.double() + 0.5, i.double() + 0.5
            x, y, z = fx.reshape(-1, 3)[fid], fy.reshape(-1, 3)[fid], fz.reshape(-1, 3)[fid]
            a = area.reshape(-1)[fid]
            b0 = ((x[:, 1] - px) * (y[:, 2] - py) - (x[:, 2] - px) * (y[:, 1] - py)) / a
            b1 = ((x[:, 2] - px) * (y[:, 0] - py) - (x[:, 0] - px) * (y[:, 2] - py)) / a
            b2 = ((x[:, 0] - px) * (y[:, 1] - py) - (x[:, 1] - px) * (y[:, 0] - py)) / a
            zn = b0 * z[:, 0] + b1 * z[:, 1] + b2 * z[:, 2]
            inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0) & (zn >= -1) & (zn <= 1)
            # Non-negative float32 bit patterns sort like the floats; z_ndc + 1 is in [0, 2].
            zbits = (zn + 1.0).float().view(torch.int32).long()
            key = (zbits << 32) | f
            pix = (b * height + i) * width + j
            key_buf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
            start = stop
        covered = key_buf != torch.iinfo(torch.int64).max
        tid = torch.where(covered, (key_buf & 0xFFFFFFFF) + 1, 0)
        return tid.view(nb, height, width)


def _barycentrics_torch(pos: torch.Tensor, tri: torch.Tensor, tid: torch.Tensor) -> torch.Tensor:
    """Differentiable (u, v, z_ndc) at pixel centres for the given triangle ids; (B, H, W, 3)."""
    nb, height, width = tid.shape
    nv = pos.shape[1]
    covered = tid > 0
    vidx = tri.long()[(tid - 1).clamp(min=0)] + (torch.arange(nb, device=pos.device) * nv).view(nb, 1, 1, 1)
    c = pos.reshape(-1, 4)[vidx]  # (B, H, W, 3, 4)
    px, py = _pixel_ndc(height, width, pos)
    a = c[..., 0] - px[..., None] * c[..., 3]
    e = c[..., 1] - py[..., None] * c[..., 3]
    cr = torch.linalg.cross(a, e, dim=-1)
    s = cr.sum(-1, keepdim=True)
    p = cr / torch.where(covered[..., None], s, torch.ones_like(s))
    zn = (p * c[..., 2]).sum(-1) / torch.where(covered, (p * c[..., 3]).sum(-1), torch.ones_like(s[..., 0]))
    out = torch.cat([p[..., :2], zn[..., None]], -1)
    return torch.where(covered[..., None], out, torch.zeros_like(out))


def _rast_db_torch(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """Barycentric screen derivatives (du/dx, du/dy, dv/dx, dv/dy) per pixel, not differentiable."""
    with torch.no_grad():
        nb, height, width = rast.shape[:3]
        tid = rast[..., 3].long()
        covered = tid > 0
        vidx = tri.long()[(tid - 1).clamp(min=0)] + (torch.arange(nb, device=pos.device) * pos.shape[1]).view(nb, 1, 1, 1)
        c = pos.reshape(-1, 4)[vidx]
        w = c[..., 3]
        sx = (c[..., 0] / w + 1.0) * 0.5 * width
        sy = (c[..., 1] / w + 1.0) * 0.5 * height
        area = (sx[..., 1] - sx[..., 0]) * (sy[..., 2] - sy[..., 0]) - (sx[..., 2] - sx[..., 0]) * (sy[..., 1] - sy[..., 0])
        area = torch.where(covered, area, torch.ones_like(area))
        dbx = torch.stack([sy[..., 1] - sy[..., 2], sy[..., 2] - sy[..., 0], sy[..., 0] - sy[..., 1]], -1) / area[..., None]
        dby = torch.stack([sx[..., 2] - sx[..., 1], sx[..., 0] - sx[..., 2], sx[..., 1] - sx[..., 0]], -1) / area[..., None]
        u, v = rast[..., :1], rast[..., 1:2]
        p = torch.cat([u, v, 1.0 - u - v], -1)
        # Same chain rule as the kernel: u = q0 / sum(q) with q_k = b_k / w_k, and 1 / sum(q) = sum(p_k w_k).
        wbar = (p * w).sum(-1, keepdim=True)
        qx, qy = dbx / w, dby / w
        sxx, syy = qx.sum(-1, keepdim=True), qy.sum(-1, keepdim=True)
        db = torch.cat([qx[..., :1] - u * sxx, qy[..., :1] - u * syy,
                        qx[..., 1:2] - v * sxx, qy[..., 1:2] - v * syy], -1) * wbar
        return torch.where(covered[..., None], db, torch.zeros_like(db))


class _RasterizeNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, height, width, grad_db):
        ctx.set_materialize_grads(False)  # rast_db never has a gradient: don't allocate zeros for it
        nb = pos.shape[0]
        out = np.zeros((nb, height, width, 4), dtype=_np(pos).dtype)
        db = np.zeros((nb, height, width, 4) if grad_db else (0, 0, 0, 4), dtype=out.dtype)
        scratch = (np.empty((pos.shape[1], 4)), np.empty((height, width)), np.empty((height, width), dtype=np.int64))
        _kernels.rasterize_fwd(_np(pos), tri.numpy(), out, db, grad_db, *scratch)
        rast, rast_db = torch.from_numpy(out), torch.from_numpy(db)
        ctx.save_for_backward(pos, tri, rast)
        ctx.mark_non_differentiable(rast_db)
        return rast, rast_db

    @staticmethod
    def backward(ctx, grad_rast, _grad_db):
        if grad_rast is None:
            return None, None, None, None, None
        pos, tri, rast = ctx.saved_tensors
        grad_pos = np.zeros(tuple(pos.shape), dtype=_np(pos).dtype)
        _kernels.rasterize_bwd(_np(pos), tri.numpy(), rast.numpy(), _np(grad_rast).astype(grad_pos.dtype, copy=False), grad_pos)
        return torch.from_numpy(grad_pos), None, None, None, None


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: Sequence[int],
              grad_db: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterize triangles with a z-buffer (nearest z_ndc wins, no face culling).

    pos: (B, V, 4) clip-space vertices (see `camera.projection_from_intrinsics`); tri: (F, 3) int;
    resolution: (H, W). Returns `rast` (B, H, W, 4) = (u, v, z_ndc, triangle id + 1), zeros where
    empty, with u, v the perspective-correct barycentrics of the triangle's vertices 0 and 1 at pixel
    centres; u, v, z_ndc are differentiable w.r.t. pos. Also returns `rast_db` (B, H, W, 4) =
    (du/dx, du/dy, dv/dx, dv/dy) per pixel for mip-level selection (not differentiable; empty
    (0, 0, 0, 4) when grad_db is False). Triangles with any vertex at w <= 0 are dropped rather than
    clipped, and pixels with z_ndc outside [-1, 1] are discarded.
    """
    height, width = int(resolution[0]), int(resolution[1])
    tri = _tri32(tri)
    if _use_kernels(pos):
        return _RasterizeNumba.apply(pos, tri, height, width, grad_db)
    tid = _visibility_torch(pos, tri, height, width)
    rast = torch.cat([_barycentrics_torch(pos, tri, tid), tid[..., None].to(pos.dtype)], -1)
    db = _rast_db_torch(pos, tri, rast) if grad_db else pos.new_zeros(0, 0, 0, 4)
    return rast, db


# --------------------------------------------------------------------------------------------------
# interpolate


def _batched_attr(attr: torch.Tensor) -> torch.Tensor:
    return attr if attr.dim() == 3 else attr.unsqueeze(0)


def _interpolate_torch(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    nb = rast.shape[0]
    na, nv, nc = attr.shape
    tid = rast[..., 3].long()
    covered = (tid > 0)[..., None]
    boff = (torch.arange(nb, device=attr.device) * nv).view(nb, 1, 1, 1) if na > 1 else 0
    vidx = tri.long()[(tid - 1).clamp(min=0)] + boff
    a = attr.reshape(-1, nc)[vidx]  # (B, H, W, 3, C)
    u, v = rast[..., 0:1], rast[..., 1:2]
    out = u * a[..., 0, :] + v * a[..., 1, :] + (1.0 - u - v) * a[..., 2, :]
    return torch.where(covered, out, torch.zeros_like(out))


class _InterpolateNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr, rast, tri):
        nb, height, width = rast.shape[:3]
        out = np.zeros((nb, height, width, attr.shape[2]), dtype=_np(attr).dtype)
        _kernels.interpolate_fwd(_np(attr), _np(rast), tri.numpy(), out)
        ctx.save_for_backward(attr, rast, tri)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        attr, rast, tri = ctx.saved_tensors
        want_attr = ctx.needs_input_grad[0]
        grad_attr = np.zeros(tuple(attr.shape) if want_attr else (0, 0, 0), dtype=_np(attr).dtype)
        grad_rast = np.zeros(tuple(rast.shape), dtype=_np(rast).dtype)
        _kernels.interpolate_bwd(_np(attr), _np(rast), tri.numpy(), _np(grad).astype(grad_rast.dtype, copy=False),
                                 grad_attr, grad_rast, want_attr)
        ga = torch.from_numpy(grad_attr) if want_attr else None
        return ga, torch.from_numpy(grad_rast), None


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                rast_db: torch.Tensor | None = None,
                diff_attrs: Sequence[int] | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate vertex attributes over the rasterized triangles (perspective-correct).

    attr: (B, V, C), (1, V, C) or (V, C); rast: (B, H, W, 4) from `rasterize`; tri: (F, 3) int
    indexing `attr` (may differ from the triangles that were rasterized, e.g. UV faces, as long as
    face order matches). Returns (B, H, W, C), zero on empty pixels, differentiable w.r.t. attr and,
    through rast's barycentrics, the vertex positions. Second value: (B, H, W, 2 * len(diff_attrs))
    screen derivatives (dA/dx, dA/dy per listed channel; 'all' for every channel) when rast_db is
    given, else an empty tensor; not differentiable (used for texture mip levels).
    """
    attr = _batched_attr(attr)
    tri = _tri32(tri)
    if _use_kernels(attr, rast):
        rast_k = rast if rast.dtype == attr.dtype else rast.to(attr.dtype)
        out = _InterpolateNumba.apply(attr, rast_k, tri)
    else:
        out = _interpolate_torch(attr, rast.to(attr.dtype), tri)
    if rast_db is None or diff_attrs is None or rast_db.numel() == 0:
        return out, out.new_zeros(0)
    channels = list(range(attr.shape[-1])) if diff_attrs == "all" else list(diff_attrs)
    with torch.no_grad():
        sub = attr[..., channels]
        if _use_kernels(sub, rast):
            nb, height, width = rast.shape[:3]
            da = np.zeros((nb, height, width, 2 * len(channels)), dtype=_np(sub).dtype)
            _kernels.interpolate_da(_np(sub), _np(rast).astype(da.dtype, copy=False),
                                    _np(rast_db).astype(da.dtype, copy=False), tri.numpy(), da)
            return out, torch.from_numpy(da)
        a = _interpolate_torch(sub, torch.cat([torch.ones_like(rast[..., :1]), torch.zeros_like(rast[..., :1]), rast[..., 2:]], -1), tri)
        b = _interpolate_torch(sub, torch.cat([torch.zeros_like(rast[..., :1]), torch.ones_like(rast[..., :1]), rast[..., 2:]], -1), tri)
        c = _interpolate_torch(sub, torch.cat([torch.zeros_like(rast[..., :2]), rast[..., 2:]], -1), tri)
        d0, d1 = a - c, b - c
        dx = rast_db[..., 0:1] * d0 + rast_db[..., 2:3] * d1
        dy = rast_db[..., 1:2] * d0 + rast_db[..., 3:4] * d1
        return out, torch.stack([dx, dy], -1).flatten(-2)


# --------------------------------------------------------------------------------------------------
# texture


class MipPyramid(NamedTuple):
    """Texture levels concatenated for sampling: flat (Bt, sum h*w, C) and per-level offsets/sizes."""

    flat: torch.Tensor
    offsets: tuple[int, ...]
    heights: tuple[int, ...]
    widths: tuple[int, ...]


def _half_size(level: torch.Tensor) -> torch.Tensor:
    """2x2 box filter of (Bt, H, W, C); an odd side repeats its last row/column first."""
    if level.shape[1] % 2:
        level = torch.cat([level, level[:, -1:]], 1)
    if level.shape[2] % 2:
        level = torch.cat([level, level[:, :, -1:]], 2)
    return 0.25 * (level[:, 0::2, 0::2] + level[:, 1::2, 0::2] + level[:, 0::2, 1::2] + level[:, 1::2, 1::2])


def texture_mip(tex: torch.Tensor, max_mip_level: int | None = None) -> MipPyramid:
    """Box-filtered mip pyramid of tex (Bt, Ht, Wt, C), differentiable w.r.t. tex.

    Build it once and pass it to `texture(..., mip=...)` when the texture is constant across calls.
    """
    levels = [tex]
    while max(levels[-1].shape[1:3]) > 1 and (max_mip_level is None or len(levels) <= max_mip_level):
        levels.append(_half_size(levels[-1]))
    flat = torch.cat([lv.reshape(tex.shape[0], -1, tex.shape[-1]) for lv in levels], 1).contiguous()
    sizes = [lv.shape[1] * lv.shape[2] for lv in levels]
    offsets = tuple(int(o) for o in np.cumsum([0] + sizes[:-1]))
    return MipPyramid(flat, offsets, tuple(lv.shape[1] for lv in levels), tuple(lv.shape[2] for lv in levels))


def _texel_torch(coord: torch.Tensor, size: torch.Tensor, wrap: bool):
    x = coord * size - 0.5
    x0 = torch.floor(x)
    fx = x - x0
    i0 = x0.long()
    i1 = i0 + 1
    if wrap:
        i0, i1 = torch.remainder(i0, size), torch.remainder(i1, size)
    else:
        i0 = torch.minimum(i0.clamp(min=0), size - 1)
        i1 = torch.minimum(i1.clamp(min=0), size - 1)
    return i0, i1, fx


def _texture_torch(mip: MipPyramid, uv: torch.Tensor, lod: torch.Tensor | None, max_lod: float,
                   wrap: bool) -> torch.Tensor:
    flat = mip.flat
    nt, _, nc = flat.shape
    dev = uv.device
    offs = torch.tensor(mip.offsets, device=dev)
    hs = torch.tensor(mip.heights, device=dev)
    ws = torch.tensor(mip.widths, device=dev)
    if lod is None:
        levels = [(torch.zeros_like(uv[..., 0], dtype=torch.long), torch.ones_like(uv[..., 0]))]
    else:
        l0 = torch.floor(lod).long()
        fl = lod - l0
        levels = [(l0, 1.0 - fl), ((l0 + 1).clamp(max=int(max_lod)), fl)]
    bidx = (torch.arange(uv.shape[0], device=dev) if nt > 1 else torch.zeros(uv.shape[0], dtype=torch.long, device=dev))
    bbase = (bidx * flat.shape[1]).view(-1, 1, 1)
    src = flat.reshape(-1, nc)
    out = 0.0
    for level, weight in levels:
        h, w, o = hs[level], ws[level], offs[level] + bbase
        x0, x1, fx = _texel_torch(uv[..., 0], w, wrap)
        y0, y1, fy = _texel_torch(uv[..., 1], h, wrap)
        fx, fy = fx[..., None], fy[..., None]
        top = src[o + y0 * w + x0] * (1.0 - fx) + src[o + y0 * w + x1] * fx
        bot = src[o + y1 * w + x0] * (1.0 - fx) + src[o + y1 * w + x1] * fx
        out = out + weight[..., None] * (top * (1.0 - fy) + bot * fy)
    return out


class _TextureNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat, uv, uv_da, max_lod, offs, hs, ws, wrap):
        dtype = _np(flat).dtype
        shape = tuple(uv.shape[:3]) + (flat.shape[2],)
        out = np.empty(shape, dtype=dtype)
        want_duv = uv.requires_grad
        duv = np.empty(shape + (2,) if want_duv else (0, 0, 0, 0, 2), dtype=dtype)
        da = _np(uv_da).astype(dtype, copy=False) if uv_da is not None else np.zeros((0, 0, 0, 4), dtype=dtype)
        uv_np = _np(uv).astype(dtype, copy=False)
        _kernels.texture_fwd(_np(flat), offs, hs, ws, uv_np, da, max_lod, wrap, out, duv, want_duv)
        ctx.save_for_backward(flat, uv)
        ctx.extra = (uv_np, da, max_lod, offs, hs, ws, wrap, duv)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        flat, uv = ctx.saved_tensors
        uv_np, da, max_lod, offs, hs, ws, wrap, duv = ctx.extra
        g = _np(grad).astype(uv_np.dtype, copy=False)
        grad_flat = grad_uv = None
        if ctx.needs_input_grad[0]:
            gf = np.zeros(tuple(flat.shape), dtype=g.dtype)
            _kernels.texture_bwd_tex(offs, hs, ws, uv_np, da, max_lod, wrap, g, gf)
            grad_flat = torch.from_numpy(gf)
        if ctx.needs_input_grad[1]:
            nc = g.shape[-1]
            guv = np.empty(tuple(uv.shape[:3]) + (2,), dtype=g.dtype)
            _kernels.texture_bwd_uv(g.reshape(-1, nc), duv.reshape(-1, nc, 2), guv.reshape(-1, 2))
            grad_uv = torch.from_numpy(guv).to(uv.dtype)
        return grad_flat, grad_uv, None, None, None, None, None, None


def _mip_lod(uv_da: torch.Tensor, mip: MipPyramid, max_lod: float) -> torch.Tensor:
    """Per-pixel mip level from the uv footprint, as the kernel computes it."""
    h0, w0 = mip.heights[0], mip.widths[0]
    dx = (uv_da[..., 0] * w0).square() + (uv_da[..., 2] * h0).square()
    dy = (uv_da[..., 1] * w0).square() + (uv_da[..., 3] * h0).square()
    return (0.5 * torch.log2(torch.maximum(dx, dy).clamp(min=1e-20))).clamp(0.0, max_lod)


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: torch.Tensor | None = None,
            filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: int | None = None,
            mip: MipPyramid | None = None) -> torch.Tensor:
    """Sample a texture bilinearly, trilinearly across mip levels when minified.

    tex: (Bt, Ht, Wt, C) with Bt in {1, B}; uv: (B, H, W, 2) in [0, 1], u along Wt, v along Ht with
    v = 0 at row 0 (nvdiffrast's convention; flip OBJ-style v first); uv_da: (B, H, W, 4) =
    (du/dx, du/dy, dv/dx, dv/dy) from `interpolate(..., rast_db, diff_attrs=...)`, which selects the
    mip level per pixel. filter_mode: 'auto' (mipmapped when uv_da is given), 'linear' or
    'linear-mipmap-linear'; boundary_mode: 'wrap' or 'clamp'. `mip` reuses a `texture_mip(tex)`
    pyramid (then tex is ignored). Returns (B, H, W, C), differentiable w.r.t. tex and uv (the mip
    level itself is treated as constant).
    """
    if boundary_mode not in ("wrap", "clamp"):
        raise ValueError(f"boundary_mode must be 'wrap' or 'clamp', got {boundary_mode!r}")
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if uv_da is not None else "linear"
    if filter_mode not in ("linear", "linear-mipmap-linear"):
        raise ValueError(f"unsupported filter_mode {filter_mode!r}")
    mipmapped = filter_mode == "linear-mipmap-linear"
    if mipmapped and uv_da is None:
        raise ValueError("filter_mode 'linear-mipmap-linear' needs uv_da")
    if mip is None:
        mip = texture_mip(tex, max_mip_level if mipmapped else 0)
    max_lod = float(len(mip.offsets) - 1)
    if max_mip_level is not None:
        max_lod = min(max_lod, float(max_mip_level))
    wrap = boundary_mode == "wrap"
    if _use_kernels(mip.flat, uv):
        meta = [np.asarray(m, dtype=np.int64) for m in (mip.offsets, mip.heights, mip.widths)]
        da = uv_da.detach() if mipmapped else None
        return _TextureNumba.apply(mip.flat, uv, da, max_lod, *meta, wrap)
    lod = _mip_lod(uv_da.detach(), mip, max_lod) if mipmapped else None
    return _texture_torch(mip, uv.to(mip.flat.dtype), lod, max_lod, wrap)


# --------------------------------------------------------------------------------------------------
# antialias


def antialias_topology(tri: torch.Tensor) -> torch.Tensor:
    """For each triangle edge k = (tri[f, k], tri[f, (k+1) % 3]): the vertex opposite that edge in the
    neighbouring triangle, or -1 on boundary and non-manifold edges. (F, 3) int32, on tri's device.

    Compute once per mesh topology and pass it to `antialias`.
    """
    t = tri.detach().cpu().long().numpy()
    nf = t.shape[0]
    a, b = t, np.roll(t, -1, axis=1)
    key = (np.minimum(a, b) * (t.max() + 1) + np.maximum(a, b)).reshape(-1)
    opposite = np.roll(t, -2, axis=1).reshape(-1)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    _, start, count = np.unique(sk, return_index=True, return_counts=True)
    out = np.full(3 * nf, -1, dtype=np.int32)
    pair = start[count == 2]
    e0, e1 = order[pair], order[pair + 1]
    out[e0] = opposite[e1]
    out[e1] = opposite[e0]
    return torch.from_numpy(out.reshape(nf, 3)).to(tri.device)


def _antialias_torch(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
                     topo: torch.Tensor) -> torch.Tensor:
    nb, height, width, nc = color.shape
    nv = pos.shape[1]
    tid = rast[..., 3].long()
    z = rast[..., 2]
    w = pos[..., 3]
    scr = torch.stack([(pos[..., 0] / w + 1.0) * 0.5 * width, (pos[..., 1] / w + 1.0) * 0.5 * height], -1)
    scr = scr.reshape(-1, 2)
    wflat = w.reshape(-1)
    tri_l, topo_l = tri.long(), topo.long()
    color_flat = color.reshape(-1, nc)
    out = color_flat
    for axis in (2, 1):
        n = tid.shape[axis]
        ida, idb = tid.narrow(axis, 0, n - 1), tid.narrow(axis, 1, n - 1)
        za, zb = z.narrow(axis, 0, n - 1), z.narrow(axis, 1, n - 1)
        a_front = (idb == 0) | ((ida != 0) & (za < zb))
        sel = torch.nonzero(ida != idb)
        if sel.shape[0] == 0:
            continue
        bi, ii, jj = sel.unbind(1)
        di, dj = (0, 1) if axis == 2 else (1, 0)
        af = a_front[bi, ii, jj]
        fi = torch.where(af, ii, ii + di)
        fj = torch.where(af, jj, jj + dj)
        oi = torch.where(af, ii + di, ii)
        oj = torch.where(af, jj + dj, jj)
        f = torch.where(af, ida[bi, ii, jj], idb[bi, ii, jj]) - 1
        vid = tri_l[f] + (bi * nv)[:, None]  # (N, 3)
        pf = torch.stack([fj, fi], -1).to(pos.dtype) + 0.5
        po = torch.stack([oj, oi], -1).to(pos.dtype) + 0.5
        va = scr[vid]  # (N, 3, 2)
        vb = va.roll(-1, dims=1)

        def edge(p):
            return (vb[..., 0] - va[..., 0]) * (p[:, None, 1] - va[..., 1]) - (vb[..., 1] - va[..., 1]) * (p[:, None, 0] - va[..., 0])

        ef, eo = edge(pf), edge(po)
        crossing = (ef != 0) & (ef * eo <= 0)
        t = torch.where(crossing, ef / torch.where(crossing, ef - eo, torch.ones_like(ef)), torch.full_like(ef, 2.0))
        best_t, best_k = t.min(-1)
        nbr = topo_l[f].gather(1, best_k[:, None]).squeeze(1)
        has_nbr = nbr >= 0
        nvid = torch.where(has_nbr, nbr, 0) + bi * nv
        a = va.gather(1, best_k[:, None, None].expand(-1, 1, 2)).squeeze(1)
        b = vb.gather(1, best_k[:, None, None].expand(-1, 1, 2)).squeeze(1)
        c = va.roll(-2, dims=1).gather(1, best_k[:, None, None].expand(-1, 1, 2)).squeeze(1)
        nn_ = scr[nvid]
        ec = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        en = (b[:, 0] - a[:, 0]) * (nn_[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (nn_[:, 0] - a[:, 0])
        folded = ~has_nbr | (wflat[nvid] <= 0) | (ec * en >= 0)
        ok = (best_t <= 1.0) & folded & (wflat[vid] > 0).all(-1)
        if not bool(ok.any()):
            continue
        best_t, bi, fi, fj, oi, oj = best_t[ok], bi[ok], fi[ok], fj[ok], oi[ok], oj[ok]
        other_side = best_t > 0.5
        wgt = torch.where(other_side, best_t - 0.5, 0.5 - best_t)
        pix_f = (bi * height + fi) * width + fj
        pix_o = (bi * height + oi) * width + oj
        px = torch.where(other_side, pix_o, pix_f)
        py = torch.where(other_side, pix_f, pix_o)
        out = out.index_add(0, px, wgt[:, None] * (color_flat[py] - color_flat[px]))
    return out.view(nb, height, width, nc)


def _aa_scratch(pos: torch.Tensor, tri: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return np.empty(tuple(pos.shape[:2]) + (3,)), np.empty((pos.shape[0], tri.shape[0]), dtype=np.int64)


def _aa_hit_buffers(nb: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Room for every horizontal and vertical pixel pair (see `_kernels.antialias_fwd`)."""
    n = max(nb * (height * (width - 1) + width * (height - 1)), 1)
    return np.empty((n, 7), dtype=np.int64), np.empty(n)


class _AntialiasNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, color, rast, pos, tri, topo):
        c = _np(color)
        out = c.copy()
        nb, height, width = rast.shape[:3]
        hits, hit_t = _aa_hit_buffers(nb, height, width)
        count = _kernels.antialias_fwd(c, _np(rast), _np(pos), tri.numpy(), topo.numpy(), out, *_aa_scratch(pos, tri),
                                       hits, hit_t)
        ctx.save_for_backward(color, pos, tri)
        # Only the blended pairs matter to the backward pass; keep a compact copy of them.
        ctx.hits = (hits[:count].copy(), hit_t[:count].copy(), count)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        color, pos, tri = ctx.saved_tensors
        c = _np(color)
        grad_color = _np(grad).astype(c.dtype, copy=True)
        grad_pos = np.zeros(tuple(pos.shape), dtype=_np(pos).dtype)
        _kernels.antialias_bwd(c, _np(pos), tri.numpy(), *ctx.hits, _np(grad).astype(c.dtype, copy=False),
                               grad_color, grad_pos, np.empty(tuple(pos.shape[:2]) + (3,)))
        return torch.from_numpy(grad_color), None, torch.from_numpy(grad_pos), None, None


def antialias(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
              topology: torch.Tensor | None = None) -> torch.Tensor:
    """Analytic antialiasing of silhouette edges (nvdiffrast's method).

    color: (B, H, W, C); rast: (B, H, W, 4) from `rasterize`; pos: (B, V, 4) clip space; tri: (F, 3);
    topology: `antialias_topology(tri)` (computed here when omitted). For each horizontal or vertical
    pixel pair showing different triangles, if the front triangle leaves the segment between the two
    centres through a silhouette edge, the pixel on the wrong side of the crossing is blended with
    its neighbour by the crossing's distance to the midpoint. Returns (B, H, W, C), differentiable
    w.r.t. color and (through the crossing point) the silhouette vertices' positions.
    """
    tri = _tri32(tri)
    topo = antialias_topology(tri) if topology is None else topology.to(torch.int32).contiguous()
    if _use_kernels(color, pos):
        dtype = color.dtype
        return _AntialiasNumba.apply(color, rast.to(dtype), pos.to(dtype), tri, topo)
    return _antialias_torch(color, rast.to(color.dtype), pos.to(color.dtype), tri, topo)
