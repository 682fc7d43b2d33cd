"""Parametric hand models behind one interface: pose and shape in, posed mesh and keypoints out."""

from .anatomy import AnatomicalPose
from .data import HandModelData, HandModelError
from .loading import load_hand_model
from .model import HandModel, HandOutput
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["AnatomicalPose", "HandModel", "HandModelData", "HandModelError", "HandOutput", "load_hand_model",
           "axis_angle_to_matrix", "matrix_to_axis_angle"]
