"""Fill the texels of an avatar's UV maps that no view saw, and pad the gutters between islands.

The texels inside a UV island that the views did not see are filled by push-pull interpolation
(Gortler et al. 1996: average the seen texels down an image pyramid, then blend the coarse levels
back up): a smooth fill from the nearby seen colours, where inpainting along the edges'
directions (OpenCV's Telea, used before) drew streaks of single edge texels across the unseen
back of a hand. The gutters outside the islands are then padded from the islands the same way,
so that bilinear and mipmapped lookups near a seam read the island's colours, not the gutter's.
Measured against Telea (avatars from hgc_realworld frames 0-199, frames 200-299 rendered): 18.11
against 18.07 dB, so the gain is in how the unseen parts look, not in the frames the user shows.
Dropping the seen region's outermost texels too (they sometimes carry background) scored 18.12
there but lowered the silhouette agreement of our small test builds, so it is not done.
"""

from __future__ import annotations

import cv2
import numpy as np


def uv_island_mask(uvs: np.ndarray, faces_uv: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool: the texels that UV triangles cover. uvs (T, 2) in [0, 1] (v = 0 at texture
    row 0, as the renderer samples them); faces_uv (F, 3) indices into uvs."""
    mask = np.zeros((size, size), np.uint8)
    # Texel centres sit at (i + 0.5) / size; cv2 draws in fixed point with 4 fractional bits.
    corners = np.round((uvs * size - 0.5) * 16).astype(np.int32)
    for face in faces_uv:
        cv2.fillConvexPoly(mask, corners[face], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def push_pull(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, C) float `values` with the texels where `known` (H, W) bool is False replaced by a
    smooth interpolation of the known ones; known texels are returned unchanged. All unknown
    with nothing known: returned as is."""
    if known.all() or not known.any():
        return values.astype(np.float32)
    weight = known.astype(np.float32)
    height, width = known.shape
    small = (max(width // 2, 1), max(height // 2, 1))
    # Pull: weighted averages one level down; a coarse texel is known if any fine one was.
    total = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
    summed = cv2.resize(values * weight[..., None], small, interpolation=cv2.INTER_AREA).reshape(*total.shape, -1)
    coarse = push_pull(summed / np.maximum(total, 1e-12)[..., None], total > 0)
    # Push: the filled coarse level, interpolated back up, fills the unknown texels.
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR).reshape(values.shape)
    return np.where(known[..., None], values, up).astype(np.float32)


def fill_texture(texture: np.ndarray, seen: np.ndarray, island: np.ndarray) -> np.ndarray:
    """(S, S, C) map with the texels of `island` (S, S) bool outside `seen` (S, S) bool filled
    from the seen ones, then the gutters (outside the islands) padded from the islands. Without
    any seen island texel the map is returned unchanged."""
    kept = seen & island
    if not kept.any():
        return texture.astype(np.float32)
    filled = push_pull(texture.astype(np.float32), kept)
    return push_pull(filled, island)
