"""Fitting a finished avatar to frames it was not built from (pose and light only, appearance
fixed), for measuring how well it predicts new views and poses."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from harp_track.avatar import Avatar

from .coarse import CoarseFit, coarse_fit
from .frames import Frame
from .optimize import POSE_STAGE, AvatarProblem, OptimizeSettings, Solution, optimize
from .views import crop_views


@dataclasses.dataclass
class PoseFit:
    """An avatar posed in new frames. fit: the landmark fit (the frames kept); solution: the
    refined per-frame global_orient, pose, transl and light; vertices (N, V, 3) metres camera
    space of the refined poses."""

    fit: CoarseFit
    solution: Solution
    vertices: torch.Tensor
    intensity: torch.Tensor


def fit_avatar(avatar: Avatar, frames: list[Frame], schedule: tuple[tuple[int, int], ...] = ((128, 100), (256, 100)),
               batch: int = 8, settings: OptimizeSettings | None = None, progress: bool = False) -> PoseFit:
    """Pose `avatar` in `frames`: landmarks and a landmark fit with the avatar's skeleton, then
    per-frame pose, translation and light refined by the same photometric, silhouette and
    keypoint loss the builder uses, with shape and appearance held fixed. schedule: (crop size,
    Adam steps per frame) passes, each starting where the last ended (coarse to fine: on our
    synthetic subject's novel views, 128 then 256 pixels scored 0.7 dB above 100 steps at 256
    alone, and as well as 300 steps there in half the time)."""
    fit = coarse_fit(frames, avatar.for_side("right").hand_model(), side=avatar.side,
                     shape=np.zeros(0, np.float32), min_frames=1, progress=progress)
    model = avatar.hand_model()
    # Larger steps than the builder's: a pose starts further from its optimum than a shared shape.
    settings = settings or OptimizeSettings(lr_rotation=0.01, lr_transl=0.00125)
    settings = dataclasses.replace(settings, batch=batch, texture_size=avatar.albedo.shape[0])
    lights = None
    for crop_size, iterations in schedule:
        problem = AvatarProblem(model, fit, crop_views(fit, model, crop_size), settings, avatar=avatar)
        if lights is not None:
            with torch.no_grad():
                for param, value in zip(list(problem.light) + list(problem.intensity), lights):
                    param.copy_(value)
        steps = max(1, int(np.ceil(len(fit.frames) * iterations / batch)))
        solution = optimize(problem, progress=progress, stages=(POSE_STAGE,), steps=(steps,))
        fit = dataclasses.replace(fit, global_orient=solution.global_orient, pose=solution.pose,
                                  transl=solution.transl)
        lights = [p.detach().clone() for p in list(problem.light) + list(problem.intensity)]
    idx = list(range(len(fit.frames)))
    with torch.no_grad():
        vertices = problem.posed(idx).vertices
        intensity = torch.stack(list(problem.intensity))[:, 0]
    return PoseFit(fit, solution, vertices, intensity)
