"""Anatomical pose space: axes that mean the same on every model, limits that hold."""

import pytest
import torch

import harp_track as ht


@pytest.fixture(scope="module", params=["right", "left"])
def hand(request):
    return ht.load_hand_model(side=request.param)


def palm_side(model):
    return torch.tensor([-1.0 if model.side == "right" else 1.0, 0.0, 0.0])


def angles_for(model, role, dof, value):
    angles = torch.zeros(1, model.num_pose_joints, 3)
    angles[0, [i for i, r in enumerate(model.anatomy.roles) if r == role], dof] = value
    return angles


def test_frames_are_orthonormal_and_invertible(hand):
    axes = hand.anatomy.axes
    assert torch.allclose(axes @ axes.transpose(1, 2), torch.eye(3).expand_as(axes), atol=1e-5)
    angles = torch.randn(4, hand.num_pose_joints, 3)
    assert torch.allclose(hand.anatomy.from_pose(hand.anatomy.to_pose(angles, clamp=False)), angles, atol=1e-5)


def test_flexion_curls_every_finger_towards_the_palm(hand):
    flat = hand().keypoints[0]
    for role in ("mcp", "pip"):
        bent = hand(pose=hand.anatomy.to_pose(angles_for(hand, role, 0, 0.8))).keypoints[0]
        for tip in (8, 12, 16, 20):
            assert (bent[tip] - flat[tip]) @ palm_side(hand) > 0.015, (role, tip)
    thumb = hand(pose=hand.anatomy.to_pose(angles_for(hand, "thumb_ip", 0, 1.0))).keypoints[0]
    assert (thumb[4] - flat[4]) @ palm_side(hand) > 0.005
    fist = hand(pose=hand.anatomy.to_pose(hand.anatomy.gesture("fist"))).keypoints[0]
    for tip in (8, 12, 16, 20):
        assert (fist[tip] - fist[0]).norm() < 0.65 * (flat[tip] - flat[0]).norm()


def test_abduction_spreads_away_from_the_middle_finger(hand):
    flat = hand().keypoints[0]
    spread = hand(pose=hand.anatomy.to_pose(hand.anatomy.gesture("spread"))).keypoints[0]
    for a, b in ((8, 12), (12, 16), (16, 20)):
        assert (spread[a] - spread[b]).norm() > (flat[a] - flat[b]).norm() + 0.005
    palmar = hand(pose=hand.anatomy.to_pose(angles_for(hand, "thumb_cmc", 1, 0.6))).keypoints[0]
    assert (palmar[4] - flat[4]) @ palm_side(hand) > 0.02  # palmar abduction lifts the thumb off the palm


def test_limits_forbid_bending_backwards(hand):
    backwards = angles_for(hand, "pip", 0, -1.0)
    clamped = hand.anatomy.clamp(backwards)
    assert clamped.min() >= hand.anatomy.lower.min() and torch.all(clamped >= hand.anatomy.lower)
    assert torch.allclose(hand.anatomy.to_pose(backwards), hand.anatomy.to_pose(clamped))
    flat = hand().keypoints[0]
    posed = hand(pose=hand.anatomy.to_pose(backwards)).keypoints[0]
    for tip in (8, 12, 16, 20):  # at most the few degrees of hyperextension the limits allow
        assert (posed[tip] - flat[tip]) @ palm_side(hand) > -0.006
    assert hand.anatomy.limit_violation(backwards) > 0.5
    assert hand.anatomy.limit_violation(hand.anatomy.gesture("fist")) == 0


def test_limit_violation_has_gradient_back_into_range(hand):
    angles = angles_for(hand, "dip", 0, -1.0).requires_grad_()
    hand.anatomy.limit_violation(angles).sum().backward()
    dip = [i for i, r in enumerate(hand.anatomy.roles) if r == "dip"]
    assert torch.all(angles.grad[0, dip, 0] < 0)  # descending the gradient raises the angle


def test_unknown_gesture(hand):
    with pytest.raises(ValueError, match="unknown gesture"):
        hand.anatomy.gesture("wave")
