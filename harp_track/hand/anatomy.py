"""Anatomical pose space: per joint flexion, abduction and twist angles, with limits.

Each pose joint gets an orthonormal frame computed from the model's own zero-pose geometry, so
the same angles mean the same gesture on every model (open default, MANO, either hand):
- flexion rotates the bone towards the palm (positive = curl; for the thumb: across the palm),
- abduction rotates it sideways (positive = away from the middle finger; for the thumb's base
  joint: palmar abduction, away from the palm plane),
- twist rotates it about its own axis.
Angles are in radians. The axis-angle pose is `flex * f + abd * a + twist * t` with (f, a, t)
orthonormal, so the map is linear and `from_pose` inverts it exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..keypoints import FINGER_KEYPOINTS

if TYPE_CHECKING:
    from .model import HandModel

# Degrees (flex, abduction, twist) as (lower, upper) per joint role; from clinical ranges of motion,
# a little wider for the fit's slack. Zero-width ranges lock the degrees of freedom a hinge lacks.
LIMITS_DEG: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "wrist": ((-70, 80), (-35, 25), (0, 0)),
    "metacarpal": ((-3, 15), (-5, 5), (-5, 5)),
    "mcp": ((-25, 95), (-25, 25), (-8, 8)),
    "pip": ((-5, 115), (-3, 3), (-3, 3)),
    "dip": ((-10, 90), (-3, 3), (-3, 3)),
    "thumb_cmc": ((-20, 55), (-15, 60), (-35, 35)),
    "thumb_mcp": ((-10, 70), (-10, 10), (-10, 10)),
    "thumb_ip": ((-20, 90), (-3, 3), (-3, 3)),
}

# Named gestures: degrees (flex, abduction, twist) per role, the fingers that stay straight, and
# MCP abduction per finger (a fan: the outer fingers spread more, the middle one is the reference).
_CURLED = {"mcp": (85, 0, 0), "pip": (100, 0, 0), "dip": (60, 0, 0), "metacarpal": (8, 0, 0),
           "thumb_cmc": (45, 15, 0), "thumb_mcp": (45, 0, 0), "thumb_ip": (50, 0, 0)}
_GESTURES: dict[str, tuple[dict[str, tuple[float, float, float]], tuple[int, ...], dict[int, float]]] = {
    "flat": ({}, (), {}),
    "fist": (_CURLED, (), {}),
    "point": (_CURLED, (1,), {}),
    "spread": ({"thumb_cmc": (-20, 5, 0)}, (), {1: 15, 3: 12, 4: 28}),
    "pinch": ({"mcp": (30, 0, 0), "pip": (40, 0, 0), "dip": (20, 0, 0),
               "thumb_cmc": (35, 35, 0), "thumb_mcp": (20, 0, 0), "thumb_ip": (20, 0, 0)}, (2, 3, 4), {}),
}


class AnatomicalPose(nn.Module):
    """Maps (B, num_pose_joints, 3) anatomical angles [flex, abduction, twist] to axis-angle pose.

    axes (P, 3, 3): row k of joint j is the rotation axis of its k-th degree of freedom, in the
    model's zero-pose frame. lower, upper (P, 3): limits in radians.
    """

    def __init__(self, model: "HandModel"):
        super().__init__()
        axes, lower, upper = _joint_frames_and_limits(model)
        self.roles = model.data.joint_roles[1:]
        self.fingers = _joint_fingers(model)[1:]
        self.register_buffer("axes", torch.as_tensor(axes, dtype=torch.float32), persistent=False)
        self.register_buffer("lower", torch.as_tensor(lower, dtype=torch.float32), persistent=False)
        self.register_buffer("upper", torch.as_tensor(upper, dtype=torch.float32), persistent=False)

    def clamp(self, angles: torch.Tensor) -> torch.Tensor:
        """Project (B, P, 3) angles into the limits."""
        return torch.minimum(torch.maximum(angles, self.lower.to(angles)), self.upper.to(angles))

    def to_pose(self, angles: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """(B, P, 3) angles, radians → (B, P, 3) axis-angle pose for the model; clamped by default."""
        if clamp:
            angles = self.clamp(angles)
        return torch.einsum("bjk,jkc->bjc", angles, self.axes.to(angles))

    def from_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) axis-angle pose → (B, P, 3) angles (exact inverse of unclamped `to_pose`)."""
        return torch.einsum("bjc,jkc->bjk", pose, self.axes.to(pose))

    def limit_violation(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) angles → (B,) sum of squared excess beyond the limits (radians²); a fitting prior."""
        excess = torch.relu(self.lower.to(angles) - angles) + torch.relu(angles - self.upper.to(angles))
        return (excess * excess).sum((-1, -2))

    def gesture(self, name: str, batch: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(batch, P, 3) angles of a named gesture: one of 'flat', 'fist', 'point', 'spread', 'pinch'."""
        if name not in _GESTURES:
            raise ValueError(f"unknown gesture {name!r}; known: {sorted(_GESTURES)}")
        per_role, extended, fan = _GESTURES[name]
        deg = np.zeros((len(self.roles), 3))
        for j, (role, finger) in enumerate(zip(self.roles, self.fingers)):
            if finger not in extended:
                deg[j] = per_role.get(role, (0.0, 0.0, 0.0))
            if role == "mcp":
                deg[j, 1] = fan.get(finger, deg[j, 1])
        angles = torch.as_tensor(np.radians(deg), dtype=dtype, device=self.axes.device)
        return self.clamp(angles).expand(batch, -1, -1).clone()


def _joint_fingers(model: "HandModel") -> list[int]:
    """Finger index (0 thumb .. 4 little) of each joint, -1 for the root and wrist.

    From the skeleton alone: thumb joints by role; the four finger chains ordered by how far their
    MCP joint lies from the thumb's base (index nearest, little farthest); descendants inherit
    their chain's finger and metacarpals their child's.
    """
    data = model.data
    roles, parents = data.joint_roles, data.parents
    joints = model().joints[0].detach().numpy()
    fingers = [0 if role.startswith("thumb") else -1 for role in roles]
    thumb_base = joints[roles.index("thumb_cmc")]
    mcps = [c for c, role in enumerate(roles) if role == "mcp"]
    for finger, c in enumerate(sorted(mcps, key=lambda c: np.linalg.norm(joints[c] - thumb_base)), start=1):
        fingers[c] = finger
    for c in range(len(roles)):  # parents come before children
        if fingers[c] == -1 and parents[c] >= 0 and roles[c] in ("pip", "dip"):
            fingers[c] = fingers[parents[c]]
    for c, role in enumerate(roles):
        if role == "mcp" and roles[parents[c]] == "metacarpal":
            fingers[parents[c]] = fingers[c]
    return fingers


def _joint_frames_and_limits(model: "HandModel") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model()
    joints = out.joints[0].double().numpy()
    kp = out.keypoints[0].double().numpy()
    parents, roles = model.data.parents, model.data.joint_roles
    fingers = _joint_fingers(model)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    def orth(v: np.ndarray, t: np.ndarray) -> np.ndarray:
        return unit(v - (v @ t) * t)

    side = 1.0 if model.side == "right" else -1.0
    palm = unit(np.cross(kp[5] - kp[0], kp[17] - kp[0])) * side  # points out of the palm
    across = kp[17] - kp[1]  # from the thumb's base towards the little finger
    across = unit(across - (across @ palm) * palm)
    middle_mcp = kp[FINGER_KEYPOINTS[2][0]]

    P = model.num_joints - 1
    axes = np.zeros((P, 3, 3))
    lower, upper = np.zeros((P, 3)), np.zeros((P, 3))
    for c in range(1, model.num_joints):
        role, finger = roles[c], fingers[c]
        children = np.flatnonzero(parents == c)
        if role == "wrist":
            t = unit(middle_mcp - joints[c])
        elif len(children) == 1:
            t = unit(joints[children[0]] - joints[c])
        else:  # last joint of a finger: towards its tip keypoint
            t = unit(kp[FINGER_KEYPOINTS[finger][3]] - joints[c])
        if role == "thumb_cmc":
            m = orth(across, t)
        elif role in ("thumb_mcp", "thumb_ip"):
            m = orth(palm + across, t)
        else:
            m = orth(palm, t)
        f = np.cross(t, m)  # rotating about f moves the bone towards m
        a = m.copy()
        # Rotating about a moves the bone towards a x t; point that away from the middle finger
        # (for the thumb's base: away from the palm plane, towards the palm side).
        if role == "thumb_cmc":
            away = palm
        elif role == "wrist":  # positive = radial deviation, towards the thumb
            away = kp[5] - kp[17]
        elif finger == 2:  # the middle finger's positive side is the index's
            away = kp[5] - middle_mcp
        else:
            away = kp[FINGER_KEYPOINTS[finger][0]] - middle_mcp
        if np.cross(a, t) @ away < 0:
            a = -a
        axes[c - 1] = np.stack([f, a, t])
        lim = np.radians(np.array(LIMITS_DEG.get(role, ((0, 0), (0, 0), (0, 0)))))
        lower[c - 1], upper[c - 1] = lim[:, 0], lim[:, 1]
    return axes, lower, upper
