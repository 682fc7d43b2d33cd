"""The LBS layer and the baked open hand model."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import harp_track as ht
from harp_track.hand import HandModelData, HandModelError, axis_angle_to_matrix, matrix_to_axis_angle


@pytest.fixture(scope="module")
def hand():
    return ht.load_hand_model()


def random_inputs(model, batch, dtype=torch.float32, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return dict(global_orient=scale * torch.randn(batch, 3, generator=g, dtype=dtype),
                pose=scale * torch.randn(batch, model.num_pose_joints, 3, generator=g, dtype=dtype),
                shape=torch.randn(batch, model.num_shape, generator=g, dtype=dtype),
                transl=0.1 * torch.randn(batch, 3, generator=g, dtype=dtype))


def test_rodrigues_matches_scipy_and_inverts():
    rotvec = torch.randn(100, 3, dtype=torch.float64)
    rotvec[:3] = torch.tensor([[0.0, 0, 0], [1e-6, 0, 0], [0, 0, -1e-9]])
    ours = axis_angle_to_matrix(rotvec)
    ref = torch.as_tensor(Rotation.from_rotvec(rotvec.numpy()).as_matrix())
    assert torch.allclose(ours, ref, atol=1e-12)
    rotvec = rotvec[(rotvec.norm(dim=1) < 3.0)]
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(rotvec)), rotvec, atol=1e-9)
    # Half turns (and just short of them): the skew part vanishes there.
    axes = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=1)
    for angle in (torch.pi, torch.pi - 1e-3, torch.pi - 0.05):
        back = axis_angle_to_matrix(matrix_to_axis_angle(axis_angle_to_matrix(axes * angle)))
        assert torch.allclose(back, axis_angle_to_matrix(axes * angle), atol=1e-6)


def test_default_model_contract(hand):
    assert (hand.num_vertices, hand.num_joints, hand.num_pose_joints, hand.num_shape) == (1609, 21, 20, 10)
    assert hand.faces.dtype == torch.int64 and hand.faces.shape == (3196, 3)
    assert hand.uvs.min() >= 0 and hand.uvs.max() <= 1 and hand.faces_uv.shape == hand.faces.shape
    out = hand(**random_inputs(hand, 3))
    assert out.vertices.shape == (3, 1609, 3) and out.vertices.dtype == torch.float32
    assert out.keypoints.shape == (3, 21, 3) and out.joint_transforms.shape == (3, 21, 4, 4)
    assert torch.allclose(out.joint_transforms[..., :3, 3], out.joints)
    assert torch.allclose(hand.keypoints(**random_inputs(hand, 3)), out.keypoints, atol=1e-6)  # the fast path
    empty = hand()
    assert empty.vertices.shape == (1, 1609, 3)
    assert torch.allclose(empty.joints[0, :2], torch.zeros(2, 3))  # the root and wrist joints are the origin


def test_rest_pose_axes_and_size(hand):
    """Documented convention: palm faces -x, fingers along +y, thumb towards +z; adult size."""
    kp = hand().keypoints[0]
    assert kp[12, 1] > 0.15 and abs(kp[12, 2]) < 0.03  # middle tip up along +y
    assert kp[4, 2] > 0.04  # thumb tip on the +z side
    palm = torch.linalg.cross(kp[5] - kp[0], kp[17] - kp[0])
    assert palm[0] < -0.8 * palm.norm()
    length = (hand().vertices[0] - hand().joints[0, 1]).norm(dim=1).max()  # from the wrist joint
    assert 0.17 < length < 0.20


def test_transl_and_global_orient_are_rigid(hand):
    inputs = random_inputs(hand, 2)
    base = hand(pose=inputs["pose"], shape=inputs["shape"])
    moved = hand(**inputs)
    R = axis_angle_to_matrix(inputs["global_orient"])
    expect = base.vertices @ R.transpose(1, 2) + inputs["transl"][:, None]
    assert torch.allclose(moved.vertices, expect, atol=1e-5)
    expect_kp = base.keypoints @ R.transpose(1, 2) + inputs["transl"][:, None]
    assert torch.allclose(moved.keypoints, expect_kp, atol=1e-5)


def test_gradients_match_finite_differences(hand):
    inputs = {k: v.requires_grad_() for k, v in random_inputs(hand, 1, torch.float64, seed=3).items()}
    keys = list(inputs)

    def f(*args):
        out = hand(**dict(zip(keys, args)))  # buffers follow the float64 inputs
        return out.vertices[:, ::40], out.keypoints

    assert torch.autograd.gradcheck(f, tuple(inputs.values()), eps=1e-6, atol=1e-6)


def test_batch_elements_are_independent(hand):
    inputs = random_inputs(hand, 4)
    batched = hand(**inputs).vertices
    single = torch.cat([hand(**{k: v[i:i + 1] for k, v in inputs.items()}).vertices for i in range(4)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_mirrored_model_is_the_mirror_image(hand):
    left = hand.mirrored()
    assert left.side == "left"
    inputs = random_inputs(hand, 2)
    m = torch.tensor([-1.0, 1.0, 1.0])
    # A rotation R seen in the mirror is M R M, whose axis-angle is (x, -y, -z).
    flip = -m
    mirrored_inputs = dict(global_orient=inputs["global_orient"] * flip, pose=inputs["pose"] * flip,
                           shape=inputs["shape"], transl=inputs["transl"] * m)
    right, left_out = hand(**inputs), left(**mirrored_inputs)
    assert torch.allclose(left_out.vertices, right.vertices * m, atol=1e-5)
    assert torch.allclose(left_out.keypoints, right.keypoints * m, atol=1e-5)
    # Faces are re-wound: outward normals stay outward (positive mean normal . (v - centroid)).
    for model, out in ((hand, right), (left, left_out)):
        v = out.vertices[0]
        tri = v[model.faces]
        normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        assert (normal * (tri.mean(1) - v.mean(0))).sum() > 0


def test_load_left_side():
    left = ht.load_hand_model(side="left")
    assert left.side == "left"
    kp = left().keypoints[0]
    assert kp[4, 2] > 0.04  # mirror in x keeps the thumb on +z, the palm now faces +x
    palm = torch.linalg.cross(kp[5] - kp[0], kp[17] - kp[0])
    assert palm[0] < 0  # same cross product, so for a left hand it points out of the back


def test_bad_inputs_raise_clear_errors(hand):
    with pytest.raises(HandModelError, match=r"pose must have shape \(B, 20, 3\)"):
        hand(pose=torch.zeros(1, 15, 3))
    with pytest.raises(HandModelError, match="NaN"):
        hand(global_orient=torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(HandModelError, match="batch sizes differ"):
        hand(global_orient=torch.zeros(2, 3), transl=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        hand(transl=np.zeros((1, 3)))


def test_model_files_are_validated(tmp_path, hand):
    with pytest.raises(HandModelError, match="not found"):
        ht.load_hand_model(path=tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(HandModelError, match="not a readable"):
        ht.load_hand_model(path=junk)
    data = hand.data
    good = tmp_path / "good.npz"
    data.save(good)
    assert torch.equal(ht.load_hand_model("file", path=good)().vertices, hand().vertices)
    arrays = dict(np.load(good))
    bad_values = dict(arrays, skin_weights=np.full_like(arrays["skin_weights"], np.nan))
    np.savez(tmp_path / "nan.npz", **bad_values)
    with pytest.raises(HandModelError, match="skin_weights holds NaN"):
        ht.load_hand_model(path=tmp_path / "nan.npz")
    missing = {k: v for k, v in arrays.items() if k != "faces"}
    np.savez(tmp_path / "missing_key.npz", **missing)
    with pytest.raises(HandModelError, match=r"missing arrays \['faces'\]"):
        ht.load_hand_model(path=tmp_path / "missing_key.npz")
    wrong = dict(arrays, bind_joints=arrays["bind_joints"][:5])
    np.savez(tmp_path / "wrong.npz", **wrong)
    with pytest.raises(HandModelError, match="bind_joints has shape"):
        ht.load_hand_model(path=tmp_path / "wrong.npz")
    with pytest.raises(ValueError, match="unknown hand model"):
        ht.load_hand_model("smpl")
    assert isinstance(data, HandModelData)
