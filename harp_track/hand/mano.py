"""Read a user's own MANO file (`MANO_RIGHT.pkl` / `MANO_LEFT.pkl`) without chumpy, safely.

MANO is licensed for non-commercial research and may not be redistributed: the SDK never ships or
downloads it. The official pickles hold chumpy objects and scipy sparse matrices written by
Python 2. A plain `pickle.load` would import chumpy (unmaintained, broken on current numpy) and,
worse, would run whatever a hostile file names. The unpickler below admits only numpy arrays,
scipy sparse matrices and a stand-in for chumpy arrays; any other global is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..keypoints import FINGER_KEYPOINTS, NUM_KEYPOINTS
from .data import HandModelData, HandModelError

# MANO joints: 0 wrist, then index, middle, little, ring, thumb, three each (base to tip).
_MANO_FINGER_JOINTS = {0: (13, 14, 15), 1: (1, 2, 3), 2: (4, 5, 6), 3: (10, 11, 12), 4: (7, 8, 9)}
# Fingertip vertices (thumb, index, middle, ring, little), as in manotorch and most MANO code.
_MANO_TIP_VERTICES = (745, 317, 444, 556, 673)
_MANO_ROLES = ("root",) + ("mcp", "pip", "dip") * 4 + ("thumb_cmc", "thumb_mcp", "thumb_ip")
_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes through it
}
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix"}


class _ChumpyArray:
    """Stands in for any chumpy object; keeps the pickled state, from which we read its value."""

    def __setstate__(self, state):
        self.state = state


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyArray
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not an array type of a MANO file")


def _array(value, key: str, path: Path) -> np.ndarray:
    if isinstance(value, _ChumpyArray):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise HandModelError(f"{path}: {key} is a chumpy expression, not a stored array; cannot read it")
        value = state["x"]
    if hasattr(value, "toarray"):
        value = value.toarray()
    if not isinstance(value, np.ndarray):
        raise HandModelError(f"{path}: {key} is {type(value).__name__}, expected an array")
    return value


def read_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a MANO pickle as float64/int64 numpy arrays (keys as in the file)."""
    path = Path(path)
    if not path.is_file():
        raise HandModelError(f"MANO file not found: {path} (MANO cannot be shipped; download it from "
                             "https://mano.is.tue.mpg.de and pass its path)")
    try:
        with path.open("rb") as fh:
            raw = _SafeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, IndexError) as exc:
        raise HandModelError(f"{path} is not a readable MANO pickle: {exc}") from exc
    if not isinstance(raw, dict):
        raise HandModelError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise HandModelError(f"{path}: missing MANO arrays {missing}")
    return {k: _array(raw[k], k, path) for k in _REQUIRED}


def mano_model_data(path: str | Path, side: str | None = None) -> HandModelData:
    """HandModelData of a MANO pickle. `side` defaults to the one its file name says (LEFT/RIGHT)."""
    path = Path(path)
    if side is None:
        upper = path.name.upper()
        side = "left" if "LEFT" in upper else "right" if "RIGHT" in upper else None
        if side is None:
            raise HandModelError(f"cannot tell the hand side of {path.name}; pass side='right' or 'left'")
    a = read_mano_pickle(path)
    v = a["v_template"].astype(np.float64)
    V = v.shape[0]
    shapedirs = a["shapedirs"].astype(np.float64)
    posedirs = a["posedirs"].astype(np.float64)
    regressor = a["J_regressor"].astype(np.float64)
    weights = a["weights"].astype(np.float64)
    kintree = a["kintree_table"].astype(np.int64)
    J = kintree.shape[1]
    if v.shape != (V, 3) or shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3):
        raise HandModelError(f"{path}: v_template {v.shape} and shapedirs {shapedirs.shape} do not match")
    if posedirs.shape != (V, 3, 9 * (J - 1)) or regressor.shape != (J, V) or weights.shape != (V, J):
        raise HandModelError(f"{path}: posedirs {posedirs.shape}, J_regressor {regressor.shape} or weights "
                             f"{weights.shape} do not fit {V} vertices and {J} joints")
    if J != 16:
        raise HandModelError(f"{path}: MANO has 16 joints, this file has {J}")
    parents = kintree[0].copy()
    parents[0] = -1

    shape_basis = shapedirs.transpose(2, 0, 1)  # (K, V, 3)
    joints = regressor @ v
    joint_basis = np.einsum("jv,kvc->kjc", regressor, shape_basis)
    offsets, offset_basis = joints.copy(), joint_basis.copy()
    offsets[1:] -= joints[parents[1:]]
    offset_basis[:, 1:] -= joint_basis[:, parents[1:]]

    keypoints = np.zeros((NUM_KEYPOINTS, J + V))
    keypoints[0, 0] = 1.0
    for f, chain in _MANO_FINGER_JOINTS.items():
        for s, joint in enumerate(chain):
            keypoints[FINGER_KEYPOINTS[f][s], joint] = 1.0
        keypoints[FINGER_KEYPOINTS[f][3], J + _MANO_TIP_VERTICES[f]] = 1.0
    f32 = np.float32
    return HandModelData(
        name="mano",
        side=side,
        joint_names=tuple(f"mano_{i}" for i in range(J)),
        joint_roles=_MANO_ROLES,
        parents=parents,
        faces=a["f"].astype(np.int64),
        vertices=v.astype(f32),
        vertex_shape_basis=shape_basis.astype(f32),
        bind_joints=joints.astype(f32),
        bind_joint_shape_basis=joint_basis.astype(f32),
        joint_offsets=offsets.astype(f32),
        joint_offset_shape_basis=offset_basis.astype(f32),
        bind_rotations=np.tile(np.eye(3, dtype=f32), (J, 1, 1)),
        skin_weights=weights.astype(f32),
        pose_basis=posedirs.transpose(2, 0, 1).astype(f32),
        keypoint_regressor=keypoints.astype(f32),
        uvs=np.zeros((0, 2), dtype=f32),
        faces_uv=np.zeros((0, 3), dtype=np.int64),
    )
