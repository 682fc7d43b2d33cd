"""Place a hand model's 21 keypoints where MediaPipe puts its landmarks on that model's own renders.

MediaPipe's landmarks are not anatomical joint centres: its wrist sits near the wrist crease,
its thumb "CMC" part-way up the thenar eminence. A fit that compares MediaPipe's landmarks with
joint centres is biased (tens of pixels at the wrist). So we render the model in many random
poses and views (our renderer, a plain skin texture), run MediaPipe, and for each keypoint solve
for the point rigidly attached to its joint whose projections best match MediaPipe's landmarks:
linear least squares on the distance from the posed point to each landmark's viewing ray. The
point is then written into the keypoint regressor as an affine combination of the joint and a few
vertices bound to it, so it follows the shape as well as the pose.

    python -m harp_track.hand.calibrate_keypoints models/anny_hand_right.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..keypoints import NUM_KEYPOINTS
from .data import HandModelData
from .model import HandModel
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle, palm_to_camera


def _anchor_joints(data: HandModelData) -> np.ndarray:
    """(21,) the joint each keypoint is attached to: the joint it reads most (tips: the joint that
    drives their vertex most)."""
    J = data.num_joints
    reg = data.keypoint_regressor
    anchors = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
    for k in range(NUM_KEYPOINTS):
        joint_part = np.abs(reg[k, :J])
        if joint_part.max() > 0.5:
            anchors[k] = int(joint_part.argmax())
        else:
            anchors[k] = int((np.abs(reg[k, J:]) @ data.skin_weights).argmax())
    return anchors


def render_mediapipe_views(model: HandModel, num_views: int, size: int = 384, seed: int = 0):
    """Random poses and views rendered and run through MediaPipe (static images).

    Returns the posed skinning transforms (N, J, 3, 4) of the detected views and MediaPipe's
    landmarks as unit viewing rays (N, 21, 3), plus the camera.
    """
    import mediapipe as mp

    from ..render import Light, RenderMesh, projection_from_intrinsics, render_shaded, select_backend
    from ..synthetic import skin_texture
    from ..visualize import to_uint8

    g = torch.Generator().manual_seed(seed)
    camera = Camera(1.4 * size, 1.4 * size, size / 2, size / 2)
    backend = select_backend(device="cpu")
    mesh = RenderMesh.create(model.faces, model.uvs, model.faces_uv, backend)
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, (size, size))
    albedo = skin_texture(seed=seed)
    background = torch.full((1, size, size, 3), 0.35)
    a = model.anatomy
    fixed = [j for j, role in enumerate(a.roles) if role in ("wrist", "metacarpal")]
    transforms, rays = [], []
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1) as hands, \
            torch.no_grad():
        for i in range(num_views):
            angles = a.lower + (a.upper - a.lower) * torch.rand(a.lower.shape, generator=g)
            angles = a.clamp(angles * (0.3 + 0.4 * torch.rand(1, generator=g)))
            angles[fixed] = 0.0
            turn = axis_angle_to_matrix(0.6 * torch.randn(3, generator=g))
            if i % 2:  # every other view shows the back of the hand
                turn = turn @ axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0]))
            orient = matrix_to_axis_angle(turn @ palm_to_camera())[None]
            out = model(global_orient=orient, pose=a.to_pose(angles[None]))
            shift = torch.tensor([0.0, 0.0, 0.5]) - out.keypoints[0].mean(0)
            image = render_shaded(out.vertices + shift, mesh, projection, (size, size), Light(torch.tensor([[-0.2, -0.3, 0.0]])),
                                  albedo=albedo, background=background, backend=backend).image[0]
            found = hands.process(to_uint8(image))
            if not found.multi_hand_landmarks:
                continue
            uv = np.array([[p.x * size, p.y * size] for p in found.multi_hand_landmarks[0].landmark])
            world = out.joint_transforms[0].clone()
            world[:, :3, 3] += shift
            transforms.append(world[:, :3].numpy())
            ray = np.concatenate([(uv - [camera.cx, camera.cy]) / [camera.fx, camera.fy], np.ones((21, 1))], 1)
            rays.append(ray / np.linalg.norm(ray, axis=1, keepdims=True))
    return np.array(transforms), np.array(rays), camera


def solve_keypoints(data: HandModelData, transforms: np.ndarray, rays: np.ndarray,
                    prior_weight: float = 0.05) -> np.ndarray:
    """(21, 3) bind-space points, one per keypoint, from posed joint frames (N, J, 3, 4) and unit
    rays (N, 21, 3); a weak prior keeps each point near its current place where views disagree."""
    anchors = _anchor_joints(data)
    current = _bind_space_keypoints(data)
    points = np.zeros((NUM_KEYPOINTS, 3))
    for k in range(NUM_KEYPOINTS):
        j = anchors[k]
        # Posed point x = G B (p - h) + w: linear in p. Residual (I - r r^T) x.
        G = transforms[:, j, :, :3] @ data.bind_rotations[j]
        b = transforms[:, j, :, 3] - G @ data.bind_joints[j]
        P = np.eye(3) - rays[:, k, :, None] * rays[:, k, None, :]
        A = (P @ G).reshape(-1, 3)
        rhs = -(P @ b[..., None]).reshape(-1)
        A = np.concatenate([A, prior_weight * np.eye(3)])
        rhs = np.concatenate([rhs, prior_weight * current[k]])
        points[k] = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return points


def _bind_space_keypoints(data: HandModelData) -> np.ndarray:
    """The keypoints of the rest (bind) mesh and joints, (21, 3)."""
    return data.keypoint_regressor @ np.concatenate([data.bind_joints, data.vertices])


def regressor_for_points(data: HandModelData, points: np.ndarray, neighbours: int = 8) -> np.ndarray:
    """(21, J + V) rows that reproduce `points` at the bind pose: the anchor joint plus an affine
    correction from the nearest vertices it drives most, minimal in norm."""
    anchors = _anchor_joints(data)
    J = data.num_joints
    regressor = np.zeros((NUM_KEYPOINTS, J + data.num_vertices), dtype=np.float64)
    for k, (j, p) in enumerate(zip(anchors, points)):
        # Vertices the joint drives most (some joints, like the wrist, drive none exclusively).
        bound = np.argsort(-data.skin_weights[:, j])[:60]
        bound = bound[data.skin_weights[bound, j] >= 0.5 * data.skin_weights[bound[0], j]]
        near = bound[np.argsort(np.linalg.norm(data.vertices[bound] - p, axis=1))[:neighbours]]
        # p = h_j + sum_i beta_i (v_i - h_j): joint weight 1 - sum(beta), vertex weights beta.
        D = (data.vertices[near] - data.bind_joints[j]).T  # (3, n)
        beta = np.linalg.lstsq(D, p - data.bind_joints[j], rcond=None)[0]
        regressor[k, j] = 1.0 - beta.sum()
        regressor[k, J + near] = beta
    return regressor.astype(np.float32)


def calibrate(path: Path, num_views: int = 120, seed: int = 0) -> dict:
    """Rewrite the keypoint regressor of the model file at `path`; return a report."""
    data = HandModelData.load(path)
    model = HandModel(data)
    transforms, rays, camera = render_mediapipe_views(model, num_views, seed=seed)
    current = _bind_space_keypoints(data)
    points = solve_keypoints(data, transforms, rays)
    regressor = regressor_for_points(data, points)
    before = _ray_distance(data, current, transforms, rays)
    after = _ray_distance(data, points, transforms, rays)
    moved = np.linalg.norm(points - current, axis=1)
    dataclasses.replace(data, keypoint_regressor=regressor).save(path)
    return {"views": len(transforms), "mean ray distance before mm": 1000 * before.mean(),
            "after mm": 1000 * after.mean(), "moved mm per keypoint": np.round(1000 * moved, 1).tolist()}


def _ray_distance(data: HandModelData, points: np.ndarray, transforms: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """(N, 21) distance (m) from each keypoint, rigidly attached to its joint, to its viewing ray."""
    anchors = _anchor_joints(data)
    G = transforms[:, anchors, :, :3] @ data.bind_rotations[anchors]  # (N, 21, 3, 3)
    x = (G @ (points - data.bind_joints[anchors])[..., None])[..., 0] + transforms[:, anchors][..., 3]
    along = (x * rays).sum(-1, keepdims=True)
    return np.linalg.norm(x - along * rays, axis=-1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--views", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for key, value in calibrate(args.path, args.views, args.seed).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
