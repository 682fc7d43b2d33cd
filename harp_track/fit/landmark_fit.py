"""Fit the hand model to 21 landmarks: metric pose in camera space from 2D + MediaPipe world 3D.

The 2D landmarks and the intrinsics fix where the hand is in the image; MediaPipe's world
landmarks (metric, hand-centred, camera-aligned) fix its articulation and which way it faces;
the model's known size fixes the depth. We minimise, over the wrist rotation, the translation
and the free anatomical angles (clamped to their limits),

    sum_k |proj(x_k) - u_k|^2 / s2d^2  +  sum_k |(x_k - mean x) - c (w_k - mean w)|^2 / s3d^2  +  priors

with a few Levenberg-Marquardt steps. The Jacobian is taken by forward differences, all
perturbations in one batched call of the keypoints-only model: at ~30 unknowns that is an order
of magnitude faster than torch.func's forward-mode autodiff, and float64 keeps it accurate. `c` rescales MediaPipe's world hand (drawn at a typical size) to the
model's, so the 3D term constrains shape of the pose, not size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..camera import Camera
from ..hand.model import HandModel
from ..hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..keypoints import KEYPOINT_PARENTS

# Keypoints on the palm move little with finger articulation: they start the rotation estimate.
PALM_KEYPOINTS = (0, 1, 5, 9, 13, 17)
# Degrees of freedom the fit leaves out: the wrist duplicates the global rotation as far as the
# 21 landmarks can tell, and the metacarpals barely move.
FIXED_ROLES = ("wrist", "metacarpal")
MIN_RANGE_RAD = np.radians(10.0)


@dataclasses.dataclass
class FitWeights:
    """Residual scales. sigma_2d is a fraction of the hand's size in the image (so the balance does
    not depend on how close the hand is); sigma_3d in metres; priors in radians."""

    sigma_2d: float = 0.015
    sigma_3d: float = 0.012
    sigma_pose_prior: float = 1.2
    sigma_temporal: float = 0.35


@dataclasses.dataclass
class HandFit:
    """A fitted hand. rotation (3, 3) and transl (3,) place the model's root frame in camera
    space; angles (P, 3) anatomical radians; keypoints (21, 3) metres, camera space;
    reprojection_px: mean 2D distance to the landmarks."""

    rotation: torch.Tensor
    transl: torch.Tensor
    angles: torch.Tensor
    keypoints: torch.Tensor
    reprojection_px: float
    iterations: int


class LandmarkFitter:
    """Fits one hand model (one side, one shape) to landmarks, frame after frame.

    shape: (1, K) the user's shape (from an avatar) or None for the model's mean hand.
    """

    def __init__(self, model: HandModel, shape: torch.Tensor | None = None,
                 weights: FitWeights | None = None, iterations: int = 4, init_iterations: int = 12,
                 restart_fraction: float = 0.03):
        self.model = model
        self.restart_fraction = restart_fraction  # of the hand's image size, in mean reprojection error
        self.shape = shape
        self.weights = weights or FitWeights()
        self.iterations, self.init_iterations = iterations, init_iterations
        anatomy = model.anatomy
        free = [(j, k) for j, role in enumerate(anatomy.roles) for k in range(3)
                if role not in FIXED_ROLES and float(anatomy.upper[j, k] - anatomy.lower[j, k]) >= MIN_RANGE_RAD]
        self._free = torch.tensor(free, dtype=torch.int64)
        with torch.no_grad():
            rest = model.keypoints(shape=shape)[0]
        self._root = (model(shape=shape) if shape is not None else model()).joints[0, 0].detach()
        bones = [(k, p) for k, p in enumerate(KEYPOINT_PARENTS) if p >= 0]
        self._bones = torch.tensor(bones, dtype=torch.int64)
        # Bone lengths barely change with pose (the fingertip bones a little): a pose-free size.
        self._size = (rest[self._bones[:, 0]] - rest[self._bones[:, 1]]).norm(dim=-1).sum()

    @property
    def num_free(self) -> int:
        return len(self._free)

    def model_inputs(self, fit: HandFit) -> dict[str, torch.Tensor]:
        """Arguments for `model(...)` that reproduce a fit: (1, ...) global_orient, pose, shape, transl."""
        # The model turns about its root joint (the origin for the open model, not for MANO).
        return dict(global_orient=matrix_to_axis_angle(fit.rotation)[None],
                    pose=self.model.anatomy.to_pose(fit.angles[None]),
                    shape=self.shape, transl=(fit.transl - self._root)[None])

    def _keypoints(self, rotvec: torch.Tensor, rotation0: torch.Tensor, transl: torch.Tensor,
                   angles: torch.Tensor) -> torch.Tensor:
        """(N, 21, 3) camera-space keypoints for rotations exp(rotvec (N, 3)) @ rotation0,
        translations (N, 3) and anatomical angles (N, P, 3)."""
        pose = self.model.anatomy.to_pose(angles, clamp=False)
        shape = None if self.shape is None else self.shape.to(pose.dtype).expand(len(pose), -1)
        local = self.model.keypoints(pose=pose, shape=shape, validate=False) - self._root.to(pose.dtype)
        rotation = axis_angle_to_matrix(rotvec) @ rotation0
        return local @ rotation.transpose(1, 2) + transl[:, None]

    def fit(self, keypoints_2d: np.ndarray | torch.Tensor, world: np.ndarray | torch.Tensor | None,
            camera: Camera, previous: HandFit | None = None) -> HandFit:
        """Fit to (21, 2) pixel landmarks and (21, 3) MediaPipe world landmarks (metres; None to
        use 2D only, which needs `previous` for the articulation), warm-started from `previous`.

        A warm start that ends far from the landmarks (a fast motion, a flip) is retried from
        scratch and the better of the two kept, so one bad frame cannot derail the track.
        """
        fit = self._fit(keypoints_2d, world, camera, previous)
        if previous is None or world is None:
            return fit
        uv = np.asarray(keypoints_2d, dtype=np.float64)
        extent = float(np.linalg.norm(uv.max(0) - uv.min(0)))
        if fit.reprojection_px <= max(3.0, self.restart_fraction * extent):
            return fit
        fresh = self._fit(keypoints_2d, world, camera, None)
        return fresh if fresh.reprojection_px < fit.reprojection_px else fit

    def _fit(self, keypoints_2d: np.ndarray | torch.Tensor, world: np.ndarray | torch.Tensor | None,
             camera: Camera, previous: HandFit | None) -> HandFit:
        dtype = torch.float64
        uv = torch.as_tensor(keypoints_2d, dtype=dtype)
        world_t = torch.as_tensor(world, dtype=dtype) if world is not None else None
        if uv.shape != (21, 2) or (world_t is not None and world_t.shape != (21, 3)):
            raise ValueError(f"expected (21, 2) image and (21, 3) world landmarks, got {tuple(uv.shape)}"
                             f" and {None if world_t is None else tuple(world_t.shape)}")
        intrinsics = torch.tensor([camera.fx, camera.fy, camera.cx, camera.cy], dtype=dtype)
        extent = (uv.max(0).values - uv.min(0).values).norm().clamp_min(1.0)
        w = self.weights
        scale_2d = 1.0 / (w.sigma_2d * extent)
        if world_t is not None:
            world_size = (world_t[self._bones[:, 0]] - world_t[self._bones[:, 1]]).norm(dim=-1).sum()
            target_3d = (world_t - world_t.mean(0)) * (self._size.to(dtype) / world_size.clamp_min(1e-6))
        if previous is None:
            if world_t is None:
                raise ValueError("the first frame of a hand needs world landmarks to start from")
            angles0 = torch.zeros(self.model.anatomy.lower.shape, dtype=dtype)
            rotation0, transl0 = self._initial_placement(uv, target_3d, angles0, intrinsics)
            iterations = self.init_iterations
        else:
            angles0, rotation0, transl0 = (t.to(dtype) for t in (previous.angles, previous.rotation, previous.transl))
            iterations = self.iterations
        free = self._free
        previous_free = None if previous is None else angles0[free[:, 0], free[:, 1]]

        def residuals(x: torch.Tensor) -> torch.Tensor:
            """(N, D) parameter vectors -> (N, M) residuals."""
            angles = angles0.expand(len(x), -1, -1).clone()
            angles[:, free[:, 0], free[:, 1]] = x[:, 6:]
            kp = self._keypoints(x[:, :3], rotation0, x[:, 3:6], angles)
            proj = kp[..., :2] / kp[..., 2:3] * intrinsics[:2] + intrinsics[2:]
            parts = [((proj - uv) * scale_2d).flatten(1), x[:, 6:] / w.sigma_pose_prior]
            if world_t is not None:
                parts.append(((kp - kp.mean(1, keepdim=True)) - target_3d).flatten(1) / w.sigma_3d)
            if previous_free is not None:
                parts.append((x[:, 6:] - previous_free) / w.sigma_temporal)
            return torch.cat(parts, 1)

        x = torch.cat([torch.zeros(3, dtype=dtype), transl0, angles0[free[:, 0], free[:, 1]]])
        lower = self.model.anatomy.lower[free[:, 0], free[:, 1]].to(dtype)
        upper = self.model.anatomy.upper[free[:, 0], free[:, 1]].to(dtype)
        x, steps = _levenberg_marquardt(residuals, x, iterations, lower, upper)
        angles = angles0.clone()
        angles[free[:, 0], free[:, 1]] = x[6:]
        rotation = axis_angle_to_matrix(x[:3]) @ rotation0
        kp = self._keypoints(torch.zeros(1, 3, dtype=dtype), rotation, x[None, 3:6], angles[None])[0]
        proj = kp[:, :2] / kp[:, 2:3] * intrinsics[:2] + intrinsics[2:]
        f32 = torch.float32
        return HandFit(rotation=rotation.to(f32), transl=x[3:6].to(f32), angles=angles.to(f32),
                       keypoints=kp.to(f32), reprojection_px=float((proj - uv).norm(dim=-1).mean()),
                       iterations=steps)

    def _initial_placement(self, uv: torch.Tensor, target_3d: torch.Tensor, angles: torch.Tensor,
                           intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation by Kabsch on the palm keypoints against the world landmarks; translation by
        linear least squares on the reprojection of all keypoints given that rotation."""
        dtype = uv.dtype
        local = self._keypoints(torch.zeros(1, 3, dtype=dtype), torch.eye(3, dtype=dtype),
                                torch.zeros(1, 3, dtype=dtype), angles[None])[0]
        palm = list(PALM_KEYPOINTS)
        a = local[palm] - local[palm].mean(0)
        b = target_3d[palm] - target_3d[palm].mean(0)
        u, _, vt = torch.linalg.svd(b.T @ a)
        d = torch.sign(torch.det(u @ vt))
        rotation = u @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=u.dtype)) @ vt
        p = local @ rotation.T
        fx, fy, cx, cy = intrinsics
        ax, ay = (uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy
        # (u - cx) / fx * (Z + tz) = X + tx  ->  tx - ax tz = ax Z - X  (and likewise for y)
        zeros, ones = torch.zeros_like(ax), torch.ones_like(ax)
        A = torch.cat([torch.stack([ones, zeros, -ax], 1), torch.stack([zeros, ones, -ay], 1)])
        rhs = torch.cat([ax * p[:, 2] - p[:, 0], ay * p[:, 2] - p[:, 1]])
        transl = torch.linalg.lstsq(A, rhs[:, None]).solution[:, 0]
        return rotation, transl


def _levenberg_marquardt(residuals, x: torch.Tensor, iterations: int, lower: torch.Tensor,
                         upper: torch.Tensor, step: float = 1e-6) -> tuple[torch.Tensor, int]:
    """Minimise |residuals(x)|^2 over x (D,); x[6:] are clamped to [lower, upper] after every step."""
    eye = torch.eye(len(x), dtype=x.dtype)
    damping = 1e-3
    r = residuals(x[None])[0]
    cost = float(r @ r)
    steps = 0
    for steps in range(1, iterations + 1):
        J = ((residuals(x + step * eye) - r) / step).T  # (M, D), one batched evaluation
        JtJ, Jtr = J.T @ J, J.T @ r
        improved = False
        for _ in range(4):
            A = JtJ + damping * torch.diag(JtJ.diagonal() + 1e-6)
            candidate = x - torch.linalg.solve(A, Jtr)
            candidate = torch.cat([candidate[:6], torch.minimum(torch.maximum(candidate[6:], lower), upper)])
            r_new = residuals(candidate[None])[0]
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                improved = True
                damping = max(damping / 3.0, 1e-7)
                break
            damping *= 4.0
        if not improved:
            break
        converged = cost - cost_new < 1e-4 * cost
        x, r, cost = candidate, r_new, cost_new
        if converged:
            break
    return x, steps
