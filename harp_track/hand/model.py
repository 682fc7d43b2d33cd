"""One linear-blend-skinning layer that evaluates any `HandModelData` (batched, differentiable)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from .anatomy import AnatomicalPose
from .data import HandModelData, HandModelError
from .rotations import axis_angle_to_matrix


@dataclasses.dataclass
class HandOutput:
    """A posed hand. All positions in metres, in the frame of `global_orient` and `transl`.

    vertices (B, V, 3); keypoints (B, 21, 3) in MediaPipe order; joints (B, J, 3) the model's own
    joint centres; joint_transforms (B, J, 4, 4) each joint's posed frame [G_c | w_c] (rotation
    from the model's zero-pose axes, position of the joint centre).
    """

    vertices: torch.Tensor
    keypoints: torch.Tensor
    joints: torch.Tensor
    joint_transforms: torch.Tensor


class HandModel(nn.Module):
    """A parametric hand: pose and shape in, posed mesh and keypoints out.

    Call it with any of `global_orient (B, 3)` axis-angle of the root, `pose (B, num_pose_joints, 3)`
    local axis-angle of joints 1..J-1 (parent order, in the model's zero-pose axes),
    `shape (B, num_shape)` and `transl (B, 3)` metres; missing ones are zeros. Float32 unless the
    inputs say otherwise; the batch size is taken from whichever input has one.
    """

    def __init__(self, data: HandModelData):
        super().__init__()
        self.data = data
        self.name = data.name
        self.side = data.side
        self.joint_names = data.joint_names

        def buf(name: str, array: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype), persistent=False)

        buf("faces", data.faces, torch.int64)
        buf("faces_uv", data.faces_uv, torch.int64)
        buf("uvs", data.uvs)
        buf("parents", data.parents, torch.int64)
        K, V, J = data.num_shape, data.num_vertices, data.num_joints
        # Vertices, bind joints and offsets share one shape blend: one matmul instead of three.
        buf("rest", np.concatenate([data.vertices, data.bind_joints, data.joint_offsets]).reshape(-1))
        buf("shape_basis", np.concatenate(
            [data.vertex_shape_basis, data.bind_joint_shape_basis, data.joint_offset_shape_basis], axis=1
        ).reshape(K, (V + 2 * J) * 3))
        buf("bind_rotations", data.bind_rotations)
        buf("homogeneous_row", np.array([0.0, 0.0, 0.0, 1.0]))
        buf("skin_weights", data.skin_weights)
        buf("pose_basis", data.pose_basis.reshape(len(data.pose_basis), V * 3))
        # Forward kinematics one tree level at a time (a handful of batched matmuls, not J): joints
        # are processed in level order, and each level gathers its parents from the level before.
        depth = np.zeros(J, dtype=np.int64)
        for c in range(1, J):
            depth[c] = depth[data.parents[c]] + 1
        order = np.argsort(depth, kind="stable")
        position = np.argsort(order)  # where each joint sits in level order
        self._level_bounds = [(int(np.searchsorted(depth[order], d)), int(np.searchsorted(depth[order], d, "right")))
                              for d in range(int(depth.max()) + 1)]
        buf("level_order", order, torch.int64)
        buf("level_position", position, torch.int64)
        buf("level_parent", position[np.maximum(data.parents[order], 0)]
            - np.array([self._level_bounds[max(d - 1, 0)][0] for d in depth[order]]), torch.int64)
        # Keypoints read joints and a few vertices (fingertips); gather those instead of all V.
        kp_vertices = np.flatnonzero(np.abs(data.keypoint_regressor[:, J:]).sum(0))
        buf("keypoint_vertices", kp_vertices, torch.int64)
        buf("keypoint_from_joints", data.keypoint_regressor[:, :J])
        buf("keypoint_from_vertices", data.keypoint_regressor[:, J + kp_vertices])
        self.anatomy = AnatomicalPose(self)

    @property
    def num_vertices(self) -> int:
        return self.data.num_vertices

    @property
    def num_joints(self) -> int:
        return self.data.num_joints

    @property
    def num_pose_joints(self) -> int:
        return self.data.num_joints - 1

    @property
    def num_shape(self) -> int:
        return self.data.num_shape

    def mirrored(self) -> "HandModel":
        """The same model for the other hand (x mirrored), on the same device."""
        return HandModel(self.data.mirrored()).to(self.rest.device)

    def forward(
        self,
        global_orient: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        vertex_offsets: torch.Tensor | None = None,
    ) -> HandOutput:
        """vertex_offsets: (B or 1, V, 3) metres added to the shaped bind-space mesh before skinning
        (an avatar's displacements while they are optimized); the skeleton ignores them."""
        verts, bind_joints, world = self._articulate(self._checked(global_orient, pose, shape, transl))
        if vertex_offsets is not None:
            if vertex_offsets.shape[-2:] != (self.num_vertices, 3) or vertex_offsets.ndim != 3:
                raise HandModelError(f"{self.name}: vertex_offsets must be (B, {self.num_vertices}, 3), "
                                     f"got {tuple(vertex_offsets.shape)}")
            verts = verts + vertex_offsets
        verts = self._skin(verts, bind_joints, world, self.skin_weights)
        joints = world[:, :, :3, 3]
        keypoints = (self.keypoint_from_joints.to(joints.dtype) @ joints
                     + self.keypoint_from_vertices.to(joints.dtype) @ verts[:, self.keypoint_vertices])
        return HandOutput(vertices=verts, keypoints=keypoints, joints=joints, joint_transforms=world)

    def keypoints(
        self,
        global_orient: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        validate: bool = True,
    ) -> torch.Tensor:
        """(B, 21, 3) keypoints only, skinning just the few vertices they read (fitting's fast path).

        validate=False skips the input checks, which `torch.func` transforms cannot trace.
        """
        inputs = (global_orient, pose, shape, transl)
        verts, bind_joints, world = self._articulate(self._checked(*inputs) if validate else inputs)
        verts = self._skin(verts[:, self.keypoint_vertices], bind_joints, world,
                           self.skin_weights[self.keypoint_vertices])
        joints = world[:, :, :3, 3]
        return self.keypoint_from_joints.to(joints.dtype) @ joints + self.keypoint_from_vertices.to(joints.dtype) @ verts

    def _checked(self, global_orient, pose, shape, transl) -> tuple:
        expected = {"global_orient": (3,), "pose": (self.num_joints - 1, 3), "shape": (self.num_shape,),
                    "transl": (3,)}
        given = {"global_orient": global_orient, "pose": pose, "shape": shape, "transl": transl}
        _check_inputs(given, expected, self.name)
        return global_orient, pose, shape, transl

    def _articulate(self, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shaped (and pose-corrected) bind vertices (B, V, 3), bind joints (B, J, 3) and the posed
        joint frames (B, J, 4, 4)."""
        global_orient, pose, shape, transl = inputs
        J, V = self.num_joints, self.num_vertices
        ref = next((t for t in inputs if t is not None), None)
        batch = ref.shape[0] if ref is not None else 1
        device = ref.device if ref is not None else self.rest.device
        dtype = ref.dtype if ref is not None else torch.float32
        # Buffers follow the input dtype so float64 gradient checks need no model conversion.
        rest = self.rest.to(dtype)
        shaped = rest + shape @ self.shape_basis.to(dtype) if shape is not None and self.num_shape else rest.expand(batch, -1)
        shaped = shaped.reshape(batch, V + 2 * J, 3)
        verts, bind_joints, offsets = shaped[:, :V], shaped[:, V:V + J], shaped[:, V + J:]

        zero3 = torch.zeros(1, 1, 3, dtype=dtype, device=device).expand(batch, 1, 3)
        rotvecs = torch.cat([global_orient[:, None] if global_orient is not None else zero3,
                             pose if pose is not None else zero3.expand(batch, J - 1, 3)], 1)
        rot = axis_angle_to_matrix(rotvecs)  # (B, J, 3, 3): the root's global rotation, then local ones
        if self.pose_basis.shape[0]:
            features = (rot[:, 1:] - torch.eye(3, dtype=dtype, device=device)).reshape(batch, -1)
            verts = verts + (features @ self.pose_basis.to(dtype)).reshape(batch, V, 3)

        # Local transforms [R_c | o_c], chained level by level: W_c = W_parent [R_c | o_c]; the
        # translation enters at the root and so reaches every joint and vertex.
        if transl is not None:
            offsets = torch.cat([offsets[:, :1] + transl[:, None], offsets[:, 1:]], 1)
        bottom = self.homogeneous_row.to(dtype).expand(batch, J, 1, 4)
        local = torch.cat([torch.cat([rot, offsets[..., None]], -1), bottom], -2)[:, self.level_order]
        first, last = self._level_bounds[0]
        levels = [local[:, first:last]]
        for (first, last) in self._level_bounds[1:]:
            levels.append(levels[-1][:, self.level_parent[first:last]] @ local[:, first:last])
        return verts, bind_joints, torch.cat(levels, 1)[:, self.level_position]

    def _skin(self, verts: torch.Tensor, bind_joints: torch.Tensor, world: torch.Tensor,
              weights: torch.Tensor) -> torch.Tensor:
        """Skinning transforms G_c B_c (v - h_c) + w_c, blended per vertex as one (n, J) @ (J, 12)."""
        batch, J, dtype = world.shape[0], world.shape[1], world.dtype
        skin_rot = world[:, :, :3, :3] @ self.bind_rotations.to(dtype)
        skin_t = world[:, :, :3, 3] - (skin_rot @ bind_joints[..., None])[..., 0]
        blend = weights.to(dtype) @ torch.cat([skin_rot.reshape(batch, J, 9), skin_t], -1)
        return (blend[..., :9].reshape(*verts.shape, 3) @ verts[..., None])[..., 0] + blend[..., 9:]


def _check_inputs(given: dict, expected: dict, model_name: str) -> None:
    """Check input shapes, dtypes, devices and values; raise with a message naming the problem."""
    batch, ref = None, None
    for name, value in given.items():
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.shape[1:] != expected[name] or value.ndim != len(expected[name]) + 1:
            raise HandModelError(f"{model_name}: {name} must have shape (B, {', '.join(map(str, expected[name]))}), "
                                 f"got {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
        if not math.isfinite(float(value.detach().sum())):  # one reduction: a NaN or inf spoils the sum
            raise HandModelError(f"{model_name}: {name} holds NaN or infinite values")
        if batch is None:
            batch, ref = value.shape[0], value
        elif value.shape[0] != batch:
            raise HandModelError(f"{model_name}: batch sizes differ ({name} has {value.shape[0]}, expected {batch})")
        elif value.dtype != ref.dtype or value.device != ref.device:
            raise TypeError(f"{name} is {value.dtype} on {value.device}, but other inputs are {ref.dtype} on {ref.device}")
