"""Fitting the hand model: to landmarks (initialization, per frame) and, later, to appearance."""

from .landmark_fit import FitWeights, HandFit, LandmarkFitter

__all__ = ["FitWeights", "HandFit", "LandmarkFitter"]
