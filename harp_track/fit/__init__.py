"""Fitting the hand model: to landmarks (initialization, per frame) and to the frame's appearance
with the user's avatar (refinement)."""

from .landmark_fit import FitWeights, HandFit, LandmarkFitter, LandmarkProblem
from .refine import AppearanceRefiner, RefineSettings, Refinement

__all__ = ["AppearanceRefiner", "FitWeights", "HandFit", "LandmarkFitter", "LandmarkProblem", "RefineSettings",
           "Refinement"]
