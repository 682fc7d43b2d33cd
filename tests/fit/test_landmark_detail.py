"""The landmarks' detail the model cannot express: smoothed, capped, and added in the image plane."""

import math

import numpy as np
import pytest
import torch

from harp_track.camera import Camera
from harp_track.fit.landmark_detail import LandmarkDetail, shift_in_image


def _hand(size: float = 100.0) -> np.ndarray:
    """(21, 2) pixel points spanning a box `size` wide and tall."""
    points = np.random.default_rng(0).uniform(200, 200 + size, (21, 2))
    points[0], points[1] = (200, 200), (200 + size, 200 + size)
    return points


def test_a_steady_offset_is_kept_and_the_noise_on_it_smoothed():
    """Landmarks 2 px off the fit plus 1 px of noise a frame: the detail settles near the offset,
    with much less of the noise than the raw differences."""
    rng = np.random.default_rng(1)
    fitted, offset = _hand(), np.array([2.0, -1.0])
    detail = LandmarkDetail(time_constant=0.15)
    raw, smoothed = [], []
    for i in range(150):
        noisy = fitted + offset + rng.normal(0, 1.0, fitted.shape)
        smoothed.append(detail(noisy, fitted, i / 30))
        raw.append(noisy - fitted)
    smoothed, raw = np.array(smoothed[30:]), np.array(raw[30:])
    assert np.abs(smoothed.mean((0, 1)) - offset).max() < 0.15
    assert smoothed.std(0).mean() < 0.4 * raw.std(0).mean()


def test_smoothing_follows_the_time_constant_not_the_frame_count():
    fitted = _hand()
    detail = LandmarkDetail(time_constant=0.2)
    detail(fitted, fitted, 0.0)
    moved = detail(fitted + 1.0, fitted, 0.2)  # one time constant later: 1 - 1/e of the way
    np.testing.assert_allclose(moved, 1.0 - math.exp(-1.0), rtol=1e-9)
    assert np.allclose(detail(fitted + 3.0, fitted, 0.1), 3.0)  # time went back: start afresh


def test_a_stray_landmark_moves_the_output_by_at_most_the_cap():
    fitted = _hand(size=100.0)
    landmarks = fitted.copy()
    landmarks[8] += (30.0, 40.0)  # a fingertip 50 px astray, on a hand about 141 px across
    size = np.linalg.norm(landmarks.max(0) - landmarks.min(0))
    offsets = LandmarkDetail(time_constant=0.15, max_fraction=0.05)(landmarks, fitted, 0.0)
    assert np.linalg.norm(offsets[8]) == pytest.approx(0.05 * size)
    np.testing.assert_allclose(offsets[8] / np.linalg.norm(offsets[8]), [0.6, 0.8])
    assert np.abs(np.delete(offsets, 8, 0)).max() == 0


def test_shifted_joints_project_by_the_offsets_at_their_own_depth():
    camera = Camera(500.0, 480.0, 320.0, 240.0)
    joints = np.random.default_rng(2).uniform([-0.1, -0.1, 0.3], [0.1, 0.1, 0.6], (21, 3))
    offsets = np.random.default_rng(3).normal(0, 3.0, (21, 2))
    moved = shift_in_image(joints, offsets, camera)
    project = lambda j: camera.project(torch.as_tensor(j)).numpy()  # noqa: E731
    np.testing.assert_allclose(project(moved) - project(joints), offsets, atol=1e-9)
    np.testing.assert_array_equal(moved[:, 2], joints[:, 2])


def test_time_constant_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        LandmarkDetail(time_constant=0.0)
