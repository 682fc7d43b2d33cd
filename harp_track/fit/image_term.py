"""The appearance refinement's image term over its surface samples, as numba kernels.

Each Gauss-Newton step of the refinement reads a few hundred samples: through numpy, the ~40
small array operations of a cost evaluation and its normal equations took ~0.7 ms a step, most
of it per-call overhead; these loops take about 0.25 ms (400 samples, 26 parameters; the normal
equations' n D^2 products are most of it). `tests/fit/test_refine.py` checks the lookup against
torch's `grid_sample`, the residuals against a direct computation, and the normal equations
against central differences of the cost.

The model (`refine.py` states it in full): sample i at camera-space point p_i projects to pixel
u_i; it should read the colour it was rendered with, after a per-channel gain and bias solved in
closed form, and a hand probability of 1. Residuals are in kernel units (divided by sigma) and
pass through Geman-McClure kernels rho(r) = r^2 / (1 + r^2).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def sample_image(stack: np.ndarray, u: float, v: float, out: np.ndarray) -> None:
    """Bilinear lookup of the (S, S, C) stack at pixel position (u, v) into out (C,): pixel
    centres at half-integers, positions clamped to the border (torch's grid_sample with
    align_corners=False, padding_mode="border")."""
    size = stack.shape[0]
    x = min(max(u - 0.5, 0.0), size - 1.0)
    y = min(max(v - 0.5, 0.0), size - 1.0)
    x0, y0 = min(int(x), size - 2), min(int(y), size - 2)
    wx, wy = x - x0, y - y0
    for c in range(stack.shape[2]):
        top = stack[y0, x0, c] + (stack[y0, x0 + 1, c] - stack[y0, x0, c]) * wx
        bottom = stack[y0 + 1, x0, c] + (stack[y0 + 1, x0 + 1, c] - stack[y0 + 1, x0, c]) * wx
        out[c] = top + (bottom - top) * wy


@numba.njit(cache=True)
def evaluate_samples(points: np.ndarray, colour: np.ndarray, stack: np.ndarray, fx: float, fy: float, cx: float,
                     cy: float, sigma: np.ndarray, channel_weights: np.ndarray, residuals: np.ndarray,
                     gradients: np.ndarray) -> tuple[float, float]:
    """Residuals and image gradients of n samples.

    points (n, 3) metres, camera space; colour (n, 3) rendered; stack (S, S, 12): colour (3), hand
    probability (1), their x derivatives (4) and y derivatives (4); sigma, channel_weights (4,).
    Writes residuals (n, 4) (kernel units) and gradients (n, 4, 2) (per pixel, of the sampled
    channels). Returns the weighted sum of rho over samples and channels, and the share of
    samples whose colour residuals are all under 2 (inliers)."""
    n = points.shape[0]
    read = np.empty(stack.shape[2])
    # The colours read, then the gain and bias that best map the rendered colours onto them
    # (least squares, lightly held at gain 1 and bias 0).
    reg = 1e-2 * n
    saa, sa, say, sy = np.full(3, reg), np.zeros(3), np.full(3, reg), np.zeros(3)
    for i in range(n):
        z = max(points[i, 2], 1e-3)
        sample_image(stack, points[i, 0] / z * fx + cx, points[i, 1] / z * fy + cy, read)
        for c in range(4):
            residuals[i, c] = read[c]
            gradients[i, c, 0] = read[4 + c]
            gradients[i, c, 1] = read[8 + c]
        for c in range(3):
            a, y = colour[i, c], read[c]
            saa[c] += a * a
            sa[c] += a
            say[c] += a * y
            sy[c] += y
    sb = n + reg
    gain, bias = np.empty(3), np.empty(3)
    for c in range(3):
        det = saa[c] * sb - sa[c] * sa[c]
        gain[c] = (say[c] * sb - sa[c] * sy[c]) / det
        bias[c] = (saa[c] * sy[c] - sa[c] * say[c]) / det
    total, inliers = 0.0, 0
    for i in range(n):
        worst = 0.0
        for c in range(4):
            if c < 3:
                r = (gain[c] * colour[i, c] + bias[c] - residuals[i, c]) / sigma[c]
                worst = max(worst, abs(r))
            else:
                r = (1.0 - residuals[i, c]) / sigma[c]
            residuals[i, c] = r
            total += channel_weights[c] * r * r / (1.0 + r * r)
        if worst < 2.0:
            inliers += 1
    return total, inliers / max(n, 1)


@numba.njit(cache=True)
def image_normal_equations(points: np.ndarray, jacobian: np.ndarray, residuals: np.ndarray, gradients: np.ndarray,
                           fx: float, fy: float, sigma: np.ndarray, channel_weights: np.ndarray,
                           scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton H (D, D) and gradient g (D,) of half of `scale` times the image cost, by
    iteratively reweighted least squares: each sample keeps its colour and reads the image where
    it moves to, so channel c's residual moves by -grad_c . m / sigma_c for pixel motion m.

    points (n, 3); jacobian (n, 3, D) of the points; residuals (n, 4) and gradients (n, 4, 2) as
    `evaluate_samples` left them."""
    n, D = jacobian.shape[0], jacobian.shape[2]
    H, g = np.zeros((D, D)), np.zeros(D)
    mx, my = np.empty(D), np.empty(D)
    for i in range(n):
        inv_z = 1.0 / max(points[i, 2], 1e-3)
        ax, ay = points[i, 0] * inv_z, points[i, 1] * inv_z
        for d in range(D):  # pixel motion per parameter: the projection's Jacobian times the point's
            mx[d] = fx * inv_z * (jacobian[i, 0, d] - ax * jacobian[i, 2, d])
            my[d] = fy * inv_z * (jacobian[i, 1, d] - ay * jacobian[i, 2, d])
        sxx = sxy = syy = px = py = 0.0
        for c in range(4):
            r = residuals[i, c]
            q = 1.0 + r * r
            w = scale * channel_weights[c] / (q * q * sigma[c] * sigma[c])  # rho'(r) / 2r, per unit of image value
            gx, gy = gradients[i, c, 0], gradients[i, c, 1]
            sxx += w * gx * gx
            sxy += w * gx * gy
            syy += w * gy * gy
            px -= w * gx * r * sigma[c]
            py -= w * gy * r * sigma[c]
        for a in range(D):
            ta = sxx * mx[a] + sxy * my[a]
            tb = sxy * mx[a] + syy * my[a]
            for b in range(a, D):
                H[a, b] += ta * mx[b] + tb * my[b]
            g[a] += mx[a] * px + my[a] * py
    for a in range(D):
        for b in range(a):
            H[a, b] = H[b, a]
    return H, g
