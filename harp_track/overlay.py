"""Draw tracked hands over camera frames: the shaded hand mesh and the 21-keypoint skeleton."""

from __future__ import annotations

import numpy as np
import torch

from .avatar import Avatar
from .camera import Camera
from .hand import HandModel
from .render import Light, RenderMesh, material_mip, projection_from_intrinsics, render_shaded, select_backend
from .result import TrackingResult
from .visualize import draw_skeleton

MESH_RGB = (0.55, 0.75, 0.95)


class OverlayRenderer:
    """Renders each hand's mesh only inside its bounding box (a hand covers a small part of a
    frame), shaded by a light at the camera, and blends it over the frame: a plain blue mesh, or
    with `avatar` (whose models `models` must be) the user's textured avatar. `models` maps each
    reported handedness to the model that was fitted (`Tracker.models`)."""

    def __init__(self, models: dict[str, HandModel], opacity: float = 0.6, avatar: Avatar | None = None):
        self._backend = select_backend(device="cpu")
        self._meshes = {side: RenderMesh.create(m.faces, m.uvs, m.faces_uv, self._backend) for side, m in models.items()}
        plain = material_mip(torch.tensor(MESH_RGB).expand(1, 4, 4, 3).contiguous())
        self._materials = {side: plain for side in models}
        self._ambient = 0.35
        if avatar is not None:
            own = {side: avatar.for_side(m.side) for side, m in models.items()}
            self._materials = {side: material_mip(torch.from_numpy(a.albedo)[None], torch.from_numpy(a.normal_map)[None])
                               for side, a in own.items()}
            self._ambient = avatar.ambient
        self.opacity = opacity

    def draw(self, image_rgb: np.ndarray, result: TrackingResult, mesh: bool = True) -> np.ndarray:
        """A copy of the H x W x 3 uint8 frame with every tracked hand drawn on it."""
        out = image_rgb.copy()
        height, width = out.shape[:2]
        for hand in result.hands:
            if mesh:
                self._blend_mesh(out, hand.vertices, hand.handedness, result.camera, width, height)
            out = draw_skeleton(out, hand.keypoints_2d)
        return out

    def _blend_mesh(self, out: np.ndarray, vertices: np.ndarray, side: str, camera: Camera, width: int, height: int) -> None:
        verts = torch.as_tensor(vertices)[None]
        uv = camera.project(verts[0])
        x0, y0 = (uv.min(0).values - 4).floor().clamp(min=0).int().tolist()
        x1, y1 = (uv.max(0).values + 4).ceil().int().tolist()
        x1, y1 = min(x1, width), min(y1, height)
        if x1 - x0 < 2 or y1 - y0 < 2 or bool((verts[..., 2] <= 0.01).any()):
            return
        size = (y1 - y0, x1 - x0)
        projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx - x0, camera.cy - y0, size)
        with torch.no_grad():
            shaded = render_shaded(verts, self._meshes[side], projection, size, Light(torch.zeros(1, 3)),
                                   mip=self._materials[side], ambient=self._ambient, shadow=None, backend=self._backend)
        alpha = shaded.alpha[0].numpy() * self.opacity
        crop = out[y0:y1, x0:x1].astype(np.float32)
        blended = crop * (1 - alpha) + 255.0 * shaded.image[0].numpy() * alpha
        out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
