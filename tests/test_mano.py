"""MANO files: a safe reader and the LBS layer against an independent plain-numpy MANO.

MANO itself may not be shipped, so each test writes a MANO-format pickle of random but
well-formed arrays, with chumpy objects and a scipy sparse regressor like the official files.
"""

import os
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

import harp_track as ht
from harp_track.hand import HandModelError

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
TIPS = (745, 317, 444, 556, 673)  # thumb, index, middle, ring, little
# MediaPipe keypoint -> MANO joint (the tips are vertices).
MP_TO_MANO = {0: 0, 1: 13, 2: 14, 3: 15, 5: 1, 6: 2, 7: 3, 9: 4, 10: 5, 11: 6, 13: 10, 14: 11, 15: 12,
              17: 7, 18: 8, 19: 9}


def hand_like_joints():
    """A right hand's 16 MANO joints: fingers along +y, the thumb on +z, palm facing -x."""
    joints = np.zeros((16, 3))
    for first, z in ((1, 0.022), (4, 0.0), (10, -0.02), (7, -0.038)):  # index, middle, ring, little
        joints[first:first + 3] = [[0, 0.09 + 0.03 * s, z] for s in range(3)]
    joints[13:16] = [[-0.01, 0.025 + 0.025 * s, 0.03 + 0.02 * s] for s in range(3)]
    return joints


def make_mano_arrays(seed=0):
    rng = np.random.default_rng(seed)
    V, J, K = 778, 16, 10
    owner = np.arange(V) % J
    joints = hand_like_joints()
    v_template = joints[owner] + rng.normal(0, 0.006, (V, 3))
    for vertex, distal in zip(TIPS, (15, 3, 6, 12, 9)):  # each tip 2 cm beyond its distal joint
        owner[vertex] = distal
        v_template[vertex] = joints[distal] + 0.02 * (joints[distal] - joints[distal - 1]) / np.linalg.norm(
            joints[distal] - joints[distal - 1])
    regressor = np.zeros((J, V))
    for j in range(J):
        regressor[j, owner == j] = 1.0 / (owner == j).sum()
    weights = np.zeros((V, J))
    mix = rng.dirichlet([2.0, 1.0], V)
    weights[np.arange(V), owner] = mix[:, 0]
    weights[np.arange(V), np.maximum(np.array(PARENTS)[owner], 0)] += mix[:, 1]
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(0, 1e-3, (V, 3, K)),
        "posedirs": rng.normal(0, 2e-3, (V, 3, 135)),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": np.array([[2 ** 32 - 1] + PARENTS[1:], list(range(J))], dtype=np.int64),
        "f": rng.integers(0, V, (1538, 3)).astype(np.uint32),
        "hands_components": rng.normal(size=(45, 45)),
        "hands_mean": rng.normal(size=45),
        "bs_style": "lbs",
    }


def write_mano(path, arrays, Ch):
    wrapped = dict(arrays)
    for key in ("shapedirs", "posedirs", "v_template"):
        wrapped[key] = Ch(arrays[key])
    with open(path, "wb") as fh:
        pickle.dump(wrapped, fh, protocol=2)


def numpy_mano(a, orient, pose, betas, transl):
    """MANO/SMPL linear blend skinning written out plainly, joint by joint."""
    v = a["v_template"] + a["shapedirs"] @ betas
    J = a["J_regressor"].toarray() @ v
    R = Rotation.from_rotvec(np.concatenate([orient[None], pose])).as_matrix()
    v = v + a["posedirs"] @ (R[1:] - np.eye(3)).reshape(-1)
    G = np.zeros((16, 4, 4))
    for i in range(16):
        local = np.eye(4)
        local[:3, :3] = R[i]
        local[:3, 3] = J[i] - (J[PARENTS[i]] if i else 0)
        G[i] = G[PARENTS[i]] @ local if i else local
    skin = G.copy()
    skin[:, :3, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], J)
    T = np.einsum("vj,jab->vab", a["weights"], skin)
    verts = np.einsum("vab,vb->va", T[:, :3, :3], v) + T[:, :3, 3] + transl
    joints = G[:, :3, 3] + transl
    keypoints = np.zeros((21, 3))
    for k, j in MP_TO_MANO.items():
        keypoints[k] = joints[j]
    for f, vertex in enumerate(TIPS):
        keypoints[4 * f + 4] = verts[vertex]
    return verts, keypoints


def test_mano_matches_plain_numpy(tmp_path, fake_chumpy):
    arrays = make_mano_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano(path, arrays, fake_chumpy)
    model = ht.load_hand_model("mano", path=path).double()
    assert (model.num_vertices, model.num_pose_joints, model.num_shape, model.side) == (778, 15, 10, "right")
    rng = np.random.default_rng(1)
    orient, pose = rng.normal(0, 0.5, 3), rng.normal(0, 0.5, (15, 3))
    betas, transl = rng.normal(0, 1, 10), rng.normal(0, 0.1, 3)
    out = model(global_orient=torch.tensor(orient[None]), pose=torch.tensor(pose[None]),
                shape=torch.tensor(betas[None]), transl=torch.tensor(transl[None]))
    verts, keypoints = numpy_mano(arrays, orient, pose, betas, transl)
    assert np.abs(out.vertices[0].numpy() - verts).max() < 1e-6
    assert np.abs(out.keypoints[0].numpy() - keypoints).max() < 1e-6


def test_mano_left_file_and_mirrored_model(tmp_path, fake_chumpy):
    arrays = make_mano_arrays(2)
    path = tmp_path / "MANO_LEFT.pkl"
    write_mano(path, arrays, fake_chumpy)
    assert ht.load_hand_model("mano", path=path, side="left").side == "left"
    as_right = ht.load_hand_model("mano", path=path, side="right")
    native = ht.load_hand_model("mano", path=path, side="left")
    assert torch.allclose(as_right().vertices, native().vertices * torch.tensor([-1.0, 1.0, 1.0]))


def test_flexion_curls_towards_the_palm_on_mano(tmp_path, fake_chumpy):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano(path, make_mano_arrays(), fake_chumpy)
    model = ht.load_hand_model("mano", path=path)
    anatomy = model.anatomy
    bent = torch.zeros(1, model.num_pose_joints, 3)
    bent[0, [i for i, role in enumerate(anatomy.roles) if role == "mcp"], 0] = 1.0
    bent = model(pose=anatomy.to_pose(bent)).keypoints[0]
    fist = model(pose=anatomy.to_pose(anatomy.gesture("fist"))).keypoints[0]
    flat = model().keypoints[0]
    for tip in (8, 12, 16, 20):
        assert bent[tip, 0] < flat[tip, 0] - 0.03  # the palm faces -x
        assert (fist[tip] - fist[0]).norm() < 0.8 * (flat[tip] - flat[0]).norm()


def test_hostile_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(HandModelError, match="refusing to load"):
        ht.load_hand_model("mano", path=path)
    assert not marker.exists()


def test_broken_mano_files(tmp_path, fake_chumpy):
    with pytest.raises(HandModelError, match="not found"):
        ht.load_hand_model("mano", path=tmp_path / "MANO_RIGHT.pkl")
    with pytest.raises(HandModelError, match="not bundled"):
        ht.load_hand_model("mano")
    truncated = tmp_path / "MANO_RIGHT.pkl"
    write_mano(truncated, make_mano_arrays(), fake_chumpy)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(HandModelError, match="not a readable MANO pickle"):
        ht.load_hand_model("mano", path=truncated)
    arrays = make_mano_arrays()
    del arrays["posedirs"]
    write_mano_missing = tmp_path / "MANO_LEFT.pkl"
    with open(write_mano_missing, "wb") as fh:
        pickle.dump(arrays, fh, protocol=2)
    with pytest.raises(HandModelError, match=r"missing MANO arrays \['posedirs'\]"):
        ht.load_hand_model("mano", path=write_mano_missing)
    unnamed = tmp_path / "hand.pkl"
    write_mano(unnamed, make_mano_arrays(), fake_chumpy)
    with pytest.raises(HandModelError, match="cannot tell the hand side"):
        ht.load_hand_model("mano", path=unnamed)
