"""Keypoints of a hand model with a fixed shape, for many poses at once, as a numba kernel.

The landmark fit evaluates the 21 keypoints for ~30 perturbed poses per Levenberg-Marquardt step.
Through the general torch layer that costs ~2 ms of per-op overhead; this kernel does the same
arithmetic (forward kinematics, skinning of the few vertices the keypoints read, the keypoint
regressor) in tens of microseconds. `tests/fit/test_kinematics.py` checks it against the model.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..hand.model import HandModel


class KeypointKinematics:
    """Keypoints (N, 21, 3) from root rotations, translations and anatomical angles.

    The model's root joint is placed at `transl`: keypoints = R (k(pose) - root) + transl, where
    k(pose) are the model's keypoints at zero global rotation and translation.
    """

    def __init__(self, model: HandModel, shape: torch.Tensor | None = None):
        J, V = model.num_joints, model.num_vertices
        rest = model.rest.double()
        if shape is not None:
            rest = rest + shape.double()[0] @ model.shape_basis.double()
        rest = rest.reshape(-1, 3).numpy()
        self.parents = model.data.parents.astype(np.int64)
        self.offsets = rest[V + J:].copy()
        self.bind_joints = rest[V:V + J].copy()
        self.bind_rotations = model.data.bind_rotations.astype(np.float64)
        self.axes = model.anatomy.axes.double().numpy()
        # Every vertex's rest position, sparse skinning (each reads at most a handful of joints)
        # and pose correctives, once: a call for some vertices only indexes these.
        weights = model.data.skin_weights.astype(np.float64)
        order = np.argsort(-weights, axis=1)[:, :int((weights > 0).sum(1).max())]
        self._all_vertices = (np.ascontiguousarray(rest[:V]), np.ascontiguousarray(order),
                              np.ascontiguousarray(np.take_along_axis(weights, order, 1)),
                              np.ascontiguousarray(model.data.pose_basis.astype(np.float64)))  # (9 (J-1), V, 3)
        # Each keypoint reads one joint or a few vertices: the regressor's rows as (index, weight)
        # lists padded with zero weights, so the kernel skips the ~95% of its entries that are 0.
        self._regressor = _sparse_rows(model.keypoint_from_joints.double().numpy()) + \
            _sparse_rows(model.keypoint_from_vertices.double().numpy())
        self._keypoint_vertices = self._vertex_arrays(model.keypoint_vertices.numpy())
        self.root = self.offsets[0].copy()  # where the model puts its root joint

    def __call__(self, rotvec: np.ndarray, rotation0: np.ndarray, transl: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """rotvec (N, 3) applied before rotation0 (3, 3); transl (N, 3) metres; angles (N, P, 3)."""
        out = np.empty((len(rotvec), self._regressor[0].shape[0], 3))
        self._run(rotvec, rotation0, transl, angles, self._keypoint_vertices, False, out)
        return out

    def vertices(self, ids: np.ndarray | None, rotvec: np.ndarray, rotation0: np.ndarray, transl: np.ndarray,
                 angles: np.ndarray) -> np.ndarray:
        """The model's vertices `ids` (n,) (None: all) posed likewise: (N, n, 3) metres, placed as
        the keypoints."""
        arrays = self._all_vertices if ids is None else self._vertex_arrays(np.asarray(ids))
        out = np.empty((len(rotvec), len(arrays[0]), 3))
        self._run(rotvec, rotation0, transl, angles, arrays, True, out)
        return out

    def _vertex_arrays(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rest positions, sparse skinning and pose correctives of vertices `ids`."""
        rest, joints, weights, basis = self._all_vertices
        return (np.ascontiguousarray(rest[ids]), np.ascontiguousarray(joints[ids]), np.ascontiguousarray(weights[ids]),
                np.ascontiguousarray(basis[:, ids]))

    def _run(self, rotvec, rotation0, transl, angles, vertex_arrays, vertices_out: bool, out: np.ndarray) -> None:
        as64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        _keypoints(as64(rotvec), as64(rotation0), as64(transl), as64(angles), self.parents, self.offsets,
                   self.bind_joints, self.bind_rotations, self.axes, *vertex_arrays, *self._regressor,
                   vertices_out, out)


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis-angle, radians -> (3, 3) float64 rotation (the kernel's Rodrigues formula)."""
    out = np.empty((3, 3))
    _rodrigues(float(rotvec[0]), float(rotvec[1]), float(rotvec[2]), out)
    return out


def _sparse_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) matrix -> the columns (K, m) and values (K, m) of each row's nonzeros, zero-padded."""
    width = max(int((matrix != 0).sum(1).max()), 1)
    columns = np.zeros((matrix.shape[0], width), dtype=np.int64)
    values = np.zeros((matrix.shape[0], width))
    for k, row in enumerate(matrix):
        nonzero = np.flatnonzero(row)
        columns[k, :len(nonzero)], values[k, :len(nonzero)] = nonzero, row[nonzero]
    return columns, values


@numba.njit(cache=True)
def _rodrigues(r0, r1, r2, out):
    theta2 = r0 * r0 + r1 * r1 + r2 * r2
    if theta2 < 1e-12:
        a, b = 1.0 - theta2 / 6.0, 0.5 - theta2 / 24.0
    else:
        theta = np.sqrt(theta2)
        a, b = np.sin(theta) / theta, (1.0 - np.cos(theta)) / theta2
    out[0, 0] = 1.0 - b * (r1 * r1 + r2 * r2)
    out[0, 1] = -a * r2 + b * r0 * r1
    out[0, 2] = a * r1 + b * r0 * r2
    out[1, 0] = a * r2 + b * r0 * r1
    out[1, 1] = 1.0 - b * (r0 * r0 + r2 * r2)
    out[1, 2] = -a * r0 + b * r1 * r2
    out[2, 0] = -a * r1 + b * r0 * r2
    out[2, 1] = a * r0 + b * r1 * r2
    out[2, 2] = 1.0 - b * (r0 * r0 + r1 * r1)


@numba.njit(cache=True, inline="always")
def _matmul33(a, b, out):
    # Written out: numba sends `@` on tiny arrays to BLAS, whose call overhead dominates here.
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]


@numba.njit(cache=True)
def _keypoints(rotvec, rotation0, transl, angles, parents, offsets, bind_joints, bind_rotations, axes, vertices,
               skin_joints, skin_weights, pose_basis, joint_ids, joint_weights, vertex_ids, vertex_weights,
               vertices_out, out):
    n, J, K = rotvec.shape[0], parents.shape[0], joint_ids.shape[0]
    nv = vertices.shape[0]
    G = np.empty((J, 3, 3))
    w = np.empty((J, 3))
    local = np.empty((J, 3, 3))
    skin = np.empty((J, 3, 3))
    skin_t = np.empty((J, 3))
    posed = np.empty((nv, 3))
    turn = np.empty((3, 3))
    rest = np.empty(3)
    for b in range(n):
        _rodrigues(rotvec[b, 0], rotvec[b, 1], rotvec[b, 2], turn)
        _matmul33(turn, rotation0, G[0])
        w[0] = transl[b]
        for c in range(1, J):
            r0 = r1 = r2 = 0.0
            for k in range(3):
                a = angles[b, c - 1, k]
                r0 += a * axes[c - 1, k, 0]
                r1 += a * axes[c - 1, k, 1]
                r2 += a * axes[c - 1, k, 2]
            _rodrigues(r0, r1, r2, local[c])
            p = parents[c]
            _matmul33(G[p], local[c], G[c])
            for i in range(3):
                w[c, i] = w[p, i] + G[p, i, 0] * offsets[c, 0] + G[p, i, 1] * offsets[c, 1] + G[p, i, 2] * offsets[c, 2]
        for c in range(J):  # skinning transform: x -> skin x + skin_t
            _matmul33(G[c], bind_rotations[c], skin[c])
            for i in range(3):
                skin_t[c, i] = w[c, i] - (skin[c, i, 0] * bind_joints[c, 0] + skin[c, i, 1] * bind_joints[c, 1]
                                          + skin[c, i, 2] * bind_joints[c, 2])
        for v in range(nv):
            for i in range(3):
                rest[i] = vertices[v, i]
            if pose_basis.shape[0] > 0:
                for c in range(1, J):
                    for i in range(3):
                        for j in range(3):
                            f = local[c, i, j] - (1.0 if i == j else 0.0)
                            for d in range(3):
                                rest[d] += f * pose_basis[9 * (c - 1) + 3 * i + j, v, d]
            for i in range(3):
                posed[v, i] = 0.0
            for s in range(skin_joints.shape[1]):
                c = skin_joints[v, s]
                wt = skin_weights[v, s]
                if wt == 0.0:  # weights are sorted, zeros only pad
                    break
                for i in range(3):
                    posed[v, i] += wt * (skin[c, i, 0] * rest[0] + skin[c, i, 1] * rest[1] + skin[c, i, 2] * rest[2]
                                         + skin_t[c, i])
        if vertices_out:  # the vertices themselves, not the keypoints they make
            out[b] = posed
            continue
        for k in range(K):
            for i in range(3):
                acc = 0.0
                for s in range(joint_ids.shape[1]):
                    acc += joint_weights[k, s] * w[joint_ids[k, s], i]
                for s in range(vertex_ids.shape[1]):
                    acc += vertex_weights[k, s] * posed[vertex_ids[k, s], i]
                out[b, k, i] = acc
