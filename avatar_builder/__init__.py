"""Enrollment: a personalized hand avatar from a short monocular RGB video, the HARP way
(Karunratanakul et al., CVPR 2023), without training any network.

    from avatar_builder import build_avatar
    avatar = build_avatar("clip.mp4", out_dir="avatars/alice")
"""

from .build import BuildSettings, build_avatar
from .errors import EnrollmentError
from .optimize import LossWeights, OptimizeSettings

__all__ = ["BuildSettings", "EnrollmentError", "LossWeights", "OptimizeSettings", "build_avatar"]
