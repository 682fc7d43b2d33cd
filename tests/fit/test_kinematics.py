"""The numba keypoint kernel against the torch hand model (two implementations, one answer)."""

import numpy as np
import torch

import harp_track as ht
from harp_track.fit.kinematics import KeypointKinematics, rotation_matrix
from harp_track.hand import axis_angle_to_matrix

from ..test_mano import make_mano_arrays, write_mano


def check(model, shape):
    g = torch.Generator().manual_seed(0)
    kin = KeypointKinematics(model, shape)
    angles = 0.4 * torch.randn(5, model.num_pose_joints, 3, generator=g, dtype=torch.float64)
    rotvec = torch.randn(5, 3, generator=g, dtype=torch.float64)
    rotation0 = axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64))
    transl = torch.randn(5, 3, generator=g, dtype=torch.float64)
    ours = kin(rotvec.numpy(), rotation0.numpy(), transl.numpy(), angles.numpy())
    R = axis_angle_to_matrix(rotvec) @ rotation0
    pose = model.anatomy.to_pose(angles, clamp=False)
    batch_shape = None if shape is None else shape.double().expand(5, -1)
    local = model.keypoints(pose=pose, shape=batch_shape) - torch.as_tensor(kin.root)
    expected = local @ R.transpose(1, 2) + transl[:, None]
    assert np.abs(ours - expected.numpy()).max() < 1e-6  # metres; float32-stored model data
    ids = np.random.default_rng(1).choice(model.num_vertices, 50, replace=False)
    vertices = kin.vertices(ids, rotvec.numpy(), rotation0.numpy(), transl.numpy(), angles.numpy())
    local = model(pose=pose, shape=batch_shape).vertices[:, ids] - torch.as_tensor(kin.root)
    expected = local @ R.transpose(1, 2) + transl[:, None]
    assert np.abs(vertices - expected.numpy()).max() < 1e-6


def test_open_model_any_shape():
    model = ht.load_hand_model()
    check(model, None)
    check(model, torch.randn(1, model.num_shape, generator=torch.Generator().manual_seed(4)))
    check(model.mirrored(), None)


def test_mano_with_pose_correctives(tmp_path, fake_chumpy):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano(path, make_mano_arrays(), fake_chumpy)
    model = ht.load_hand_model("mano", path=path)
    check(model, torch.randn(1, model.num_shape, generator=torch.Generator().manual_seed(5)))


def test_rotation_matrix_matches_torch():
    for rotvec in ([0.0, 0.0, 0.0], [1e-7, -2e-7, 0.0], [0.3, -1.2, 2.5], [3.1, 0.0, 0.1]):
        expected = axis_angle_to_matrix(torch.tensor(rotvec, dtype=torch.float64)).numpy()
        assert np.abs(rotation_matrix(np.array(rotvec)) - expected).max() < 1e-12
