"""Synthetic hand clips with exact ground truth, rendered by our own renderer from our own model.

They serve as the demo's embedded default clip (no camera, no downloads), as test data and as
benchmark data: every frame comes with the true joints, keypoints and model parameters.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from tqdm import tqdm

from .camera import Camera
from .hand import HandModel, load_hand_model
from .hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle, palm_to_camera
from .render import Light, RenderMesh, projection_from_intrinsics, render_shaded, select_backend
from .visualize import to_uint8

# The gestures a clip moves through, in order (looping back to the first).
GESTURE_CYCLE = ("flat", "spread", "fist", "point", "pinch")
SKIN_TONES = {"light": (0.86, 0.67, 0.57), "medium": (0.76, 0.55, 0.42), "dark": (0.45, 0.30, 0.22)}


@dataclasses.dataclass
class SyntheticClip:
    """frames (N, H, W, 3) uint8 RGB; timestamps (N,) seconds; the camera; ground truth per frame:
    joints (N, 21, 3) metres camera space (MediaPipe order), keypoints_2d (N, 21, 2) pixels,
    vertices (N, V, 3), and the model inputs global_orient (N, 3), pose (N, P, 3), transl (N, 3)."""

    frames: np.ndarray
    timestamps: np.ndarray
    camera: Camera
    side: str
    joints: np.ndarray
    keypoints_2d: np.ndarray
    vertices: np.ndarray
    global_orient: np.ndarray
    pose: np.ndarray
    transl: np.ndarray


def skin_texture(size: int = 256, tone: str = "medium", seed: int = 0) -> torch.Tensor:
    """(1, size, size, 3) albedo in [0, 1]: a skin tone with soft blotches, so the surface has
    texture to track without any pattern a detector could mistake for something else."""
    if tone not in SKIN_TONES:
        raise ValueError(f"tone must be one of {sorted(SKIN_TONES)}, got {tone!r}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, size // 16, size // 16, generator=g)
    noise = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0, 0]
    base = torch.tensor(SKIN_TONES[tone])
    return (base * (0.92 + 0.16 * noise[..., None])).clamp(0, 1)[None]


def pose_sequence(model: HandModel, num_frames: int, fps: float = 30.0, seed: int = 0,
                  depth: float = 0.45) -> dict[str, torch.Tensor]:
    """Smooth model inputs (N, ...) moving through GESTURE_CYCLE while the hand turns and drifts."""
    g = torch.Generator().manual_seed(seed)
    gestures = torch.cat([model.anatomy.gesture(name) for name in GESTURE_CYCLE + GESTURE_CYCLE[:1]])
    seconds_per_gesture = 1.2
    t = torch.arange(num_frames, dtype=torch.float32) / fps
    phase = (t / seconds_per_gesture) % (len(GESTURE_CYCLE))
    k = phase.floor().long()
    s = phase - k
    s = 0.5 - 0.5 * torch.cos(math.pi * s.clamp(0, 1))  # ease in and out
    angles = gestures[k] * (1 - s)[:, None, None] + gestures[k + 1] * s[:, None, None]
    jitter = 0.1 * torch.rand(3, generator=g)
    yaw = 0.6 * torch.sin(2 * math.pi * (0.23 + jitter[0]) * t)
    pitch = 0.35 * torch.sin(2 * math.pi * (0.17 + jitter[1]) * t + 1.0)
    roll = 0.3 * torch.sin(2 * math.pi * (0.11 + jitter[2]) * t + 2.0)
    turn = axis_angle_to_matrix(torch.stack([pitch, yaw, roll], 1))
    orient = matrix_to_axis_angle(turn @ palm_to_camera())
    transl = torch.stack([0.03 * torch.sin(2 * math.pi * 0.13 * t), 0.06 + 0.02 * torch.sin(2 * math.pi * 0.19 * t),
                          depth + 0.05 * torch.sin(2 * math.pi * 0.07 * t)], 1)
    return dict(global_orient=orient, pose=model.anatomy.to_pose(angles), transl=transl)


def make_clip(num_frames: int = 90, image_size: tuple[int, int] = (360, 640), fps: float = 30.0,
              side: str = "right", tone: str = "medium", seed: int = 0, model: HandModel | None = None,
              progress: bool = False) -> SyntheticClip:
    """Render a clip of the hand model moving through gestures, with its ground truth.

    image_size: (H, W) pixels. The camera has a 60-degree horizontal field of view; one point
    light sits above-left of the camera; self-shadowing is on. progress: show a progress bar.
    """
    model = model or load_hand_model(side=side)
    height, width = image_size
    camera = Camera.from_fov(width, height)
    camera = dataclasses.replace(camera, assumed=False)
    backend = select_backend(device="cpu")
    mesh = RenderMesh.create(model.faces, model.uvs, model.faces_uv, backend)
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, image_size)
    albedo = skin_texture(tone=tone, seed=seed)
    light = Light(torch.tensor([[-0.25, -0.35, 0.05]]))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    background = torch.stack([0.30 + 0.25 * xx, 0.33 + 0.15 * yy, 0.38 - 0.1 * xx], -1)[None]
    inputs = pose_sequence(model, num_frames, fps, seed)
    frames, vertices, joints = [], [], []
    with torch.no_grad():
        for i in tqdm(range(num_frames), desc="rendering the clip", unit="frame", disable=not progress):
            out = model(**{k: v[i:i + 1] for k, v in inputs.items()})
            shaded = render_shaded(out.vertices, mesh, projection, image_size, light, albedo=albedo,
                                   background=background, backend=backend)
            frames.append(to_uint8(shaded.image[0]))
            vertices.append(out.vertices[0])
            joints.append(out.keypoints[0])
    joints_t = torch.stack(joints)
    return SyntheticClip(
        frames=np.stack(frames), timestamps=np.arange(num_frames) / fps, camera=camera, side=side,
        joints=joints_t.numpy(), keypoints_2d=camera.project(joints_t).numpy(),
        vertices=torch.stack(vertices).numpy(), global_orient=inputs["global_orient"].numpy(),
        pose=inputs["pose"].numpy(), transl=inputs["transl"].numpy())
