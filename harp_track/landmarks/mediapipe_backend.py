"""MediaPipe backend: the legacy `mediapipe.solutions.hands` solution (mediapipe==0.10.21) in video
mode with the full landmark model (model_complexity=1)."""

from __future__ import annotations

import numpy as np

from ..keypoints import NUM_KEYPOINTS
from .base import HandLandmarks, TimestampCheck, camera_handedness, check_image

# MediaPipe's defaults, kept explicit: palm detection and landmark presence thresholds.
MIN_DETECTION_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5


class MediaPipeDetector:
    """`LandmarkDetector` running MediaPipe Hands. It re-runs palm detection on every frame while
    fewer than `max_hands` hands are tracked (MediaPipe's own policy)."""

    def __init__(self, max_hands: int = 2, mirrored: bool = False) -> None:
        import mediapipe as mp

        if max_hands < 1:
            raise ValueError(f"max_hands must be at least 1, got {max_hands}")
        self.mirrored = mirrored
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=False, max_num_hands=max_hands, model_complexity=1,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            min_tracking_confidence=MIN_TRACKING_CONFIDENCE)
        self._timestamps = TimestampCheck()

    def detect(self, image_rgb: np.ndarray, timestamp_s: float) -> list[HandLandmarks]:
        """Hands in an H×W×3 uint8 RGB frame (see `HandLandmarks`; score is None here)."""
        image_rgb = check_image(image_rgb)
        self._timestamps(timestamp_s)
        result = self._hands.process(image_rgb)
        if not result.multi_hand_landmarks:
            return []
        height, width = image_rgb.shape[:2]
        # Normalized x, y, z → pixels; MediaPipe scales z like x (by the image width).
        scale = np.array([width, height, width], np.float32)
        hands = []
        for image_lms, world_lms, handedness in zip(result.multi_hand_landmarks,
                                                    result.multi_hand_world_landmarks,
                                                    result.multi_handedness):
            xyz = np.array([(p.x, p.y, p.z) for p in image_lms.landmark], np.float32) * scale
            world = np.array([(p.x, p.y, p.z) for p in world_lms.landmark], np.float32)
            label = handedness.classification[0]
            assert xyz.shape == (NUM_KEYPOINTS, 3) and world.shape == (NUM_KEYPOINTS, 3)
            hands.append(HandLandmarks(
                image_xy=np.ascontiguousarray(xyz[:, :2]), image_z=np.ascontiguousarray(xyz[:, 2]),
                world_xyz=world, handedness=camera_handedness(label.label, self.mirrored),
                handedness_score=float(label.score), score=None))
        return hands

    def reset(self) -> None:
        """Forget tracked hands."""
        self._hands.reset()
        self._timestamps = TimestampCheck()

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._hands.close()
