"""What the tracker returns per frame: plain dataclasses of numpy arrays (no torch), so AR engines
and the pose stream can use them without knowing the internals."""

from __future__ import annotations

import dataclasses

import numpy as np

from .camera import Camera


@dataclasses.dataclass
class TrackedHand:
    """One hand in one frame. Positions in metres in OpenCV camera space; MediaPipe keypoint order.

    handedness: "left" | "right" for the unmirrored image. joints (21, 3) float32; keypoints_2d
    (21, 2) float32 pixels, the joints' projection; vertices (V, 3) float32; confidence in [0, 1].
    The hand model's parameters: global_orient (3,) axis-angle, pose (P, 3) local axis-angle,
    shape (K,), transl (3,) metres; `vertices` are the model's at them, while `joints` also take on
    the smoothed part of the landmarks that the model cannot express (`fit.landmark_detail`; a
    few pixels, moved within the image plane). track_id stays the same while a hand is tracked continuously.
    appearance_agreement: 0..1, the share of the avatar's visible surface whose colour the frame
    confirmed after the appearance refinement (None when the hand was not refined); it is part of
    `confidence`.
    """

    handedness: str
    joints: np.ndarray
    keypoints_2d: np.ndarray
    vertices: np.ndarray
    confidence: float
    global_orient: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    track_id: int = 0
    appearance_agreement: float | None = None


@dataclasses.dataclass
class TrackingResult:
    """All hands of one frame (empty list when none is seen), the camera used (its `assumed` flag
    says whether the intrinsics were guessed), whether the hand's size was assumed (the model's
    mean hand: metric depth then scales with the user's true size), the frame's timestamp in
    seconds and per-stage timings in milliseconds."""

    hands: list[TrackedHand]
    camera: Camera
    timestamp: float
    frame_index: int
    image_size: tuple[int, int]  # (H, W)
    hand_size_assumed: bool = True
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
