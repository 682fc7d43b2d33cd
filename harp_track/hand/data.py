"""The arrays that define a hand model, independent of where they came from.

Every hand model (the baked open default, a user's MANO file) is reduced to one `HandModelData`
and evaluated by the one LBS layer in `model.py`. The skinning is glTF's: each joint c has a
world transform `[G_c | w_c]` and an inverse bind matrix `[B_c | -B_c h_c]`, so a vertex v
bound to it moves to `G_c B_c (v - h_c) + w_c`. MANO is the special case `B_c = I`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..keypoints import NUM_KEYPOINTS

FORMAT_VERSION = 1
SIDES = ("right", "left")
# Joint roles drive the anatomical pose space (axes and limits): see anatomy.py.
ROLES = ("root", "wrist", "metacarpal", "mcp", "pip", "dip", "thumb_cmc", "thumb_mcp", "thumb_ip")


def other_side(side: str) -> str:
    """"left" for "right" and the reverse; ValueError for anything else."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return SIDES[1 - SIDES.index(side)]


class HandModelError(ValueError):
    """A hand model file or array set is missing, malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class HandModelData:
    """A hand model as plain numpy arrays (metres). V vertices, J joints, K shape components.

    vertices (V, 3): bind-space template at shape 0. vertex_shape_basis (K, V, 3): per unit shape
    coefficient. bind_joints (J, 3) + bind_joint_shape_basis (K, J, 3): the joint centres h_c in
    bind space. joint_offsets (J, 3) + joint_offset_shape_basis (K, J, 3): at the zero pose, each
    joint's position relative to its parent (the root's: relative to the origin).
    bind_rotations (J, 3, 3): B_c. skin_weights (V, J), rows sum to 1. pose_basis (9 (J-1), V, 3):
    pose correctives over the flattened (R_c - I) of joints 1..J-1 (empty when the model has
    none). keypoint_regressor (21, J + V): MediaPipe keypoints as a linear map of the posed joints
    followed by the posed vertices. uvs (T, 2) and faces_uv (F, 3) may be empty.
    """

    name: str
    side: str
    joint_names: tuple[str, ...]
    joint_roles: tuple[str, ...]
    parents: np.ndarray
    faces: np.ndarray
    vertices: np.ndarray
    vertex_shape_basis: np.ndarray
    bind_joints: np.ndarray
    bind_joint_shape_basis: np.ndarray
    joint_offsets: np.ndarray
    joint_offset_shape_basis: np.ndarray
    bind_rotations: np.ndarray
    skin_weights: np.ndarray
    pose_basis: np.ndarray
    keypoint_regressor: np.ndarray
    uvs: np.ndarray
    faces_uv: np.ndarray

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def num_joints(self) -> int:
        return self.parents.shape[0]

    @property
    def num_shape(self) -> int:
        return self.vertex_shape_basis.shape[0]

    def mirrored(self) -> "HandModelData":
        """The other hand: x mirrored, faces re-wound so normals still point outwards.

        A mirrored model reads its pose in its own mirrored axes, so the same anatomical angles
        give the same gesture on either hand.
        """
        m = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
        sign = m[:, None] * m[None, :]  # how (R - I) entries change under R -> M R M
        p = self.pose_basis
        pose_basis = (p.reshape(-1, 3, 3, *p.shape[1:]) * sign[None, :, :, None, None]).reshape(p.shape) * m
        return dataclasses.replace(
            self,
            side="left" if self.side == "right" else "right",
            faces=self.faces[:, ::-1].copy(),
            faces_uv=self.faces_uv[:, ::-1].copy(),
            vertices=self.vertices * m,
            vertex_shape_basis=self.vertex_shape_basis * m,
            bind_joints=self.bind_joints * m,
            bind_joint_shape_basis=self.bind_joint_shape_basis * m,
            joint_offsets=self.joint_offsets * m,
            joint_offset_shape_basis=self.joint_offset_shape_basis * m,
            bind_rotations=self.bind_rotations * sign,
            pose_basis=pose_basis.astype(np.float32),
        )

    def save(self, path: str | Path) -> None:
        """Write a compact `.npz` (no pickles: `load` refuses object arrays)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        arrays["joint_names"] = np.array(self.joint_names)
        arrays["joint_roles"] = np.array(self.joint_roles)
        arrays["name"] = np.array(self.name)
        arrays["side"] = np.array(self.side)
        arrays["format_version"] = np.array(FORMAT_VERSION)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "HandModelData":
        """Read a file written by `save`; a missing, foreign or corrupt file raises HandModelError."""
        path = Path(path)
        if not path.is_file():
            raise HandModelError(f"hand model file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile, pickle-refusal and format errors all mean "not our file"
            raise HandModelError(f"{path} is not a readable hand model .npz: {exc}") from exc
        version = int(raw.pop("format_version", -1))
        if version != FORMAT_VERSION:
            raise HandModelError(f"{path}: hand model format version {version}, this SDK reads {FORMAT_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - raw.keys())
        if missing:
            raise HandModelError(f"{path}: missing arrays {missing}")
        kwargs: dict[str, Any] = {k: raw[k] for k in fields}
        kwargs["name"] = str(raw["name"])
        kwargs["side"] = str(raw["side"])
        kwargs["joint_names"] = tuple(str(s) for s in raw["joint_names"])
        kwargs["joint_roles"] = tuple(str(s) for s in raw["joint_roles"])
        try:
            return cls(**kwargs)
        except HandModelError as exc:
            raise HandModelError(f"{path}: {exc}") from None


def _validate(d: HandModelData) -> None:
    if d.side not in SIDES:
        raise HandModelError(f"side must be one of {SIDES}, got {d.side!r}")
    for name in ("vertices", "vertex_shape_basis", "bind_joints", "bind_joint_shape_basis", "joint_offsets",
                 "joint_offset_shape_basis", "bind_rotations", "skin_weights", "pose_basis",
                 "keypoint_regressor", "uvs"):
        a = getattr(d, name)
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            raise HandModelError(f"{name} must be a float array, got {type(a).__name__} {getattr(a, 'dtype', '')}")
        if not np.isfinite(a).all():
            raise HandModelError(f"{name} holds NaN or infinite values")
    for name in ("parents", "faces", "faces_uv"):
        if getattr(d, name).dtype.kind not in "iu":
            raise HandModelError(f"{name} must be an integer array")

    V, J, K = d.vertices.shape[0], d.parents.shape[0], d.vertex_shape_basis.shape[0]
    expected = {
        "vertices": (V, 3), "vertex_shape_basis": (K, V, 3), "bind_joints": (J, 3),
        "bind_joint_shape_basis": (K, J, 3), "joint_offsets": (J, 3), "joint_offset_shape_basis": (K, J, 3),
        "bind_rotations": (J, 3, 3), "skin_weights": (V, J), "parents": (J,),
        "keypoint_regressor": (NUM_KEYPOINTS, J + V),
    }
    for name, shape in expected.items():
        if getattr(d, name).shape != shape:
            raise HandModelError(f"{name} has shape {getattr(d, name).shape}, expected {shape}")
    if d.pose_basis.shape not in ((0, V, 3), (9 * (J - 1), V, 3)):
        raise HandModelError(f"pose_basis has shape {d.pose_basis.shape}, expected (0 or {9 * (J - 1)}, {V}, 3)")
    if d.faces.ndim != 2 or d.faces.shape[1] != 3 or d.faces.min() < 0 or d.faces.max() >= V:
        raise HandModelError(f"faces must be (F, 3) indices into {V} vertices")
    if d.uvs.size:
        if d.uvs.ndim != 2 or d.uvs.shape[1] != 2 or d.faces_uv.shape != d.faces.shape:
            raise HandModelError("uvs must be (T, 2) with faces_uv (F, 3) matching faces")
        if d.faces_uv.min() < 0 or d.faces_uv.max() >= len(d.uvs):
            raise HandModelError("faces_uv indexes outside uvs")
    if d.parents[0] != -1 or any(not (0 <= d.parents[c] < c) for c in range(1, J)):
        raise HandModelError("parents must start with -1 (root) and list every parent before its child")
    if len(d.joint_names) != J or len(d.joint_roles) != J:
        raise HandModelError(f"joint_names and joint_roles need {J} entries")
    unknown = set(d.joint_roles) - set(ROLES)
    if unknown:
        raise HandModelError(f"unknown joint roles {sorted(unknown)}; known: {ROLES}")
    if not np.allclose(d.skin_weights.sum(1), 1.0, atol=1e-3) or d.skin_weights.min() < -1e-6:
        raise HandModelError("skin_weights rows must be non-negative and sum to 1")
    if not np.allclose(d.keypoint_regressor.sum(1), 1.0, atol=1e-3):
        raise HandModelError("keypoint_regressor rows must sum to 1 (affine combinations of points)")
    rtr = np.einsum("jab,jac->jbc", d.bind_rotations, d.bind_rotations)
    if not np.allclose(rtr, np.eye(3), atol=1e-4):
        raise HandModelError("bind_rotations must be rotation matrices")
