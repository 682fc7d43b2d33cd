"""New hand models made from existing ones: a subdivided mesh (room for displacements and
texture detail) and a personalized model with one user's shape and surface baked in."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..render.mesh import subdivide
from .data import HandModelData


def _midpoint_subdivide(data: HandModelData, per_vertex: np.ndarray) -> np.ndarray:
    """(..., V, C) per-vertex values -> (..., V + E, C): new vertices take their edge's mean, which
    keeps every linear quantity (positions, shape and pose bases, skin weights) consistent."""
    out, _, _, _ = subdivide(torch.from_numpy(np.ascontiguousarray(per_vertex, dtype=np.float64)),
                             torch.from_numpy(data.faces.astype(np.int64)))
    return out.numpy()


def subdivided(data: HandModelData, levels: int = 1) -> HandModelData:
    """The same hand on a mesh subdivided `levels` times (each triangle into 4; UV seams kept).

    The first V vertices stay the original ones, so the keypoint regressor only gains zero
    columns; skin weights, shape and pose bases of a new vertex are the mean of its edge's ends.
    """
    for _ in range(levels):
        V, J = data.num_vertices, data.num_joints
        vertices = _midpoint_subdivide(data, data.vertices)
        _, faces, uvs, faces_uv = subdivide(torch.from_numpy(data.vertices), torch.from_numpy(data.faces.astype(np.int64)),
                                            torch.from_numpy(data.uvs), torch.from_numpy(data.faces_uv.astype(np.int64)))
        weights = _midpoint_subdivide(data, data.skin_weights)
        regressor = np.zeros((data.keypoint_regressor.shape[0], J + len(vertices)), dtype=np.float32)
        regressor[:, :J + V] = data.keypoint_regressor
        data = dataclasses.replace(
            data,
            faces=faces.numpy().astype(np.int64),
            vertices=vertices.astype(np.float32),
            vertex_shape_basis=_midpoint_subdivide(data, data.vertex_shape_basis).astype(np.float32),
            skin_weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
            pose_basis=_midpoint_subdivide(data, data.pose_basis).astype(np.float32),
            keypoint_regressor=regressor,
            uvs=uvs.numpy().astype(np.float32),
            faces_uv=faces_uv.numpy().astype(np.int64),
        )
    return data


def personalized(data: HandModelData, shape: np.ndarray, vertex_offsets: np.ndarray | None = None,
                 name: str | None = None) -> HandModelData:
    """A model with no shape parameters: `shape` (K,) baked into the template and skeleton, and
    `vertex_offsets` (V, 3) metres (bind space, e.g. an avatar's displacements) added to the
    template. The skeleton does not move with the offsets: they are surface detail."""
    shape = np.asarray(shape, dtype=np.float64).reshape(-1)
    if shape.shape != (data.num_shape,):
        raise ValueError(f"shape must have {data.num_shape} values, got {shape.shape}")

    def blend(base: np.ndarray, basis: np.ndarray) -> np.ndarray:
        return (base + np.tensordot(shape, basis, axes=1)).astype(np.float32)

    vertices = blend(data.vertices, data.vertex_shape_basis)
    if vertex_offsets is not None:
        offsets = np.asarray(vertex_offsets, dtype=np.float32)
        if offsets.shape != vertices.shape:
            raise ValueError(f"vertex_offsets must be {vertices.shape}, got {offsets.shape}")
        vertices = vertices + offsets
    empty = np.zeros((0, data.num_vertices, 3), np.float32)
    empty_joints = np.zeros((0, data.num_joints, 3), np.float32)
    return dataclasses.replace(
        data, name=name or f"{data.name}-personalized", vertices=vertices, vertex_shape_basis=empty,
        bind_joints=blend(data.bind_joints, data.bind_joint_shape_basis), bind_joint_shape_basis=empty_joints,
        joint_offsets=blend(data.joint_offsets, data.joint_offset_shape_basis),
        joint_offset_shape_basis=empty_joints.copy())
