"""The optimizer's views: frames picked to cover many viewing directions, square crops with their
own cameras, and hand masks (user-given or GrabCut)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from avatar_builder.coarse import select_views
from avatar_builder.views import crop_views

from .subject import N, coarse_from

CROP = 96
MARGIN = 0.2  # crop_views' default


# ---------------------------------------------------------------- select_views

def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def spread_directions(n, seed):
    """n palm normals spread over the half sphere facing the camera (z < 0) and beyond."""
    rng = np.random.default_rng(seed)
    polar = np.arccos(np.linspace(0.95, -0.6, n))  # angle from -z
    azimuth = rng.uniform(-np.pi, np.pi, n)
    return unit(np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), -np.cos(polar)], 1))


def test_select_views_count_and_small_clips():
    directions = spread_directions(40, 0)
    for count in (1, 7, 20, 39):
        chosen = select_views(directions, count)
        assert len(chosen) == count and len(set(chosen.tolist())) == count
        assert np.all(np.diff(chosen) > 0) and chosen.min() >= 0 and chosen.max() < 40
    np.testing.assert_array_equal(select_views(directions[:5], 8), np.arange(5))
    np.testing.assert_array_equal(select_views(directions, 40), np.arange(40))


def test_select_views_is_not_dominated_by_a_lingering_view():
    # Frames 0..19 all show the palm square on; frames 20..39 turn through many other views.
    lingering = np.tile(unit([0.05, 0.02, -1.0]), (20, 1))
    directions = np.concatenate([lingering, spread_directions(20, 1)])
    chosen = select_views(directions, 10)
    assert len(chosen) == 10
    # Taking every 4th frame would give 5 of the repeated view; binning gives it one slot a round.
    assert (chosen < 20).sum() <= 2
    np.testing.assert_array_equal(select_views(directions, 10), chosen)  # deterministic
    np.testing.assert_array_equal(select_views(directions.copy(), 10), chosen)


def test_select_views_spreads_over_time_within_a_view():
    directions = np.tile(unit([0.0, 0.1, -1.0]), (32, 1))
    chosen = select_views(directions, 4)
    assert len(chosen) == 4
    assert chosen.min() < 8 and chosen.max() >= 24 and np.diff(chosen).min() >= 4


# ---------------------------------------------------------------- crops and masks

@pytest.fixture(scope="module")
def views_masked(clip, model):
    return crop_views(coarse_from(clip, True), model, CROP)


@pytest.fixture(scope="module")
def views_grabcut(clip, model):
    return crop_views(coarse_from(clip, False), model, CROP)


def expected_box(clip, i):
    """(x0, y0, scale): the square around the projected true mesh with the margin on each side, as
    crop_views documents it; crop pixel = (source pixel - (x0, y0)) * scale."""
    uv = clip.camera.project(torch.from_numpy(clip.vertices[i])).numpy()
    lo, hi = uv.min(0), uv.max(0)
    side = float((hi - lo).max()) * (1 + 2 * MARGIN)
    x0, y0 = np.floor((lo + hi) / 2 - side / 2).astype(int)
    return x0, y0, CROP / int(np.ceil(side))


def warp_to_crop(image, x0, y0, scale):
    """The source image resampled into the crop (pixel centres at +0.5, as cv2.resize maps them)."""
    m = np.array([[scale, 0, (0.5 - x0) * scale - 0.5], [0, scale, (0.5 - y0) * scale - 0.5]])
    return cv2.warpAffine(image.astype(np.float32), m, (CROP, CROP), flags=cv2.INTER_LINEAR)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_views_layout(views_masked):
    v = views_masked
    assert v.size == CROP and len(v.cameras) == N
    assert v.images.shape == (N, CROP, CROP, 3) and v.images.dtype == torch.float32
    assert 0 <= v.images.min() and v.images.max() <= 1
    assert v.masks.shape == v.valid.shape == v.interior.shape == (N, CROP, CROP)
    assert v.projections.shape == (N, 4, 4) and v.landmarks.shape == (N, 21, 2)
    np.testing.assert_array_equal(v.frame_index, np.arange(N))
    # The interior is inside the mask, and smaller.
    assert (v.interior <= v.masks).all() and v.interior.sum() < v.masks.sum()


def test_crop_camera_projects_joints_onto_the_mapped_keypoints(clip, views_masked):
    for i, cam in enumerate(views_masked.cameras):
        x0, y0, scale = expected_box(clip, i)
        expected = (clip.keypoints_2d[i] - [x0, y0]) * scale
        projected = cam.project(torch.from_numpy(clip.joints[i])).numpy()
        np.testing.assert_allclose(projected, expected, atol=1e-3)
        np.testing.assert_allclose(views_masked.landmarks[i].numpy(), expected, atol=1e-3)
        assert (expected > 0).all() and (expected < CROP).all()
        assert cam.assumed == clip.camera.assumed


def test_crop_images_are_the_source_resampled(clip, views_masked):
    for i in range(N):
        x0, y0, scale = expected_box(clip, i)
        valid = views_masked.valid[i].numpy() > 0.5
        # Where the crop is inside the source image; beyond its (resampled) edge it is black.
        inside = warp_to_crop(np.ones(clip.frames[i].shape[:2]), x0, y0, scale) > 0.5
        assert iou(valid, inside) > 0.95
        near = cv2.dilate(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert views_masked.images[i][~near].abs().sum() == 0
        expected = warp_to_crop(clip.frames[i], x0, y0, scale) / 255.0
        error = np.abs(views_masked.images[i].numpy() - expected)[valid & inside]
        assert error.mean() < 0.01


def test_user_masks_are_cropped_with_the_frame(clip, views_masked):
    for i in range(N):
        truth = warp_to_crop(clip.masks[i], *expected_box(clip, i)) > 0.5
        assert iou(views_masked.masks[i].numpy() > 0.5, truth) > 0.95


def test_grabcut_masks_repeat(clip, model, views_grabcut):
    """Builds are seeded and repeatable: GrabCut's colour models start from OpenCV's process-wide
    RNG, which other calls (here: drawing from it in between) must not change."""
    cv2.randu(np.zeros(100, np.float32), 0.0, 1.0)
    again = crop_views(coarse_from(clip, False), model, CROP)
    assert torch.equal(again.masks, views_grabcut.masks)


def test_grabcut_masks_follow_the_hand(clip, views_grabcut, views_masked):
    ious = [iou(views_grabcut.masks[i].numpy() > 0.5, warp_to_crop(clip.masks[i], *expected_box(clip, i)) > 0.5)
            for i in range(N)]
    assert min(ious) > 0.85, ious
    # The crops and cameras do not depend on where the masks came from.
    assert views_grabcut.cameras == views_masked.cameras
    assert torch.equal(views_grabcut.images, views_masked.images)
