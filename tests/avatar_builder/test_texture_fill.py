"""Filling unseen texels and padding gutters (avatar_builder.texture_fill)."""

import numpy as np

import harp_track as ht
from avatar_builder.texture_fill import fill_texture, push_pull, uv_island_mask


def test_island_mask_covers_the_texel_centres_inside_the_triangles():
    size = 64
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
    mask = uv_island_mask(uvs, np.array([[0, 1, 2]]), size)
    centres = (np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="xy"), -1) + 0.5) / size
    inside = (centres[..., 0] > 0.1) & (centres[..., 1] > 0.1) & (centres[..., 0] + centres[..., 1] < 1.0)
    # Rasterization rules differ only on the edges: a texel or so along each of the three.
    assert np.abs(mask.astype(int) - inside.astype(int)).sum() < 3 * 0.8 * size * 1.5
    assert mask[int(0.3 * size), int(0.3 * size)] and not mask[int(0.8 * size), int(0.8 * size)]


def test_island_mask_of_the_hand_model_is_its_islands():
    model = ht.load_hand_model()
    mask = uv_island_mask(model.data.uvs, model.data.faces_uv, 256)
    assert 0.2 < mask.mean() < 0.7  # two hand-shaped islands, gutters around them


def test_push_pull_keeps_known_texels_and_interpolates_smooth_data():
    size = 64
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    values = np.stack([x, y, 0.5 * x + 0.25 * y], -1)
    known = np.random.default_rng(0).random((size, size)) < 0.2
    holes = values.copy()
    holes[~known] = 7.0  # garbage where nothing is known
    filled = push_pull(holes, known)
    assert np.array_equal(filled[known], values[known])
    assert np.abs(filled - values)[~known].mean() < 0.02  # a ramp, filled from 20% of its texels
    constant = push_pull(np.where(known[..., None], 0.3, 9.0).astype(np.float32), known)
    assert np.allclose(constant, 0.3, atol=1e-6)


def test_fill_stays_within_the_seen_colours_and_pads_the_gutter():
    size = 64
    island = np.zeros((size, size), bool)
    island[8:56, 8:56] = True
    seen = np.zeros((size, size), bool)
    seen[12:40, 12:24] = True  # two seen patches of different colour; the rest was never seen
    seen[12:40, 30:40] = True
    skin, darker, gutter = np.array([0.8, 0.6, 0.5]), np.array([0.6, 0.4, 0.3]), np.array([0.1, 0.3, 0.9])
    texture = np.zeros((size, size, 3), np.float32)
    texture[:, :] = gutter  # whatever the optimizer left in texels nothing constrains
    texture[12:40, 12:24], texture[12:40, 30:40] = skin, darker
    filled = fill_texture(texture, seen, island)
    assert np.array_equal(filled[seen], texture[seen])
    # Every island texel is a mix of the two seen colours: no gutter colour came in.
    low, high = np.minimum(skin, darker) - 1e-4, np.maximum(skin, darker) + 1e-4
    assert ((filled[island] >= low) & (filled[island] <= high)).all()
    # Between the patches the fill blends them (each contributes).
    share = (filled[25, 27] - darker) / (skin - darker)
    assert np.all((share > 0.1) & (share < 0.9))
    # The gutter beside the island is padded with the island's colours.
    assert ((filled[4:60, 4:8] >= low) & (filled[4:60, 4:8] <= high)).all()
    # Without any seen texel there is nothing to fill from.
    assert np.array_equal(fill_texture(texture, np.zeros_like(seen), island), texture)
