"""Image and geometry metrics for avatar quality, measured against ground truth.

Images are (H, W, 3) in [0, 1] (float, numpy or torch; uint8 is read as value / 255) and masks
(H, W), bool or float weights in [0, 1]. Meshes are vertices (V, 3) in metres and faces (F, 3).
Everything is computed in float64 numpy, so the numbers do not depend on the caller's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# SSIM's constants (Wang et al. 2004) for a data range of 1.
_SSIM_C1 = 0.01 ** 2
_SSIM_C2 = 0.03 ** 2
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # an 11 x 11 window: int(3.5 sigma + 0.5), as scipy.ndimage truncates the Gaussian


def _array(x: Any) -> np.ndarray:
    """A float64 numpy copy of a numpy array or a (possibly CUDA, possibly grad-tracking) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)


def _indices(faces: Any) -> np.ndarray:
    """(F, 3) int64 numpy face indices from a numpy array or tensor."""
    if hasattr(faces, "detach"):
        faces = faces.detach().cpu().numpy()
    return np.asarray(faces, dtype=np.int64)


def _image_pair(pred: Any, target: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, target, weights = _array(pred), _array(target), _array(mask)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"images must both be (H, W, 3), got {pred.shape} and {target.shape}")
    if weights.shape != pred.shape[:2]:
        raise ValueError(f"mask must be (H, W) = {pred.shape[:2]}, got {weights.shape}")
    if weights.sum() <= 0:
        raise ValueError("the mask is empty")
    return pred, target, weights


def psnr(pred: Any, target: Any, mask: Any) -> float:
    """Peak signal-to-noise ratio in dB inside `mask`, for a data range of 1.

    The mean squared error runs over the masked pixels (weighted by a float mask) and the three
    channels. Identical images give inf.
    """
    pred, target, weights = _image_pair(pred, target, mask)
    mse = float((weights[..., None] * (pred - target) ** 2).sum() / (3.0 * weights.sum()))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def _gaussian_filter(image: np.ndarray) -> np.ndarray:
    """Separable normalized Gaussian (sigma 1.5, 11 taps) over the first two axes, with the border
    mirrored (d c b a | a b c d, scipy.ndimage's 'reflect', which SSIM references use)."""
    taps = np.exp(-0.5 * (np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1) / _SSIM_SIGMA) ** 2)
    taps /= taps.sum()
    r = _SSIM_RADIUS
    h, w = image.shape[:2]
    padded = np.pad(image, ((r, r), (0, 0)) + ((0, 0),) * (image.ndim - 2), mode="symmetric")
    rows = sum(t * padded[k:k + h] for k, t in enumerate(taps))
    padded = np.pad(rows, ((0, 0), (r, r)) + ((0, 0),) * (image.ndim - 2), mode="symmetric")
    return sum(t * padded[:, k:k + w] for k, t in enumerate(taps))


def ssim_map(pred: Any, target: Any) -> np.ndarray:
    """(H, W, 3) per-pixel, per-channel SSIM (Wang et al. 2004): 11 x 11 Gaussian window with
    sigma 1.5, C1 = 0.01², C2 = 0.03², population (not sample) covariances, mirrored borders."""
    x, y = _array(pred), _array(target)
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {x.shape} and {y.shape}")
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    vx = _gaussian_filter(x * x) - mx * mx
    vy = _gaussian_filter(y * y) - my * my
    cxy = _gaussian_filter(x * y) - mx * my
    return ((2 * mx * my + _SSIM_C1) * (2 * cxy + _SSIM_C2)) / ((mx * mx + my * my + _SSIM_C1) * (vx + vy + _SSIM_C2))


def ssim(pred: Any, target: Any, mask: Any) -> float:
    """Structural similarity in [-1, 1] inside `mask`: `ssim_map` over the whole image (windows
    near the silhouette see the background too), averaged over the channels and the masked
    pixels (weighted by a float mask). Identical images give 1."""
    pred, target, weights = _image_pair(pred, target, mask)
    per_pixel = ssim_map(pred, target).mean(-1)
    return float((weights * per_pixel).sum() / weights.sum())


def silhouette_iou(pred_mask: Any, true_mask: Any) -> float:
    """Intersection over union of two (H, W) masks (floats are thresholded at 0.5); 1 when both
    are empty, as the silhouettes then agree."""
    pred, true = _array(pred_mask) > 0.5, _array(true_mask) > 0.5
    if pred.shape != true.shape:
        raise ValueError(f"masks must have the same shape, got {pred.shape} and {true.shape}")
    union = np.count_nonzero(pred | true)
    return 1.0 if union == 0 else np.count_nonzero(pred & true) / union


def sample_surface(vertices: Any, faces: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) points uniformly distributed by area over the triangles of a mesh."""
    tri = _array(vertices)[_indices(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if area.sum() <= 0:
        raise ValueError("the mesh has no area")
    chosen = tri[rng.choice(len(tri), size=count, p=area / area.sum())]
    # Uniform barycentrics: fold the unit square's upper half back onto the triangle.
    u, w = rng.random((2, count, 1))
    flip = u + w > 1
    u, w = np.where(flip, 1 - u, u), np.where(flip, 1 - w, w)
    return chosen[:, 0] + u * (chosen[:, 1] - chosen[:, 0]) + w * (chosen[:, 2] - chosen[:, 0])


def _segment_distance2(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distance from points p (n, 3) to segments a-b (n, 3)."""
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-300), 0.0, 1.0)
    d = p - (a + t[:, None] * ab)
    return (d * d).sum(1)


def _triangle_distance2(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact squared distance from points p (n, 3) to triangles (a, b, c) (n, 3 each): the distance
    to the plane where the projection falls inside the triangle, else to the nearest edge."""
    n = np.cross(b - a, c - a)
    nn = (n * n).sum(1)
    degenerate = nn <= 1e-300
    nn = np.where(degenerate, 1.0, nn)
    height = ((p - a) * n).sum(1)
    q = p - (height / nn)[:, None] * n  # projection onto the plane
    # Inside when q is on the inner side of all three edges (signed areas agree with n).
    inside = ~degenerate
    for e0, e1 in ((a, b), (b, c), (c, a)):
        inside &= (np.cross(e1 - e0, q - e0) * n).sum(1) >= 0
    edges = np.minimum(np.minimum(_segment_distance2(p, a, b), _segment_distance2(p, b, c)),
                       _segment_distance2(p, c, a))
    return np.where(inside, height * height / nn, edges)


def _kd_leaves(points: np.ndarray, size: int) -> list[np.ndarray]:
    """Index sets of at most `size` points (n, 3), split recursively at the median of the widest
    axis (a k-d tree's leaves): spatially compact groups to bound by one sphere each."""
    leaves, stack = [], [np.arange(len(points))]
    while stack:
        idx = stack.pop()
        if len(idx) <= size:
            leaves.append(idx)
            continue
        sub = points[idx]
        idx = idx[np.argsort(sub[:, np.ptp(sub, 0).argmax()], kind="stable")]
        stack += [idx[len(idx) // 2:], idx[:len(idx) // 2]]
    return leaves


def point_to_mesh_distance(points: Any, vertices: Any, faces: Any, group_size: int = 16,
                           chunk: int = 1024) -> np.ndarray:
    """(N,) exact distances from points (N, 3) to the surface of a triangle mesh, same units.

    Brute force with pruning, no spatial index: triangles are grouped (at most `group_size` each)
    into the leaves of a k-d split of their centroids, each group bounded by a sphere. A point's
    exact distance to the group whose sphere is nearest bounds its answer above; only triangles in
    groups whose sphere comes closer than that, and whose own bounding sphere does too, are then
    measured exactly. Points go `chunk` at a time to bound memory.
    """
    p_all, v = _array(points), _array(vertices)
    tri = v[_indices(faces)]
    centroid = tri.mean(1)
    radius = np.linalg.norm(tri - centroid[:, None], axis=2).max(1)
    leaves = _kd_leaves(centroid, group_size)
    members = np.full((len(leaves), group_size), -1, dtype=np.int64)  # -1 pads the smaller leaves
    for g, leaf in enumerate(leaves):
        members[g, :len(leaf)] = leaf
    valid = members >= 0
    safe = np.where(valid, members, 0)
    group_centre = (centroid[safe] * valid[..., None]).sum(1) / valid.sum(1)[:, None]
    group_radius = np.where(valid, np.linalg.norm(tri[safe] - group_centre[:, None, None], axis=3).max(2), 0).max(1)
    # Bounds are compared with a margin for rounding, far below any distance that matters.
    slack = 1e-12 * (np.abs(tri).max() + np.abs(p_all).max(initial=0.0))

    def exact(i: np.ndarray, t: np.ndarray) -> np.ndarray:
        return _triangle_distance2(p_all[i], tri[t, 0], tri[t, 1], tri[t, 2])

    out = np.empty(len(p_all))
    for start in range(0, len(p_all), chunk):
        idx = np.arange(start, min(start + chunk, len(p_all)))
        lower = np.linalg.norm(p_all[idx, None] - group_centre[None], axis=2) - group_radius[None]
        # Upper bound: the exact distance to the triangles of the most promising group.
        nearest = members[lower.argmin(1)]
        i, t = np.nonzero(nearest >= 0)
        best = np.full(len(idx), np.inf)
        np.minimum.at(best, i, exact(idx[i], nearest[i, t]))
        upper = np.sqrt(best) + slack
        i, g = np.nonzero(lower <= upper[:, None])
        i, t = np.repeat(i, group_size), members[g].reshape(-1)
        keep = t >= 0
        i, t = i[keep], t[keep]
        keep = np.linalg.norm(p_all[idx[i]] - centroid[t], axis=1) - radius[t] <= upper[i]
        i, t = i[keep], t[keep]
        np.minimum.at(best, i, exact(idx[i], t))
        out[idx] = np.sqrt(best)
    return out


def surface_error_mm(pred_vertices: Any, pred_faces: Any, true_vertices: Any, true_faces: Any,
                     samples: int = 20000, seed: int = 0) -> float:
    """Symmetric mean point-to-surface distance in millimetres between two meshes in metres.

    `samples` points are drawn uniformly by area on each mesh; each is measured exactly to the
    other mesh's surface; the result is the mean of the two directions' mean distances.
    Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    on_pred = sample_surface(pred_vertices, pred_faces, samples, rng)
    on_true = sample_surface(true_vertices, true_faces, samples, rng)
    to_true = point_to_mesh_distance(on_pred, true_vertices, true_faces).mean()
    to_pred = point_to_mesh_distance(on_true, pred_vertices, pred_faces).mean()
    return float(500.0 * (to_true + to_pred))  # metres -> mm, halved: the mean of the two directions
