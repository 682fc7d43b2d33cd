"""The 21 hand keypoints in MediaPipe's order, the convention every part of the SDK keeps."""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 21

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

# Keypoint indices of each finger, base to tip: FINGER_KEYPOINTS[f] = (base, ..., tip).
FINGER_KEYPOINTS: tuple[tuple[int, int, int, int], ...] = tuple(
    (1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f) for f in range(5)
)

# Parent of each keypoint in the skeleton drawn over images (wrist to each finger base).
KEYPOINT_PARENTS: tuple[int, ...] = (-1,) + tuple(
    0 if k % 4 == 1 else k - 1 for k in range(1, NUM_KEYPOINTS)
)


def palm_normal(keypoints: np.ndarray, side: str) -> np.ndarray:
    """(..., 21, 3) keypoints -> (..., 3) unit normal pointing out of the palm.

    index MCP x little MCP (from the wrist) points out of a right palm; a left hand is the
    mirror image, which flips the cross product.
    """
    normal = np.cross(keypoints[..., 5, :] - keypoints[..., 0, :], keypoints[..., 17, :] - keypoints[..., 0, :])
    if side == "left":
        normal = -normal
    return normal / (np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12)
