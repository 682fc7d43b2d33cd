"""One Euro filtering: less jitter at rest, little lag in motion."""

import dataclasses
import math

import torch

from harp_track.fit import HandFit
from harp_track.fit.filtering import HandPoseFilter, OneEuroFilter, PoseFilterSettings


def test_one_euro_removes_jitter_at_rest():
    g = torch.Generator().manual_seed(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    noisy = 0.01 * torch.randn(300, 3, generator=g)
    out = torch.stack([f(x, i / 30) for i, x in enumerate(noisy)])
    second_diff = lambda s: (s[2:] - 2 * s[1:-1] + s[:-2]).abs().mean()  # noqa: E731
    assert second_diff(out[30:]) < 0.2 * second_diff(noisy[30:])


def test_one_euro_follows_fast_motion_with_little_lag():
    """A 1 m/s ramp: the speed term raises the cutoff, so the steady lag is a few millimetres,
    where a fixed 1 Hz low-pass (beta = 0) lags by v / (2 pi fc) = 16 cm."""
    fast, slow = OneEuroFilter(min_cutoff=1.0, beta=30.0), OneEuroFilter(min_cutoff=1.0, beta=0.0)
    for i in range(120):
        x = torch.tensor([i / 30.0])
        a, b = fast(x, i / 30), slow(x, i / 30)
    assert float(x - a) < 0.02
    assert float(x - b) > 0.1
    assert abs(float(x - b) - 1.0 / (2 * math.pi)) < 0.05


def test_one_euro_restarts_when_time_goes_back():
    f = OneEuroFilter(beta=1.0)
    f(torch.tensor([0.0]), 1.0)
    f(torch.tensor([1.0]), 1.1)
    assert float(f(torch.tensor([5.0]), 0.5)) == 5.0


def test_prediction_shrinks_the_lag_of_steady_motion():
    """A fixed 1 Hz low-pass on a ramp x = v t sampled every dt. The speed estimate is taken
    against the last estimate, so it reads v + e / dt at a lag e; carrying p of it forward gives
    e' = k (e + v dt) with k = (1 - alpha)(1 - p), a steady lag k v dt / (1 - k): v / (2 pi fc)
    at p = 0, 2.35 cm at p = 0.5 (v = 1, dt = 1/30), none at p = 1."""
    lags = {}
    for p in (0.0, 0.5, 1.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0, prediction=p)
        for i in range(300):
            x = torch.tensor([i / 30.0])
            out = f(x, i / 30)
        lags[p] = float(x - out)
    alpha = 1.0 / (1.0 + 30.0 / (2 * math.pi))
    k = (1 - alpha) * 0.5
    assert abs(lags[0.0] - 1.0 / (2 * math.pi)) < 1e-3
    assert abs(lags[0.5] - k / (1 - k) / 30.0) < 1e-4
    assert abs(lags[1.0]) < 0.01 * lags[0.0]


def test_pull_towards_moves_the_filter_on_from_the_pulled_pose():
    fit = HandFit(rotation=torch.eye(3), transl=torch.zeros(3), angles=torch.zeros(20, 3),
                  keypoints=torch.zeros(21, 3), reprojection_px=0.0, iterations=0)
    turned = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    moved = dataclasses.replace(fit, rotation=turned, transl=torch.tensor([0.1, 0.0, 0.0]),
                                angles=torch.full((20, 3), 0.5))
    f = HandPoseFilter(PoseFilterSettings(prediction=0.0))
    f(fit, 0.0)
    lagging = f(moved, 1 / 30)
    assert float(lagging.transl[0]) < 0.09  # the heavy smoothing at rest trails the jump
    pulled = f.pull_towards(lagging, moved, 1.0)
    assert torch.allclose(pulled.rotation, turned, atol=1e-6) and torch.allclose(pulled.transl, moved.transl)
    after = f(moved, 2 / 30)  # the filter goes on from the pulled pose, not from where it trailed
    assert torch.allclose(after.transl, moved.transl, atol=1e-6)
