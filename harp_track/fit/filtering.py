"""Temporal filtering of hand poses: One Euro filters (Casiez et al., CHI 2012) with timestamps.

A One Euro filter is a low-pass filter whose cutoff rises with speed: still hands are smoothed
hard (no jitter), moving hands barely (no lag). We filter in the spaces where a hand's motion is
smooth and unconstrained: translation (metres), the wrist rotation as its first two matrix
columns (re-orthonormalised after filtering), and the anatomical joint angles (radians). Two
additions: each update starts from the last estimate moved on by part of its filtered velocity
(less lag in steady motion), and the tracker caps how far a filtered pose may trail the frame's
own fit (`PoseFilterSettings.max_lag`, `HandPoseFilter.pull_towards`). The landmarks' detail
that the model cannot express is smoothed separately and added back to the output joints
(`landmark_detail.py`, `PoseFilterSettings.detail_time_constant`).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .landmark_fit import HandFit


class OneEuroFilter:
    """Element-wise One Euro filter over tensors of a fixed shape.

    min_cutoff: Hz at rest; beta: how fast the cutoff rises with speed (Hz per unit/s);
    d_cutoff: Hz of the speed estimate's own low-pass; prediction: the fraction of the filtered
    velocity that carries the estimate forward between samples (0: the classic filter).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, prediction: float = 0.0):
        self.min_cutoff, self.beta, self.d_cutoff, self.prediction = min_cutoff, beta, d_cutoff, prediction
        self.reset()

    def reset(self) -> None:
        self._x: torch.Tensor | None = None
        self._dx: torch.Tensor | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: torch.Tensor | float, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Filter one sample `x` taken at time `t` (seconds, increasing)."""
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.clone(), torch.zeros_like(x), t
            return x.clone()
        dt = t - self._t
        predicted = self._x + self.prediction * dt * self._dx
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * self._dx.abs()
        self._x = predicted + self._alpha(cutoff, dt) * (x - predicted)
        self._t = t
        return self._x.clone()

    def overwrite(self, x: torch.Tensor) -> None:
        """Replace the current estimate (after a sample), keeping the speed estimate."""
        if self._x is None:
            raise RuntimeError("nothing to overwrite before the first sample")
        self._x = x.clone()


@dataclasses.dataclass
class PoseFilterSettings:
    """One Euro (min_cutoff Hz, beta Hz per unit/s) per space; units metres and radians.

    d_cutoff: Hz of the speed estimates; prediction: the share of the filtered velocity that
    carries each estimate forward. max_lag: how far the filtered pose may trail the frame's own
    fit, as the mean image distance of their keypoints over the hand's image size (landmark noise
    is about 1%): past it the filtered pose is pulled back to about that bound, so a fast move shows
    at most that much lag while a slow hand is still smoothed within it.

    Chosen on synthetic clips with MediaPipe in the loop (our own data), at full rate and 4x
    subsampled, against the earlier settings (min_cutoff 1, beta 4, no prediction, a restart
    past 4%): the lag bound gives the smoothing room to be stronger, and together they cut the
    2D jitter on those clips by a further 4% at the same 2D error (within 0.05 px); on the real
    benchmarks (docs/benchmarks.md) jitter and lag both went down.

    detail_time_constant: seconds, of the smoothing of the landmarks' offsets from the fitted
    keypoints, which the tracker adds back to its joints (`landmark_detail.LandmarkDetail`);
    None reports the model's joints alone. Swept with cached landmarks (0.1-1 of the offset a
    frame, at 30 fps): about 0.15 s lowered the real frames' 2D error most without raising the
    real video's jitter; faster lets landmark noise through (at one frame, 0.64 px/frame²
    against 0.53).
    """

    translation: tuple[float, float] = (0.3, 15.0)
    rotation: tuple[float, float] = (0.3, 1.0)
    angles: tuple[float, float] = (0.3, 1.0)
    d_cutoff: float = 2.0
    prediction: float = 0.5
    max_lag: float = 0.01
    detail_time_constant: float | None = 0.15


class HandPoseFilter:
    """Filters consecutive `HandFit`s of one hand."""

    def __init__(self, settings: PoseFilterSettings | None = None):
        s = settings or PoseFilterSettings()
        self._transl = OneEuroFilter(*s.translation, s.d_cutoff, s.prediction)
        self._rotation = OneEuroFilter(*s.rotation, s.d_cutoff, s.prediction)
        self._angles = OneEuroFilter(*s.angles, s.d_cutoff, s.prediction)

    def reset(self) -> None:
        for f in (self._transl, self._rotation, self._angles):
            f.reset()

    def __call__(self, fit: HandFit, t: float) -> HandFit:
        """The filtered fit (keypoints are left to be recomputed by the caller)."""
        columns = self._rotation(fit.rotation[:, :2].T.reshape(-1), t)
        return dataclasses.replace(fit, rotation=_orthonormal(columns), transl=self._transl(fit.transl, t),
                                   angles=self._angles(fit.angles, t))

    def pull_towards(self, filtered: HandFit, fit: HandFit, weight: float) -> HandFit:
        """`filtered` moved by `weight` (0..1) of the way to `fit`, which the filter then goes on from."""
        columns = torch.lerp(filtered.rotation[:, :2].T.reshape(-1), fit.rotation[:, :2].T.reshape(-1), weight)
        pulled = dataclasses.replace(filtered, rotation=_orthonormal(columns),
                                     transl=torch.lerp(filtered.transl, fit.transl, weight),
                                     angles=torch.lerp(filtered.angles, fit.angles, weight))
        self._rotation.overwrite(columns)
        self._transl.overwrite(pulled.transl)
        self._angles.overwrite(pulled.angles)
        return pulled


def _orthonormal(columns: torch.Tensor) -> torch.Tensor:
    """(3, 3) rotation from the first two columns (6,) of a nearly orthonormal matrix (Gram-Schmidt)."""
    columns = columns.reshape(2, 3)
    x = torch.nn.functional.normalize(columns[0], dim=0)
    y = torch.nn.functional.normalize(columns[1] - (columns[1] @ x) * x, dim=0)
    return torch.stack([x, y, torch.linalg.cross(x, y)], 1)
