"""The appearance refinement's image term over its surface samples, as numba kernels.

Each Gauss-Newton step of the refinement reads a few hundred samples: through numpy, the ~40
small array operations of a cost evaluation and its normal equations took ~0.7 ms a step, most
of it per-call overhead; these loops take about 0.25 ms (400 samples, 26 parameters), less since
the normal equations' n D^2 products went to one BLAS call. `tests/fit/test_refine.py` checks
the lookup against torch's `grid_sample`, the residuals and the normal equations against direct
computations, and the gradient against central differences of the cost. `image_channels`
prepares the crop the samples read (`tests/fit/test_crop_and_channels.py`).

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
                     cy: float, sigma: np.ndarray, weights: np.ndarray, hand_target: np.ndarray, residuals: np.ndarray,
                     gradients: np.ndarray) -> tuple[float, float]:
    """Residuals and image gradients of n samples.

    points (n, 3) metres, camera space; colour (n, 3) rendered; stack (S, S, 12): colour (3), hand
    probability (1), their x derivatives (4) and y derivatives (4); sigma (4,); weights (n, 4)
    per sample and channel; hand_target (n,): the hand probability each sample should read (1
    inside the silhouette, 0.5 on its outline). Samples whose colour weights are 0 (the
    outline's) take no part in the gain and bias nor in the agreement. Writes residuals (n, 4)
    (kernel units) and gradients (n, 4, 2) (per pixel, of the sampled channels). Returns the
    weighted sum of rho over samples and channels, and the share of the colour samples whose
    colour residuals are all under 2 (inliers)."""
    n = points.shape[0]
    read = np.empty(stack.shape[2])
    # The colours read, then the gain and bias that best map the rendered colours onto them
    # (least squares, lightly held at gain 1 and bias 0).
    coloured = 0
    for i in range(n):
        if weights[i, 0] > 0:
            coloured += 1
    reg = 1e-2 * coloured
    saa, sa, say, sy = np.full(3, reg), np.zeros(3), np.full(3, reg), np.zeros(3)
    for i in range(n):
        z = max(points[i, 2], 1e-3)
        sample_image(stack, points[i, 0] / z * fx + cx, points[i, 1] / z * fy + cy, read)
        for c in range(4):
            residuals[i, c] = read[c]
            gradients[i, c, 0] = read[4 + c]
            gradients[i, c, 1] = read[8 + c]
        if weights[i, 0] > 0:
            for c in range(3):
                a, y = colour[i, c], read[c]
                saa[c] += a * a
                sa[c] += a
                say[c] += a * y
                sy[c] += y
    sb = coloured + reg
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
                r = (hand_target[i] - residuals[i, c]) / sigma[c]
            residuals[i, c] = r
            total += weights[i, c] * r * r / (1.0 + r * r)
        if weights[i, 0] > 0 and worst < 2.0:
            inliers += 1
    return total, inliers / max(coloured, 1)


def image_normal_equations(points: np.ndarray, jacobian: np.ndarray, residuals: np.ndarray, gradients: np.ndarray,
                           fx: float, fy: float, sigma: np.ndarray, weights: np.ndarray,
                           scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton H (D, D) and gradient g (D,) of half of `scale` times the image cost, by
    iteratively reweighted least squares: each sample keeps its colour and reads the image where
    it moves to, so channel c's residual moves by -grad_c . m / sigma_c for pixel motion m.

    points (n, 3); jacobian (n, 3, D) of the points; residuals (n, 4) and gradients (n, 4, 2) as
    `evaluate_samples` left them; weights (n, 4) as it was given them. H is A^T A with two rows
    of A a sample (one BLAS product: the n D^2 sum was most of a step's time as a loop)."""
    rows, g = _weighted_motion_rows(points, jacobian, residuals, gradients, fx, fy, sigma, weights, scale)
    return rows.T @ rows, g


@numba.njit(cache=True)
def _weighted_motion_rows(points: np.ndarray, jacobian: np.ndarray, residuals: np.ndarray, gradients: np.ndarray,
                          fx: float, fy: float, sigma: np.ndarray, weights: np.ndarray,
                          scale: float) -> tuple[np.ndarray, np.ndarray]:
    """`image_normal_equations`' A (2n, D) and g (D,). Sample i's pixel motion M_i (2, D) is
    weighted by S_i (2, 2), the sum over channels of w_c grad_c grad_c^T, so that its share of H
    is M_i^T S_i M_i = (L_i^T M_i)^T (L_i^T M_i) with S_i = L_i L_i^T (Cholesky)."""
    n, D = jacobian.shape[0], jacobian.shape[2]
    rows, g = np.zeros((2 * n, D)), np.zeros(D)
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
            w = scale * weights[i, c] / (q * q * sigma[c] * sigma[c])  # rho'(r) / 2r, per unit of image value
            gx, gy = gradients[i, c, 0], gradients[i, c, 1]
            sxx += w * gx * gx
            sxy += w * gx * gy
            syy += w * gy * gy
            px -= w * gx * r * sigma[c]
            py -= w * gy * r * sigma[c]
        # S = [[a, 0], [b, c]] [[a, b], [0, c]]; S is positive semi-definite (a sum of w g g^T, w > 0).
        a = np.sqrt(sxx)
        b = sxy / a if a > 0 else 0.0
        c = np.sqrt(max(syy - b * b, 0.0)) if a > 0 else np.sqrt(syy)
        for d in range(D):
            rows[2 * i, d] = a * mx[d] + b * my[d]
            rows[2 * i + 1, d] = c * my[d]
            g[d] += mx[d] * px + my[d] * py
    return rows, g


@numba.njit(cache=True)
def image_channels(image: np.ndarray, alpha: np.ndarray, valid: np.ndarray, bins: int, sigma: float) -> np.ndarray:
    """The stack the samples read, (S, S, 12) float64: the crop's colour (3) and hand probability
    (1), Gaussian-blurred by `sigma` pixels (a wider basin for the steps), then their x and y
    derivatives (central differences). Borders replicate.

    image (S, S, 3) float32 in [0, 1]; alpha (S, S) the avatar's coverage rendered into the crop;
    valid (S, S) 0 where the crop left the frame. The hand probability comes from RGB histograms
    (`bins` a channel) of the crop inside the silhouette (2 px clear of its edge) and outside it
    (4 px clear): the pixel-wise posterior of region-based trackers such as PWP3D. Where either side
    has under 10 pixels it is 0.5."""
    size = image.shape[0]
    values = np.empty((size, size, 4))
    values[..., :3] = image
    inside = _clear_of(alpha <= 0.5, 2) * valid
    outside = _clear_of(alpha > 0.01, 4) * valid
    if inside.sum() < 10 or outside.sum() < 10:
        values[..., 3] = 0.5
    else:
        n = bins ** 3
        fg, bg = np.full(n, 0.5), np.full(n, 0.5)
        index = np.empty((size, size), np.int64)
        scale = np.float32(bins)
        for y in range(size):
            for x in range(size):
                k = 0
                for c in range(3):
                    k = k * bins + min(int(image[y, x, c] * scale), bins - 1)
                index[y, x] = k
                fg[k] += inside[y, x]
                bg[k] += outside[y, x]
        pf, pb = fg / fg.sum(), bg / bg.sum()
        for y in range(size):
            for x in range(size):
                k = index[y, x]
                values[y, x, 3] = pf[k] / (pf[k] + pb[k])
    if sigma > 0:
        values = _blur(values, sigma)
    stack = np.empty((size, size, 12))
    for y in range(size):
        for x in range(size):
            for c in range(4):
                stack[y, x, c] = values[y, x, c]
                stack[y, x, 4 + c] = (values[y, min(x + 1, size - 1), c] - values[y, max(x - 1, 0), c]) / 2
                stack[y, x, 8 + c] = (values[min(y + 1, size - 1), x, c] - values[max(y - 1, 0), x, c]) / 2
    return stack


@numba.njit(cache=True)
def _clear_of(mask: np.ndarray, radius: int) -> np.ndarray:
    """(S, S) float64: 1 where no pixel of `mask` lies within the (2 radius + 1)-pixel square
    around, else 0 (one minus the mask's dilation; the square is cut at the borders)."""
    size = mask.shape[0]
    rows = np.zeros((size, size), np.bool_)
    for y in range(size):
        for x in range(size):
            if mask[y, x]:
                for k in range(max(0, x - radius), min(size, x + radius + 1)):
                    rows[y, k] = True
    out = np.ones((size, size))
    for y in range(size):
        for x in range(size):
            if rows[y, x]:
                for k in range(max(0, y - radius), min(size, y + radius + 1)):
                    out[k, x] = 0.0
    return out


@numba.njit(cache=True)
def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """(S, S, C) Gaussian blur, separable, taps to 2.5 sigma, borders replicated."""
    size, channels = values.shape[0], values.shape[2]
    radius = max(1, int(np.ceil(2.5 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    across = np.zeros_like(values)
    for y in range(size):
        for x in range(size):
            for t in range(-radius, radius + 1):
                w, xs = kernel[t + radius], min(max(x + t, 0), size - 1)
                for c in range(channels):
                    across[y, x, c] += w * values[y, xs, c]
    out = np.zeros_like(values)
    for y in range(size):
        for t in range(-radius, radius + 1):
            w, ys = kernel[t + radius], min(max(y + t, 0), size - 1)
            for x in range(size):
                for c in range(channels):
                    out[y, x, c] += w * across[ys, x, c]
    return out
