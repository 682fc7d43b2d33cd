"""Numba CPU kernels behind the torch backend's custom autograd functions.

Each kernel mirrors a pure-torch reference in `ops.py` (used on CUDA and when numba is missing);
tests check that the two agree. The kernels are single-threaded on purpose: at tracking resolutions
they take well under a millisecond, where thread start-up and a busy second core cost more than
they save, and serial loops keep gradient scatter-adds deterministic and compile quickly.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_jit_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_jit_inline
def _zbuffer(pos, tri, b, height, width, scr, zbuf, ids):
    """Visibility pass of frame b: nearest z_ndc into zbuf (H,W) float64 (inf where empty) and the
    triangle index into ids (H,W) (-1 where empty), with incremental edge functions; scr (V,4) gets
    the vertices' pixel x, y, z_ndc and w."""
    nv = pos.shape[1]
    # Project every vertex once; triangles then only gather.
    for k in range(nv):
        w = pos[b, k, 3]
        scr[k, 3] = w
        if w > 0.0:
            scr[k, 0] = (pos[b, k, 0] / w + 1.0) * 0.5 * width
            scr[k, 1] = (pos[b, k, 1] / w + 1.0) * 0.5 * height
            scr[k, 2] = pos[b, k, 2] / w
    zbuf[:] = np.inf
    ids[:] = -1
    for f in range(tri.shape[0]):
        i0, i1, i2 = tri[f, 0], tri[f, 1], tri[f, 2]
        if scr[i0, 3] <= 0.0 or scr[i1, 3] <= 0.0 or scr[i2, 3] <= 0.0:
            continue
        x0, y0, x1, y1, x2, y2 = scr[i0, 0], scr[i0, 1], scr[i1, 0], scr[i1, 1], scr[i2, 0], scr[i2, 1]
        cmin = max(math.ceil(min(x0, x1, x2) - 0.5), 0)
        cmax = min(math.floor(max(x0, x1, x2) - 0.5), width - 1)
        rmin = max(math.ceil(min(y0, y1, y2) - 0.5), 0)
        rmax = min(math.floor(max(y0, y1, y2) - 0.5), height - 1)
        if cmin > cmax or rmin > rmax:
            continue
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or not math.isfinite(area):
            continue
        inv_area = 1.0 / area
        zw0, zw1, zw2 = scr[i0, 2], scr[i1, 2], scr[i2, 2]
        # Normalized edge functions b_k(px, py) = a_k px + c_k py + d_k (the screen barycentrics).
        a0, c0 = (y1 - y2) * inv_area, (x2 - x1) * inv_area
        a1, c1 = (y2 - y0) * inv_area, (x0 - x2) * inv_area
        a2, c2 = (y0 - y1) * inv_area, (x1 - x0) * inv_area
        d0 = (x1 * y2 - x2 * y1) * inv_area
        d1 = (x2 * y0 - x0 * y2) * inv_area
        d2 = (x0 * y1 - x1 * y0) * inv_area
        for i in range(rmin, rmax + 1):
            py = i + 0.5
            e0, e1, e2 = c0 * py + d0, c1 * py + d1, c2 * py + d2
            for j in range(cmin, cmax + 1):
                px = j + 0.5
                b0, b1, b2 = a0 * px + e0, a1 * px + e1, a2 * px + e2
                if b0 >= 0.0 and b1 >= 0.0 and b2 >= 0.0:
                    zn = b0 * zw0 + b1 * zw1 + b2 * zw2
                    if -1.0 <= zn <= 1.0 and zn < zbuf[i, j]:
                        zbuf[i, j] = zn
                        ids[i, j] = f


@_jit
def rasterize_fwd(pos, tri, out, db, want_db, scr, zbuf, ids):
    """pos (B,V,4) clip; tri (F,3); out (B,H,W,4) zeroed; db (B,H,W,4) zeroed when want_db;
    scratch: scr (V,4) float64, zbuf (H,W) float64, ids (H,W) int64.

    Pass 1 resolves visibility (z-buffer of triangle ids) with incremental edge functions; pass 2
    computes barycentrics once per covered pixel, so overdraw costs only a depth test.
    """
    # Scratch comes from the caller: allocating megabytes inside a kernel costs page faults on every
    # call, whereas numpy's allocator recycles the caller's buffers.
    nb = pos.shape[0]
    height, width = out.shape[1], out.shape[2]
    for b in range(nb):
        _zbuffer(pos, tri, b, height, width, scr, zbuf, ids)
        for i in range(height):
            py = i + 0.5
            for j in range(width):
                f = ids[i, j]
                if f < 0:
                    continue
                i0, i1, i2 = tri[f, 0], tri[f, 1], tri[f, 2]
                x0, y0, x1, y1, x2, y2 = scr[i0, 0], scr[i0, 1], scr[i1, 0], scr[i1, 1], scr[i2, 0], scr[i2, 1]
                w0, w1, w2 = scr[i0, 3], scr[i1, 3], scr[i2, 3]
                px = j + 0.5
                inv_area = 1.0 / ((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
                b0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv_area
                b1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv_area
                b2 = 1.0 - b0 - b1
                q0, q1, q2 = b0 / w0, b1 / w1, b2 / w2
                s = q0 + q1 + q2
                u = q0 / s
                v = q1 / s
                out[b, i, j, 0] = u
                out[b, i, j, 1] = v
                out[b, i, j, 2] = zbuf[i, j]
                out[b, i, j, 3] = f + 1
                if want_db:
                    # d(b_k)/d(pixel x, y) are constant per triangle; the chain rule through the
                    # perspective division gives the barycentric derivatives used for mip levels.
                    dq0x, dq0y = (y1 - y2) * inv_area / w0, (x2 - x1) * inv_area / w0
                    dq1x, dq1y = (y2 - y0) * inv_area / w1, (x0 - x2) * inv_area / w1
                    dq2x, dq2y = (y0 - y1) * inv_area / w2, (x1 - x0) * inv_area / w2
                    dsx = dq0x + dq1x + dq2x
                    dsy = dq0y + dq1y + dq2y
                    db[b, i, j, 0] = (dq0x - u * dsx) / s
                    db[b, i, j, 1] = (dq0y - u * dsy) / s
                    db[b, i, j, 2] = (dq1x - v * dsx) / s
                    db[b, i, j, 3] = (dq1y - v * dsy) / s


@_jit
def rasterize_bwd(pos, tri, rast, grad, grad_pos):
    """grad (B,H,W,4) w.r.t. (u, v, z_ndc, -); grad_pos (B,V,4) zeroed."""
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    for b in range(nb):
        for i in range(height):
            py = 2.0 * (i + 0.5) / height - 1.0
            for j in range(width):
                fid = int(rast[b, i, j, 3])
                if fid == 0:
                    continue
                gu, gv, gz = grad[b, i, j, 0], grad[b, i, j, 1], grad[b, i, j, 2]
                if gu == 0.0 and gv == 0.0 and gz == 0.0:
                    continue
                px = 2.0 * (j + 0.5) / width - 1.0
                f = fid - 1
                i0, i1, i2 = tri[f, 0], tri[f, 1], tri[f, 2]
                x0, y0, z0, w0 = pos[b, i0, 0], pos[b, i0, 1], pos[b, i0, 2], pos[b, i0, 3]
                x1, y1, z1, w1 = pos[b, i1, 0], pos[b, i1, 1], pos[b, i1, 2], pos[b, i1, 3]
                x2, y2, z2, w2 = pos[b, i2, 0], pos[b, i2, 1], pos[b, i2, 2], pos[b, i2, 3]
                # Barycentrics p solve sum p_k (x_k - px w_k) = sum p_k (y_k - py w_k) = 0, sum p_k = 1,
                # i.e. p = (a x b) / sum(a x b); differentiating that is simpler than the screen-space form.
                a0, a1, a2 = x0 - px * w0, x1 - px * w1, x2 - px * w2
                e0, e1, e2 = y0 - py * w0, y1 - py * w1, y2 - py * w2
                c0 = a1 * e2 - a2 * e1
                c1 = a2 * e0 - a0 * e2
                c2 = a0 * e1 - a1 * e0
                s = c0 + c1 + c2
                p0, p1, p2 = c0 / s, c1 / s, c2 / s
                wt = p0 * w0 + p1 * w1 + p2 * w2
                zn = (p0 * z0 + p1 * z1 + p2 * z2) / wt
                gzw = gz / wt
                gp0 = gu + gzw * (z0 - zn * w0)
                gp1 = gv + gzw * (z1 - zn * w1)
                gp2 = gzw * (z2 - zn * w2)
                dot = gp0 * p0 + gp1 * p1 + gp2 * p2
                gc0, gc1, gc2 = (gp0 - dot) / s, (gp1 - dot) / s, (gp2 - dot) / s
                ga0 = e1 * gc2 - e2 * gc1
                ga1 = e2 * gc0 - e0 * gc2
                ga2 = e0 * gc1 - e1 * gc0
                ge0 = gc1 * a2 - gc2 * a1
                ge1 = gc2 * a0 - gc0 * a2
                ge2 = gc0 * a1 - gc1 * a0
                g = grad_pos[b]
                g[i0, 0] += ga0
                g[i1, 0] += ga1
                g[i2, 0] += ga2
                g[i0, 1] += ge0
                g[i1, 1] += ge1
                g[i2, 1] += ge2
                g[i0, 2] += gzw * p0
                g[i1, 2] += gzw * p1
                g[i2, 2] += gzw * p2
                g[i0, 3] += -px * ga0 - py * ge0 - gzw * zn * p0
                g[i1, 3] += -px * ga1 - py * ge1 - gzw * zn * p1
                g[i2, 3] += -px * ga2 - py * ge2 - gzw * zn * p2


@_jit
def interpolate_fwd(attr, rast, tri, out):
    """attr (Ba,V,C) with Ba in {1, B}; out (B,H,W,C) zeroed."""
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    nc = attr.shape[2]
    for r in range(nb * height):
        b = r // height
        i = r % height
        ba = b if attr.shape[0] > 1 else 0
        for j in range(width):
            fid = int(rast[b, i, j, 3])
            if fid == 0:
                continue
            u, v = rast[b, i, j, 0], rast[b, i, j, 1]
            w = 1.0 - u - v
            i0, i1, i2 = tri[fid - 1, 0], tri[fid - 1, 1], tri[fid - 1, 2]
            for k in range(nc):
                out[b, i, j, k] = u * attr[ba, i0, k] + v * attr[ba, i1, k] + w * attr[ba, i2, k]


@_jit_inline
def _pixel(p, hw, width):
    """(b, i, j) of flat pixel index p into (B, H, W), hw = H * W."""
    b = p // hw
    r = p - b * hw
    i = r // width
    return b, i, r - i * width


@_jit_inline
def _barycentric_grad(attr, ba, corners, u, v, grad, grad_attr, want_attr):
    """One pixel of interpolation's backward: (d/du, d/dv) of grad . attr(u, v), and, when
    want_attr, grad scattered onto the triangle's corner attributes."""
    i0, i1, i2 = corners[0], corners[1], corners[2]
    w = 1.0 - u - v
    gu = 0.0
    gv = 0.0
    for k in range(attr.shape[2]):
        g = grad[k]
        a2 = attr[ba, i2, k]
        gu += g * (attr[ba, i0, k] - a2)
        gv += g * (attr[ba, i1, k] - a2)
        if want_attr:
            grad_attr[ba, i0, k] += u * g
            grad_attr[ba, i1, k] += v * g
            grad_attr[ba, i2, k] += w * g
    return gu, gv


@_jit
def interpolate_bwd(attr, rast, tri, grad, grad_attr, grad_rast, want_attr):
    """grad_attr (Ba,V,C) zeroed; grad_rast (B,H,W,4) zeroed."""
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    for b in range(nb):
        for i in range(height):
            ba = b if attr.shape[0] > 1 else 0
            for j in range(width):
                fid = int(rast[b, i, j, 3])
                if fid == 0:
                    continue
                u, v = rast[b, i, j, 0], rast[b, i, j, 1]
                gu, gv = _barycentric_grad(attr, ba, tri[fid - 1], u, v, grad[b, i, j], grad_attr, want_attr)
                grad_rast[b, i, j, 0] = gu
                grad_rast[b, i, j, 1] = gv


@_jit
def interpolate_da(attr, rast, db, tri, out_da):
    """Screen-space derivatives (d/dx, d/dy per channel) of interpolated attributes; out_da (B,H,W,2C)."""
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    nc = attr.shape[2]
    for r in range(nb * height):
        b = r // height
        i = r % height
        ba = b if attr.shape[0] > 1 else 0
        for j in range(width):
            fid = int(rast[b, i, j, 3])
            if fid == 0:
                continue
            i0, i1, i2 = tri[fid - 1, 0], tri[fid - 1, 1], tri[fid - 1, 2]
            for k in range(nc):
                a2 = attr[ba, i2, k]
                d0 = attr[ba, i0, k] - a2
                d1 = attr[ba, i1, k] - a2
                out_da[b, i, j, 2 * k] = db[b, i, j, 0] * d0 + db[b, i, j, 2] * d1
                out_da[b, i, j, 2 * k + 1] = db[b, i, j, 1] * d0 + db[b, i, j, 3] * d1


@_jit_inline
def _texel_coords(coord, size, wrap):
    x = coord * size - 0.5
    x0 = math.floor(x)
    fx = x - x0
    xi0 = int(x0)
    xi1 = xi0 + 1
    if wrap:
        xi0 %= size
        xi1 %= size
    else:
        xi0 = min(max(xi0, 0), size - 1)
        xi1 = min(max(xi1, 0), size - 1)
    return xi0, xi1, fx


@_jit_inline
def _level_weights(uv_da, max_lod, width0, height0, b, i, j):
    """Mip levels and blend weight from the uv footprint (largest of the x and y pixel steps, in
    level-0 texels); level 0 only when uv_da is empty."""
    if uv_da.shape[0] == 0:
        return 0, 0, 0.0
    dxu, dyu = uv_da[b, i, j, 0] * width0, uv_da[b, i, j, 1] * width0
    dxv, dyv = uv_da[b, i, j, 2] * height0, uv_da[b, i, j, 3] * height0
    footprint = max(dxu * dxu + dxv * dxv, dyu * dyu + dyv * dyv, 1e-20)
    lv = min(max(0.5 * math.log2(footprint), 0.0), max_lod)
    l0 = int(math.floor(lv))
    l1 = min(l0 + 1, int(max_lod))
    return l0, l1, lv - l0


@_jit_inline
def _texel_coords_fast(coord, size, wrap):
    """`_texel_coords` with the wrap/clamp arithmetic only for footprints that leave the texture."""
    x = coord * size - 0.5
    x0 = math.floor(x)
    fx = x - x0
    xi0 = int(x0)
    xi1 = xi0 + 1
    if xi0 < 0 or xi1 >= size:
        if wrap:
            xi0 %= size
            xi1 %= size
        else:
            xi0 = min(max(xi0, 0), size - 1)
            xi1 = min(max(xi1, 0), size - 1)
    return xi0, xi1, fx


@_jit
def texture_fwd(flat, offs, hs, ws, uv, uv_da, max_lod, wrap, out, duv, want_duv):
    """flat (Bt,N,C) concatenated mip levels; uv (B,H,W,2); uv_da (B,H,W,4) or empty; out (B,H,W,C).
    When want_duv, also d(out)/d(u, v) into duv (B,H,W,C,2), so that the backward pass w.r.t. uv is
    a product instead of a second round of texel fetches. Both levels' eight taps and weights are
    set up once per pixel and every output written once (a zero-weight level adds zeros)."""
    nb, height, width = uv.shape[0], uv.shape[1], uv.shape[2]
    nc = flat.shape[2]
    for b in range(nb):
        src = flat[b if flat.shape[0] > 1 else 0]
        for i in range(height):
            for j in range(width):
                l0, l1, fl = _level_weights(uv_da, max_lod, ws[0], hs[0], b, i, j)
                u, v = uv[b, i, j, 0], uv[b, i, j, 1]
                wl = 1.0 - fl
                h, w, o = hs[l0], ws[l0], offs[l0]
                xa, xb, fx = _texel_coords_fast(u, w, wrap)
                ya, yb, fy = _texel_coords_fast(v, h, wrap)
                p00, p01, p10, p11 = o + ya * w + xa, o + ya * w + xb, o + yb * w + xa, o + yb * w + xb
                w00, w01 = wl * (1.0 - fx) * (1.0 - fy), wl * fx * (1.0 - fy)
                w10, w11 = wl * (1.0 - fx) * fy, wl * fx * fy
                su0, sv0 = wl * w, wl * h
                h, w, o = hs[l1], ws[l1], offs[l1]
                xa, xb, gx = _texel_coords_fast(u, w, wrap)
                ya, yb, gy = _texel_coords_fast(v, h, wrap)
                q00, q01, q10, q11 = o + ya * w + xa, o + ya * w + xb, o + yb * w + xa, o + yb * w + xb
                v00, v01 = fl * (1.0 - gx) * (1.0 - gy), fl * gx * (1.0 - gy)
                v10, v11 = fl * (1.0 - gx) * gy, fl * gx * gy
                su1, sv1 = fl * w, fl * h
                for k in range(nc):
                    a0, b0, c0, d0 = src[p00, k], src[p01, k], src[p10, k], src[p11, k]
                    a1, b1, c1, d1 = src[q00, k], src[q01, k], src[q10, k], src[q11, k]
                    out[b, i, j, k] = (w00 * a0 + w01 * b0 + w10 * c0 + w11 * d0
                                       + v00 * a1 + v01 * b1 + v10 * c1 + v11 * d1)
                    if want_duv:
                        duv[b, i, j, k, 0] = (su0 * ((1.0 - fy) * (b0 - a0) + fy * (d0 - c0))
                                              + su1 * ((1.0 - gy) * (b1 - a1) + gy * (d1 - c1)))
                        duv[b, i, j, k, 1] = (sv0 * ((1.0 - fx) * (c0 - a0) + fx * (d0 - b0))
                                              + sv1 * ((1.0 - gx) * (c1 - a1) + gx * (d1 - b1)))


@_jit
def texture_bwd_tex(offs, hs, ws, uv, uv_da, max_lod, wrap, grad, grad_flat):
    """grad_flat (Bt,N,C) zeroed."""
    nb, height, width = uv.shape[0], uv.shape[1], uv.shape[2]
    nc = grad_flat.shape[2]
    for k in range(nc):
        for b in range(nb):
            bt = b if grad_flat.shape[0] > 1 else 0
            for i in range(height):
                for j in range(width):
                    g0 = grad[b, i, j, k]
                    if g0 == 0.0:
                        continue
                    l0, l1, fl = _level_weights(uv_da, max_lod, ws[0], hs[0], b, i, j)
                    for lev in range(2):
                        level = l0 if lev == 0 else l1
                        wl = 1.0 - fl if lev == 0 else fl
                        if wl == 0.0:
                            continue
                        h, w, o = hs[level], ws[level], offs[level]
                        xi0, xi1, fx = _texel_coords(uv[b, i, j, 0], w, wrap)
                        yi0, yi1, fy = _texel_coords(uv[b, i, j, 1], h, wrap)
                        g = g0 * wl
                        grad_flat[bt, o + yi0 * w + xi0, k] += g * (1.0 - fx) * (1.0 - fy)
                        grad_flat[bt, o + yi0 * w + xi1, k] += g * fx * (1.0 - fy)
                        grad_flat[bt, o + yi1 * w + xi0, k] += g * (1.0 - fx) * fy
                        grad_flat[bt, o + yi1 * w + xi1, k] += g * fx * fy


@_jit_inline
def _screen_coords(pos, width, height, scr, sil):
    """scr (B,V,3) = pixel x, pixel y and w of every vertex; sil (B,F) reset to -1 (not computed)."""
    for b in range(pos.shape[0]):
        for k in range(pos.shape[1]):
            w = pos[b, k, 3]
            scr[b, k, 0] = (pos[b, k, 0] / w + 1.0) * 0.5 * width
            scr[b, k, 1] = (pos[b, k, 1] / w + 1.0) * 0.5 * height
            scr[b, k, 2] = w
    sil[:] = -1


@_jit_inline
def _silhouette_bits(scr, tri, topo, b, f):
    """Bit k set when edge k of triangle f is a silhouette edge: a boundary, or both opposite vertices
    on the same side (the surface folds over it); 0 when a vertex is behind the camera."""
    bits = 0
    if scr[b, tri[f, 0], 2] > 0.0 and scr[b, tri[f, 1], 2] > 0.0 and scr[b, tri[f, 2], 2] > 0.0:
        for k in range(3):
            nbr = topo[f, k]
            if nbr < 0 or scr[b, nbr, 2] <= 0.0:
                bits |= 1 << k
                continue
            ax, ay, _ = _screen(scr, b, tri[f, k])
            bx, by, _ = _screen(scr, b, tri[f, (k + 1) % 3])
            cx, cy, _ = _screen(scr, b, tri[f, (k + 2) % 3])
            nx, ny, _ = _screen(scr, b, nbr)
            ec = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
            en = (bx - ax) * (ny - ay) - (by - ay) * (nx - ax)
            if ec * en >= 0.0:
                bits |= 1 << k
    return bits


@_jit_inline
def _screen(scr, b, vi):
    return scr[b, vi, 0], scr[b, vi, 1], scr[b, vi, 2]


@_jit_inline
def _silhouette_crossing(scr, sil, tri, topo, b, f, pfx, pfy, pox, poy):
    """Where the segment from the front pixel centre to the other one leaves triangle f, if it leaves
    through a silhouette edge: (t in (0, 1], edge index k), else (0, -1). Silhouette bits are cached
    in sil the first time a triangle is met, so pairs inside the surface cost one lookup."""
    if sil[b, f] < 0:
        sil[b, f] = _silhouette_bits(scr, tri, topo, b, f)
    if sil[b, f] == 0:
        return 0.0, -1
    best_t = 2.0
    best_k = -1
    for k in range(3):
        ax, ay, _ = _screen(scr, b, tri[f, k])
        bx, by, _ = _screen(scr, b, tri[f, (k + 1) % 3])
        ef = (bx - ax) * (pfy - ay) - (by - ay) * (pfx - ax)
        eo = (bx - ax) * (poy - ay) - (by - ay) * (pox - ax)
        if ef == 0.0 or ef * eo > 0.0:
            continue
        t = ef / (ef - eo)
        if t < best_t:
            best_t = t
            best_k = k
    if best_k < 0 or not (sil[b, f] >> best_k) & 1:
        return 0.0, -1
    return best_t, best_k


@_jit_inline
def _pair(rast, b, ia, ja, ib, jb):
    """Front/other pixel of a pair with different triangles, or (-1, ...) when the ids match."""
    ida, idb = int(rast[b, ia, ja, 3]), int(rast[b, ib, jb, 3])
    if ida == idb:
        return -1, 0, 0, 0, 0
    a_front = idb == 0 or (ida != 0 and rast[b, ia, ja, 2] < rast[b, ib, jb, 2])
    if a_front:
        return ida - 1, ia, ja, ib, jb
    return idb - 1, ib, jb, ia, ja


@_jit
def antialias_fwd(color, rast, pos, tri, topo, out, scr, sil, hits, hit_t):
    """out (B,H,W,C) = color on entry; scratch scr (B,V,3) float64, sil (B,F) int64. Pass 0 blends
    horizontal pixel pairs, pass 1 vertical ones. Each blended pair is recorded in hits (M,7) int64 =
    (b, f, k, front i, front j, other i, other j) and hit_t (M,) = crossing t, M >= the number of
    pixel pairs, so that the backward pass replays them without rescanning. Returns the count."""
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    nc = color.shape[3]
    _screen_coords(pos, width, height, scr, sil)
    m = 0
    for pas in range(2):
        lines = nb * height if pas == 0 else nb * width
        for r in range(lines):
            n_along = width if pas == 0 else height
            b = r // (height if pas == 0 else width)
            line = r % (height if pas == 0 else width)
            for s in range(n_along - 1):
                if pas == 0:
                    f, fi, fj, oi, oj = _pair(rast, b, line, s, line, s + 1)
                else:
                    f, fi, fj, oi, oj = _pair(rast, b, s, line, s + 1, line)
                if f < 0:
                    continue
                t, k = _silhouette_crossing(scr, sil, tri, topo, b, f, fj + 0.5, fi + 0.5, oj + 0.5, oi + 0.5)
                if k < 0:
                    continue
                hits[m, 0], hits[m, 1], hits[m, 2] = b, f, k
                hits[m, 3], hits[m, 4], hits[m, 5], hits[m, 6] = fi, fj, oi, oj
                hit_t[m] = t
                m += 1
                if t > 0.5:
                    xi, xj, yi, yj, wgt = oi, oj, fi, fj, t - 0.5
                else:
                    xi, xj, yi, yj, wgt = fi, fj, oi, oj, 0.5 - t
                for ch in range(nc):
                    out[b, xi, xj, ch] += wgt * (color[b, yi, yj, ch] - color[b, xi, xj, ch])
    return m


@_jit
def antialias_bwd(color, pos, tri, hits, hit_t, count, grad, grad_color, grad_pos, scr):
    """grad_color (B,H,W,C) = grad on entry; grad_pos (B,V,4) zeroed; hits, hit_t, count from the
    forward pass (replayed in the same order); scratch scr (B,V,3) float64."""
    height, width = color.shape[1], color.shape[2]
    nc = color.shape[3]
    for b in range(pos.shape[0]):
        for v in range(pos.shape[1]):
            w = pos[b, v, 3]
            scr[b, v, 0] = (pos[b, v, 0] / w + 1.0) * 0.5 * width
            scr[b, v, 1] = (pos[b, v, 1] / w + 1.0) * 0.5 * height
            scr[b, v, 2] = w
    for m in range(count):
        b, f, k = hits[m, 0], hits[m, 1], hits[m, 2]
        fi, fj, oi, oj = hits[m, 3], hits[m, 4], hits[m, 5], hits[m, 6]
        t = hit_t[m]
        pfx, pfy, pox, poy = fj + 0.5, fi + 0.5, oj + 0.5, oi + 0.5
        if t > 0.5:
            xi, xj, yi, yj, wgt, dwdt = oi, oj, fi, fj, t - 0.5, 1.0
        else:
            xi, xj, yi, yj, wgt, dwdt = fi, fj, oi, oj, 0.5 - t, -1.0
        gw = 0.0
        for ch in range(nc):
            g = grad[b, xi, xj, ch]
            gw += g * (color[b, yi, yj, ch] - color[b, xi, xj, ch])
            grad_color[b, xi, xj, ch] -= wgt * g
            grad_color[b, yi, yj, ch] += wgt * g
        ia, ib = tri[f, k], tri[f, (k + 1) % 3]
        ax, ay, aw = _screen(scr, b, ia)
        bx, by, bw = _screen(scr, b, ib)
        ef = (bx - ax) * (pfy - ay) - (by - ay) * (pfx - ax)
        eo = (bx - ax) * (poy - ay) - (by - ay) * (pox - ax)
        den = (ef - eo) * (ef - eo)
        gt = gw * dwdt
        gef = -gt * eo / den
        geo = gt * ef / den
        gax = gef * (by - pfy) + geo * (by - poy)
        gay = gef * (pfx - bx) + geo * (pox - bx)
        gbx = gef * (pfy - ay) + geo * (poy - ay)
        gby = gef * (ax - pfx) + geo * (ax - pox)
        gp = grad_pos[b]
        sx, sy = 0.5 * width, 0.5 * height
        gp[ia, 0] += gax * sx / aw
        gp[ia, 1] += gay * sy / aw
        gp[ia, 3] -= (gax * sx * pos[b, ia, 0] + gay * sy * pos[b, ia, 1]) / (aw * aw)
        gp[ib, 0] += gbx * sx / bw
        gp[ib, 1] += gby * sy / bw
        gp[ib, 3] -= (gbx * sx * pos[b, ib, 0] + gby * sy * pos[b, ib, 1]) / (bw * bw)


@_jit
def shadow_depth_map(pos, tri, proj, scr, zbuf, ids, depth):
    """Light-view depth (B,S,S) of the nearest surface, +inf where empty: pos (B,V,4) in the light's
    clip space, proj (B,4,4) its projection; scratch as in `rasterize_fwd`. The depth is recovered
    from z_ndc rounded to pos's precision, as the torch path recovers it from a rasterized image."""
    for b in range(pos.shape[0]):
        _zbuffer(pos, tri, b, depth.shape[1], depth.shape[2], scr, zbuf, ids)
        p22, p23, p32, p33 = proj[b, 2, 2], proj[b, 2, 3], proj[b, 3, 2], proj[b, 3, 3]
        for i in range(depth.shape[1]):
            for j in range(depth.shape[2]):
                if ids[i, j] < 0:
                    depth[b, i, j] = np.inf
                else:
                    zn = pos.dtype.type(zbuf[i, j])
                    depth[b, i, j] = (p23 - zn * p33) / (zn * p32 - p22)


@_jit
def shadow_visibility(depth, proj, view, batch, points, normals, light, directional, texel, bias_texels, radius,
                      out):
    """Percentage-closer shadow test of N surface points against the light's depth map.

    depth (B,S,S) light-view depth from `shadow_depth_map` (inf where empty); proj, view (B,4,4) its projection and view; batch (N,);
    points, normals (N,3) camera space; light (B,3) position or direction; texel (B,) shadow-map texel
    size (metres, or metres per metre of depth for a point light); out (N,) in [0, 1]. The bias is
    bias_texels texels plus radius texels per unit of slope; a box of 2 radius + 1 texels convolved
    with the bilinear tent needs 2 radius + 2 taps a side. Mirrors the torch path of
    `shading._shadow_visibility`.
    """
    size_y, size_x = depth.shape[1], depth.shape[2]
    norm = 1.0 / ((2 * radius + 1) * (2 * radius + 1))
    for k in range(points.shape[0]):
        b = batch[k]
        px, py, pz = points[k, 0], points[k, 1], points[k, 2]
        v0 = view[b, 0, 0] * px + view[b, 0, 1] * py + view[b, 0, 2] * pz + view[b, 0, 3]
        v1 = view[b, 1, 0] * px + view[b, 1, 1] * py + view[b, 1, 2] * pz + view[b, 1, 3]
        v2 = view[b, 2, 0] * px + view[b, 2, 1] * py + view[b, 2, 2] * pz + view[b, 2, 3]
        cx = proj[b, 0, 0] * v0 + proj[b, 0, 1] * v1 + proj[b, 0, 2] * v2 + proj[b, 0, 3]
        cy = proj[b, 1, 0] * v0 + proj[b, 1, 1] * v1 + proj[b, 1, 2] * v2 + proj[b, 1, 3]
        cw = proj[b, 3, 0] * v0 + proj[b, 3, 1] * v1 + proj[b, 3, 2] * v2 + proj[b, 3, 3]
        if directional:
            lx, ly, lz = -light[b, 0], -light[b, 1], -light[b, 2]
        else:
            lx, ly, lz = light[b, 0] - px, light[b, 1] - py, light[b, 2] - pz
        lx, ly, lz, _ = _normalize3(lx, ly, lz)
        nx, ny, nz, _ = _normalize3(normals[k, 0], normals[k, 1], normals[k, 2])
        cos = max(abs(lx * nx + ly * ny + lz * nz), 0.2)
        slope = math.sqrt(1.0 - cos * cos) / cos
        texel_m = texel[b] if directional else texel[b] * v2
        d = v2 - texel_m * (bias_texels + radius * slope)
        x = (cx / cw + 1.0) * 0.5 * size_x - 0.5
        y = (cy / cw + 1.0) * 0.5 * size_y - 0.5
        x0 = int(math.floor(x))
        y0 = int(math.floor(y))
        fx = x - x0
        fy = y - y0
        acc = 0.0
        for dy in range(-radius, radius + 2):
            wy = 1.0 - fy if dy == -radius else (fy if dy == radius + 1 else 1.0)
            yy = min(max(y0 + dy, 0), size_y - 1)
            for dx in range(-radius, radius + 2):
                wx = 1.0 - fx if dx == -radius else (fx if dx == radius + 1 else 1.0)
                xx = min(max(x0 + dx, 0), size_x - 1)
                if d <= depth[b, yy, xx]:
                    acc += wx * wy
        out[k] = acc * norm


@numba.njit(cache=True, nogil=True)
def vertex_normals_fwd(verts, faces, acc, out):
    """verts (B,V,3); acc, out (B,V,3) zeroed: area-weighted normal sums and their unit vectors."""
    for b in range(verts.shape[0]):
        for f in range(faces.shape[0]):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            ax, ay, az = verts[b, i1, 0] - verts[b, i0, 0], verts[b, i1, 1] - verts[b, i0, 1], verts[b, i1, 2] - verts[b, i0, 2]
            bx, by, bz = verts[b, i2, 0] - verts[b, i0, 0], verts[b, i2, 1] - verts[b, i0, 1], verts[b, i2, 2] - verts[b, i0, 2]
            nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
            for i in (i0, i1, i2):
                acc[b, i, 0] += nx
                acc[b, i, 1] += ny
                acc[b, i, 2] += nz
        for v in range(verts.shape[1]):
            norm = max(math.sqrt(acc[b, v, 0] ** 2 + acc[b, v, 1] ** 2 + acc[b, v, 2] ** 2), 1e-12)
            for k in range(3):
                out[b, v, k] = acc[b, v, k] / norm


@numba.njit(cache=True, nogil=True)
def vertex_normals_bwd(verts, faces, acc, grad, grad_verts, gsum):
    """grad (B,V,3) w.r.t. the unit normals; grad_verts (B,V,3) zeroed; gsum (V,3) scratch."""
    gacc = np.empty(3, dtype=acc.dtype)
    for b in range(verts.shape[0]):
        for v in range(verts.shape[1]):
            norm = math.sqrt(acc[b, v, 0] ** 2 + acc[b, v, 1] ** 2 + acc[b, v, 2] ** 2)
            if norm <= 1e-12:
                for k in range(3):
                    gsum[v, k] = grad[b, v, k] / 1e-12
                continue
            dot = 0.0
            for k in range(3):
                gacc[k] = acc[b, v, k] / norm
                dot += gacc[k] * grad[b, v, k]
            for k in range(3):
                gsum[v, k] = (grad[b, v, k] - gacc[k] * dot) / norm
        for f in range(faces.shape[0]):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            gx = gsum[i0, 0] + gsum[i1, 0] + gsum[i2, 0]
            gy = gsum[i0, 1] + gsum[i1, 1] + gsum[i2, 1]
            gz = gsum[i0, 2] + gsum[i1, 2] + gsum[i2, 2]
            ax, ay, az = verts[b, i1, 0] - verts[b, i0, 0], verts[b, i1, 1] - verts[b, i0, 1], verts[b, i1, 2] - verts[b, i0, 2]
            bx, by, bz = verts[b, i2, 0] - verts[b, i0, 0], verts[b, i2, 1] - verts[b, i0, 1], verts[b, i2, 2] - verts[b, i0, 2]
            # n = a x b: dL/da = b x g, dL/db = g x a.
            gax, gay, gaz = by * gz - bz * gy, bz * gx - bx * gz, bx * gy - by * gx
            gbx, gby, gbz = gy * az - gz * ay, gz * ax - gx * az, gx * ay - gy * ax
            grad_verts[b, i1, 0] += gax
            grad_verts[b, i1, 1] += gay
            grad_verts[b, i1, 2] += gaz
            grad_verts[b, i2, 0] += gbx
            grad_verts[b, i2, 1] += gby
            grad_verts[b, i2, 2] += gbz
            grad_verts[b, i0, 0] -= gax + gbx
            grad_verts[b, i0, 1] -= gay + gby
            grad_verts[b, i0, 2] -= gaz + gbz


@_jit
def vertex_tangents_fwd(verts, faces, uvs, faces_uv, acc):
    """Sums of per-face tangents (x, y, z) and handedness votes (w) on UV vertices; acc (B,T,4) zeroed.
    Same maths as `mesh.vertex_tangents`."""
    for b in range(verts.shape[0]):
        for f in range(faces.shape[0]):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            t0, t1, t2 = faces_uv[f, 0], faces_uv[f, 1], faces_uv[f, 2]
            ax, ay, az = verts[b, i1, 0] - verts[b, i0, 0], verts[b, i1, 1] - verts[b, i0, 1], verts[b, i1, 2] - verts[b, i0, 2]
            cx, cy, cz = verts[b, i2, 0] - verts[b, i0, 0], verts[b, i2, 1] - verts[b, i0, 1], verts[b, i2, 2] - verts[b, i0, 2]
            d1u, d1v = uvs[t1, 0] - uvs[t0, 0], uvs[t1, 1] - uvs[t0, 1]
            d2u, d2v = uvs[t2, 0] - uvs[t0, 0], uvs[t2, 1] - uvs[t0, 1]
            sign = -1.0 if d1u * d2v - d2u * d1v < 0.0 else 1.0
            tx, ty, tz = (ax * d2v - cx * d1v) * sign, (ay * d2v - cy * d1v) * sign, (az * d2v - cz * d1v) * sign
            bx, by, bz = (cx * d1u - ax * d2u) * sign, (cy * d1u - ay * d2u) * sign, (cz * d1u - az * d2u) * sign
            nx, ny, nz = ay * cz - az * cy, az * cx - ax * cz, ax * cy - ay * cx
            handed = (ny * tz - nz * ty) * bx + (nz * tx - nx * tz) * by + (nx * ty - ny * tx) * bz
            hw = -1.0 if handed < 0.0 else 1.0
            for t in (t0, t1, t2):
                acc[b, t, 0] += tx
                acc[b, t, 1] += ty
                acc[b, t, 2] += tz
                acc[b, t, 3] += hw


@_jit_inline
def _normalize3(x, y, z):
    n = max(math.sqrt(x * x + y * y + z * z), 1e-12)
    return x / n, y / n, z / n, n


@_jit_inline
def _normalize3_bwd(hx, hy, hz, n, gx, gy, gz):
    """Gradient through h = v / |v| given h, |v| and dL/dh."""
    d = hx * gx + hy * gy + hz * gz
    return (gx - hx * d) / n, (gy - hy * d) / n, (gz - hz * d) / n


@_jit_inline
def _shade_pixel(geo, surf, tex, light, directional, k, use_nmap):
    """Shading normal and light direction of pixel k (see `shade_fwd`), with the intermediates the
    backward pass needs."""
    nx, ny, nz, ln = _normalize3(geo[k, 3], geo[k, 4], geo[k, 5])
    thx = thy = thz = lt = btx = bty = btz = m0 = m1 = m2 = lq = 0.0
    sx, sy, sz = nx, ny, nz
    if use_nmap:
        tx, ty, tz = surf[k, 2], surf[k, 3], surf[k, 4]
        tn = tx * nx + ty * ny + tz * nz
        thx, thy, thz, lt = _normalize3(tx - tn * nx, ty - tn * ny, tz - tn * nz)
        sgn = -1.0 if surf[k, 5] < 0.0 else 1.0
        btx, bty, btz = sgn * (ny * thz - nz * thy), sgn * (nz * thx - nx * thz), sgn * (nx * thy - ny * thx)
        m0, m1, m2 = tex[k, 3] * 2.0 - 1.0, tex[k, 4] * 2.0 - 1.0, tex[k, 5] * 2.0 - 1.0
        sx, sy, sz, lq = _normalize3(m0 * thx + m1 * btx + m2 * nx, m0 * thy + m1 * bty + m2 * ny,
                                     m0 * thz + m1 * btz + m2 * nz)
    if directional:
        lx, ly, lz = -light[0], -light[1], -light[2]
    else:
        lx, ly, lz = light[0] - geo[k, 0], light[1] - geo[k, 1], light[2] - geo[k, 2]
    lhx, lhy, lhz, ll = _normalize3(lx, ly, lz)
    return (nx, ny, nz, ln, thx, thy, thz, lt, btx, bty, btz, m0, m1, m2, lq, sx, sy, sz, lhx, lhy, lhz, ll)


@_jit
def shade_fwd(geo, surf, tex, batch, light, directional, intensity, ambient, vis, use_nmap, color, normals):
    """Deferred shading of N pixels: color = albedo (ambient + (1 - ambient) max(n.l, 0) I vis).

    geo (N,6) points and interpolated normals (camera space); surf (N,6) uv, tangent, handedness;
    tex (N,6) albedo and normal-map texels; batch (N,) frame; light (B,3) position or direction;
    intensity, ambient (B,); vis (N,); outputs color (N,3) and shading normals (N,3).
    """
    for k in range(geo.shape[0]):
        b = batch[k]
        r = _shade_pixel(geo, surf, tex, light[b], directional, k, use_nmap)
        sx, sy, sz, lhx, lhy, lhz = r[15], r[16], r[17], r[18], r[19], r[20]
        d = max(sx * lhx + sy * lhy + sz * lhz, 0.0)
        shade = ambient[b] + (1.0 - ambient[b]) * d * intensity[b] * vis[k]
        for c in range(3):
            color[k, c] = tex[k, c] * shade
        normals[k, 0], normals[k, 1], normals[k, 2] = sx, sy, sz


@_jit
def shade_bwd(geo, surf, tex, batch, light, directional, intensity, ambient, vis, use_nmap, grad,
              g_geo, g_tex, g_light, g_intensity, g_ambient):
    """Backward of `shade_fwd` given dL/dcolor (N,3); gradient outputs zeroed, (B,...) ones summed
    over the frame's pixels. The tangent frame is treated as constant."""
    for k in range(geo.shape[0]):
        b = batch[k]
        (nx, ny, nz, ln, thx, thy, thz, lt, btx, bty, btz, m0, m1, m2, lq, sx, sy, sz,
         lhx, lhy, lhz, ll) = _shade_pixel(geo, surf, tex, light[b], directional, k, use_nmap)
        dot = sx * lhx + sy * lhy + sz * lhz
        d = max(dot, 0.0)
        a, inten, v = ambient[b], intensity[b], vis[k]
        shade = a + (1.0 - a) * d * inten * v
        g_shade = 0.0
        for c in range(3):
            g_tex[k, c] = grad[k, c] * shade
            g_shade += grad[k, c] * tex[k, c]
        g_ambient[b] += g_shade * (1.0 - d * inten * v)
        g_diffuse = g_shade * (1.0 - a) * v
        g_intensity[b] += g_diffuse * d
        g_dot = g_diffuse * inten if dot >= 0.0 else 0.0
        gsx, gsy, gsz = g_dot * lhx, g_dot * lhy, g_dot * lhz
        glx, gly, glz = _normalize3_bwd(lhx, lhy, lhz, ll, g_dot * sx, g_dot * sy, g_dot * sz)
        if directional:
            g_light[b, 0] -= glx
            g_light[b, 1] -= gly
            g_light[b, 2] -= glz
        else:
            g_light[b, 0] += glx
            g_light[b, 1] += gly
            g_light[b, 2] += glz
            g_geo[k, 0] = -glx
            g_geo[k, 1] = -gly
            g_geo[k, 2] = -glz
        if use_nmap:
            gqx, gqy, gqz = _normalize3_bwd(sx, sy, sz, lq, gsx, gsy, gsz)
            g_tex[k, 3] = 2.0 * (gqx * thx + gqy * thy + gqz * thz)
            g_tex[k, 4] = 2.0 * (gqx * btx + gqy * bty + gqz * btz)
            g_tex[k, 5] = 2.0 * (gqx * nx + gqy * ny + gqz * nz)
            gthx, gthy, gthz = m0 * gqx, m0 * gqy, m0 * gqz
            gbx, gby, gbz = m1 * gqx * (-1.0 if surf[k, 5] < 0.0 else 1.0), \
                m1 * gqy * (-1.0 if surf[k, 5] < 0.0 else 1.0), m1 * gqz * (-1.0 if surf[k, 5] < 0.0 else 1.0)
            gnx, gny, gnz = m2 * gqx, m2 * gqy, m2 * gqz
            # bitangent = sign (n x t): dn += t x gb, dt += gb x n (sign already folded into gb).
            gnx += thy * gbz - thz * gby
            gny += thz * gbx - thx * gbz
            gnz += thx * gby - thy * gbx
            gthx += gby * nz - gbz * ny
            gthy += gbz * nx - gbx * nz
            gthz += gbx * ny - gby * nx
            gtpx, gtpy, gtpz = _normalize3_bwd(thx, thy, thz, lt, gthx, gthy, gthz)
            # t_perp = t - (t.n) n with t constant.
            tx, ty, tz = surf[k, 2], surf[k, 3], surf[k, 4]
            tn = tx * nx + ty * ny + tz * nz
            gn_dot = gtpx * nx + gtpy * ny + gtpz * nz
            gnx -= tn * gtpx + gn_dot * tx
            gny -= tn * gtpy + gn_dot * ty
            gnz -= tn * gtpz + gn_dot * tz
        else:
            gnx, gny, gnz = gsx, gsy, gsz
        g_geo[k, 3], g_geo[k, 4], g_geo[k, 5] = _normalize3_bwd(nx, ny, nz, ln, gnx, gny, gnz)


@_jit
def light_camera(verts, light, directional, resolution, view, proj, texel, pos_l):
    """Shadow-map camera per frame, as `shading._light_camera` builds it: view, proj (B,4,4) and
    texel (B,) outputs, plus the vertices in the light's clip space, pos_l (B,V,4)."""
    nv = verts.shape[1]
    for b in range(verts.shape[0]):
        cx = cy = cz = 0.0
        for k in range(nv):
            cx += verts[b, k, 0]
            cy += verts[b, k, 1]
            cz += verts[b, k, 2]
        cx, cy, cz = cx / nv, cy / nv, cz / nv
        radius = 0.0
        for k in range(nv):
            radius = max(radius, (verts[b, k, 0] - cx) ** 2 + (verts[b, k, 1] - cy) ** 2 + (verts[b, k, 2] - cz) ** 2)
        radius = math.sqrt(radius) * 1.05 + 1e-6
        dist = 2.0 * radius + 0.1
        if directional:
            zx, zy, zz, _ = _normalize3(light[b, 0], light[b, 1], light[b, 2])
            ex, ey, ez = cx - zx * dist, cy - zy * dist, cz - zz * dist
        else:
            ex, ey, ez = light[b, 0], light[b, 1], light[b, 2]
            zx, zy, zz, _ = _normalize3(cx - ex, cy - ey, cz - ez)
        ux, uy, uz = (1.0, 0.0, 0.0) if abs(zy) > 0.99 else (0.0, -1.0, 0.0)
        xx, xy, xz, _ = _normalize3(zy * uz - zz * uy, zz * ux - zx * uz, zx * uy - zy * ux)
        yx, yy, yz = zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx
        view[b] = 0.0
        view[b, 0, 0], view[b, 0, 1], view[b, 0, 2] = xx, xy, xz
        view[b, 1, 0], view[b, 1, 1], view[b, 1, 2] = yx, yy, yz
        view[b, 2, 0], view[b, 2, 1], view[b, 2, 2] = zx, zy, zz
        for r in range(3):
            view[b, r, 3] = -(view[b, r, 0] * ex + view[b, r, 1] * ey + view[b, r, 2] * ez)
        view[b, 3, 3] = 1.0
        extent = 0.0
        for k in range(nv):
            vx = view[b, 0, 0] * verts[b, k, 0] + view[b, 0, 1] * verts[b, k, 1] + view[b, 0, 2] * verts[b, k, 2] + view[b, 0, 3]
            vy = view[b, 1, 0] * verts[b, k, 0] + view[b, 1, 1] * verts[b, k, 1] + view[b, 1, 2] * verts[b, k, 2] + view[b, 1, 3]
            vz = view[b, 2, 0] * verts[b, k, 0] + view[b, 2, 1] * verts[b, k, 1] + view[b, 2, 2] * verts[b, k, 2] + view[b, 2, 3]
            pos_l[b, k, 0], pos_l[b, k, 1], pos_l[b, k, 2] = vx, vy, vz
            if directional:
                extent = max(extent, abs(vx), abs(vy))
            elif vz > 1e-6:
                extent = max(extent, max(abs(vx), abs(vy)) / vz)
        proj[b] = 0.0
        if directional:
            half = extent * 1.02 + 1e-6
            near, far = dist - radius, dist + radius
            proj[b, 0, 0] = proj[b, 1, 1] = 1.0 / half
            proj[b, 2, 2] = 2.0 / (far - near)
            proj[b, 2, 3] = -(far + near) / (far - near)
            proj[b, 3, 3] = 1.0
            texel[b] = 2.0 * half / resolution
        else:
            tan_half = max(extent * 1.02, 1e-3)
            near, far = 1e-3, 100.0
            proj[b, 0, 0] = proj[b, 1, 1] = 1.0 / tan_half
            proj[b, 2, 2] = (far + near) / (far - near)
            proj[b, 2, 3] = -2.0 * far * near / (far - near)
            proj[b, 3, 2] = 1.0
            texel[b] = 2.0 * tan_half / resolution
        for k in range(nv):
            vx, vy, vz = pos_l[b, k, 0], pos_l[b, k, 1], pos_l[b, k, 2]
            for r in range(4):
                pos_l[b, k, r] = proj[b, r, 0] * vx + proj[b, r, 1] * vy + proj[b, r, 2] * vz + proj[b, r, 3]


@_jit
def surface_fwd(attr_a, tri_a, attr_b, tri_b, rast, db, pix, out_a, out_b, out_da):
    """Interpolation at the covered pixels only: pix (N,) flat indices into (B,H,W); attr_a (Ba,V,Ca)
    over tri_a and attr_b (Bb,T,Cb) over tri_b (same face order); out_a (N,Ca), out_b (N,Cb) and
    out_da (N,4) = screen derivatives of attr_b's first two channels from db (B,H,W,4). Same maths
    as `interpolate_fwd` and `interpolate_da`."""
    height, width = rast.shape[1], rast.shape[2]
    hw = height * width
    na, nbc = attr_a.shape[2], attr_b.shape[2]
    for n in range(pix.shape[0]):
        p = pix[n]
        b, i, j = _pixel(p, hw, width)
        f = int(rast[b, i, j, 3]) - 1
        u, v = rast[b, i, j, 0], rast[b, i, j, 1]
        w = 1.0 - u - v
        ba = b if attr_a.shape[0] > 1 else 0
        i0, i1, i2 = tri_a[f, 0], tri_a[f, 1], tri_a[f, 2]
        for k in range(na):
            out_a[n, k] = u * attr_a[ba, i0, k] + v * attr_a[ba, i1, k] + w * attr_a[ba, i2, k]
        bb = b if attr_b.shape[0] > 1 else 0
        i0, i1, i2 = tri_b[f, 0], tri_b[f, 1], tri_b[f, 2]
        for k in range(nbc):
            a2 = attr_b[bb, i2, k]
            out_b[n, k] = u * attr_b[bb, i0, k] + v * attr_b[bb, i1, k] + w * a2
            if k < 2:
                d0 = attr_b[bb, i0, k] - a2
                d1 = attr_b[bb, i1, k] - a2
                out_da[n, 2 * k] = db[b, i, j, 0] * d0 + db[b, i, j, 2] * d1
                out_da[n, 2 * k + 1] = db[b, i, j, 1] * d0 + db[b, i, j, 3] * d1


@_jit
def surface_bwd(attr_a, tri_a, attr_b, tri_b, rast, pix, grad_a, grad_b, g_attr_a, g_attr_b, grad_rast,
                want_a, want_b):
    """Backward of `surface_fwd` given grad_a (N,Ca), grad_b (N,Cb): g_attr_a, g_attr_b zeroed
    (used when want_*), grad_rast (B,H,W,4) zeroed (u, v channels written at the covered pixels)."""
    height, width = rast.shape[1], rast.shape[2]
    hw = height * width
    for n in range(pix.shape[0]):
        b, i, j = _pixel(pix[n], hw, width)
        f = int(rast[b, i, j, 3]) - 1
        u, v = rast[b, i, j, 0], rast[b, i, j, 1]
        ga_u, ga_v = _barycentric_grad(attr_a, b if attr_a.shape[0] > 1 else 0, tri_a[f], u, v, grad_a[n],
                                       g_attr_a, want_a)
        gb_u, gb_v = _barycentric_grad(attr_b, b if attr_b.shape[0] > 1 else 0, tri_b[f], u, v, grad_b[n],
                                       g_attr_b, want_b)
        grad_rast[b, i, j, 0] = ga_u + gb_u
        grad_rast[b, i, j, 1] = ga_v + gb_v


@_jit
def composite_pack(color, bg, pix, img, img2):
    """img and img2 (P,4) = background (zeros when bg is empty) with alpha 0, then the covered pixels
    pix (N,) set to color (N,3) with alpha 1 (two copies: antialiasing reads one, writes the other)."""
    has_bg = bg.shape[0] > 0
    for p in range(img.shape[0]):
        for c in range(3):
            img[p, c] = img2[p, c] = bg[p, c] if has_bg else 0.0
        img[p, 3] = img2[p, 3] = 0.0
    for n in range(pix.shape[0]):
        p = pix[n]
        for c in range(3):
            img[p, c] = img2[p, c] = color[n, c]
        img[p, 3] = img2[p, 3] = 1.0


@_jit
def split_rgba(rgba, rgb, alpha):
    """(P,4) into contiguous (P,3) and (P,1)."""
    for p in range(rgba.shape[0]):
        for c in range(3):
            rgb[p, c] = rgba[p, c]
        alpha[p, 0] = rgba[p, 3]


@_jit
def merge_rgba(rgb, alpha, rgba, rgba2):
    """(P,3) and (P,1) into rgba and rgba2 (P,4); an empty input contributes zeros."""
    has_rgb, has_alpha = rgb.shape[0] > 0, alpha.shape[0] > 0
    for p in range(rgba.shape[0]):
        for c in range(3):
            rgba[p, c] = rgba2[p, c] = rgb[p, c] if has_rgb else 0.0
        rgba[p, 3] = rgba2[p, 3] = alpha[p, 0] if has_alpha else 0.0


@_jit
def gather_rgb(rgba, pix, out):
    """out (N,3) = the first three channels of rgba (P,4) at rows pix."""
    for n in range(pix.shape[0]):
        p = pix[n]
        for c in range(3):
            out[n, c] = rgba[p, c]


@_jit
def texture_bwd_uv(grad, duv, grad_uv):
    """grad_uv (P,2) = sum over channels of grad (P,C) x duv (P,C,2)."""
    for p in range(grad.shape[0]):
        gu = 0.0
        gv = 0.0
        for k in range(grad.shape[1]):
            gu += grad[p, k] * duv[p, k, 0]
            gv += grad[p, k] * duv[p, k, 1]
        grad_uv[p, 0] = gu
        grad_uv[p, 1] = gv


@_jit
def tangent_frames(acc, out):
    """out (B,T,4) = unit tangent (x, y, z of acc over max(|.|, 1e-12)) and handedness sign (w)."""
    for b in range(acc.shape[0]):
        for t in range(acc.shape[1]):
            norm = max(math.sqrt(acc[b, t, 0] ** 2 + acc[b, t, 1] ** 2 + acc[b, t, 2] ** 2), 1e-12)
            for k in range(3):
                out[b, t, k] = acc[b, t, k] / norm
            out[b, t, 3] = -1.0 if acc[b, t, 3] < 0.0 else 1.0


@_jit
def scatter_rows(src, pix, dst):
    """dst[pix[n]] = src[n] for (N,C) src into zeroed (P,C) dst."""
    for n in range(pix.shape[0]):
        for c in range(src.shape[1]):
            dst[pix[n], c] = src[n, c]
