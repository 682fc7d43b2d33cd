"""One Euro filtering: less jitter at rest, little lag in motion."""

import math

import torch

from harp_track.fit.filtering import OneEuroFilter


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
