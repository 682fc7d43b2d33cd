"""A small synthetic subject whose ground truth stands in for the builder's coarse fit."""

import numpy as np

from avatar_builder.coarse import CoarseFit
from avatar_builder.frames import Frame

N = 6  # frames of the small subject


def coarse_from(clip, with_masks: bool = True, orient_offset: float = 0.0) -> CoarseFit:
    """The clip's ground truth as a coarse fit, with the true masks as user masks or none."""
    n = len(clip.frames)
    frames = [Frame(clip.frames[i], i, clip.camera, clip.masks[i] if with_masks else None) for i in range(n)]
    return CoarseFit(frames=frames, cameras=[clip.camera] * n, side="right", shape=clip.shape.copy(),
                     global_orient=clip.global_orient + np.float32(orient_offset), pose=clip.pose.copy(),
                     transl=clip.transl.copy(), landmarks=clip.keypoints_2d.astype(np.float32),
                     reprojection_px=np.zeros(n, np.float32))
