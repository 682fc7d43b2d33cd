"""Pose the open hand model in named gestures, render it shaded, and write a picture and meshes."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

import harp_track as ht
from harp_track.camera import Camera
from harp_track.hand.rotations import matrix_to_axis_angle, palm_to_camera
from harp_track.mesh_io import save_obj
from harp_track.render import Light, RenderMesh, projection_from_intrinsics, render_shaded, select_backend
from harp_track.visualize import draw_skeleton, to_uint8

GESTURES = ("flat", "fist", "point", "spread", "pinch")
SKIN_RGB = (0.80, 0.60, 0.50)


def facing_camera(tilt_deg: float = 20.0) -> torch.Tensor:
    """(1, 3) axis-angle: the palm towards the camera, fingers up, turned about the vertical axis
    so depth shows."""
    t = math.radians(tilt_deg)
    tilt = torch.tensor([[math.cos(t), 0.0, math.sin(t)], [0.0, 1.0, 0.0], [-math.sin(t), 0.0, math.cos(t)]])
    return matrix_to_axis_angle(tilt @ palm_to_camera())[None]


def render_gestures(out_dir: Path, size: int = 320, side: str = "right") -> Path:
    """Render each gesture at `size`² with its keypoints; write hand_poses.png and one OBJ each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    backend = select_backend(device="cpu")
    model = ht.load_hand_model(side=side)
    camera = Camera(fx=1.6 * size, fy=1.6 * size, cx=size / 2, cy=size / 2)
    mesh = RenderMesh.create(model.faces, model.uvs, model.faces_uv, backend)
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, (size, size))
    albedo = torch.tensor(SKIN_RGB).expand(1, 8, 8, 3).contiguous()
    light = Light(torch.tensor([[-0.25, -0.3, 0.0]]))
    background = torch.full((1, size, size, 3), 0.92)
    angles = torch.cat([model.anatomy.gesture(name) for name in GESTURES])
    orient = facing_camera().expand(len(GESTURES), 3)
    with torch.no_grad():
        posed = model(global_orient=orient, pose=model.anatomy.to_pose(angles))
        centre = posed.keypoints.mean(1, keepdim=True)
        # Centre each hand 0.5 m in front of the camera.
        shift = torch.tensor([0.0, 0.0, 0.5]) - centre
        vertices, keypoints = posed.vertices + shift, posed.keypoints + shift
        panels = []
        for i, name in enumerate(GESTURES):
            shaded = render_shaded(vertices[i:i + 1], mesh, projection, (size, size), light, albedo=albedo,
                                   background=background, backend=backend)
            panel = draw_skeleton(to_uint8(shaded.image[0]), camera.project(keypoints[i]).numpy())
            cv2.putText(panel, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2, cv2.LINE_AA)
            panels.append(panel)
            save_obj(out_dir / f"hand_{name}.obj", vertices[i].numpy(), model.faces.numpy(),
                     model.uvs.numpy(), model.faces_uv.numpy())
    picture = out_dir / "hand_poses.png"
    cv2.imwrite(str(picture), cv2.cvtColor(np.concatenate(panels, 1), cv2.COLOR_RGB2BGR))
    return picture
