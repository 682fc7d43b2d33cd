"""The synthetic enrollment subject: a deterministic clip whose ground truth matches its pixels."""

import cv2
import numpy as np
import pytest
import torch

from harp_track.hand import load_hand_model
from harp_track.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from harp_track.synthetic import ENROLLMENT_SHAPE, make_enrollment_clip, skin_texture, tattoo_texture

SIZE = (128, 128)
N = 12
INK_LUMA = 40  # uint8 luminance: tattoo ink even in full light, below skin in full shadow (~50)


def luma(frames):
    return frames @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def turning():
    return make_enrollment_clip(num_frames=N, image_size=SIZE)


@pytest.fixture(scope="module")
def novel():
    return make_enrollment_clip(num_frames=9, image_size=SIZE, poses="novel")


def test_shapes_and_ground_truth_agree_with_the_model(turning):
    model = load_hand_model()
    c = turning
    assert c.frames.shape == (N, *SIZE, 3) and c.frames.dtype == np.uint8
    assert c.masks.shape == (N, *SIZE) and c.masks.dtype == bool
    assert c.vertices.shape == (N, model.num_vertices, 3) and c.joints.shape == (N, 21, 3)
    assert c.keypoints_2d.shape == (N, 21, 2) and c.light_positions.shape == (N, 3)
    assert c.pose.shape == (N, model.num_pose_joints, 3) and c.global_orient.shape == c.transl.shape == (N, 3)
    assert c.albedo.shape == (1, 512, 512, 3) and c.background.shape == (*SIZE, 3)
    np.testing.assert_array_equal(c.faces, model.faces.numpy())
    np.testing.assert_allclose(c.shape, ENROLLMENT_SHAPE[:model.num_shape])
    assert c.ambient == 0.35
    inputs = {k: torch.from_numpy(getattr(c, k)) for k in ("global_orient", "pose", "transl")}
    out = model(**inputs, shape=torch.from_numpy(c.shape).expand(N, -1))
    np.testing.assert_allclose(out.vertices.numpy(), c.vertices, atol=1e-6)
    np.testing.assert_allclose(c.camera.project(torch.from_numpy(c.joints)).numpy(), c.keypoints_2d, atol=1e-4)


def test_deterministic_for_a_seed(turning):
    again = make_enrollment_clip(num_frames=N, image_size=SIZE)
    for field in ("frames", "masks", "vertices", "albedo", "light_positions", "background"):
        np.testing.assert_array_equal(getattr(again, field), getattr(turning, field))
    other = make_enrollment_clip(num_frames=2, image_size=SIZE, seed=1)
    assert not np.array_equal(other.frames[0], turning.frames[0])
    # Another take of the same subject: a held-out clip scores the avatar built from this one only
    # if its skin is the one the avatar learned.
    np.testing.assert_array_equal(other.albedo, turning.albedo)
    np.testing.assert_array_equal(other.shape, turning.shape)


def test_turns_from_palm_to_back_and_back(turning):
    # The palm's outward normal, from the keypoints as the anatomy defines it (right hand).
    kp = turning.joints
    palm = np.cross(kp[:, 5] - kp[:, 0], kp[:, 17] - kp[:, 0])
    towards_camera = -(palm * kp[:, 9]).sum(1)  # > 0: the palm faces the camera at the origin
    assert towards_camera[0] > 0 and towards_camera[N // 2] < 0 and towards_camera[-1] > 0


def test_tattoo_is_on_the_back_of_the_hand(turning):
    # The texture: dark ink that plain skin never has.
    albedo = tattoo_texture(256).numpy()[0]
    skin = skin_texture(256).numpy()[0]
    ink = luma(albedo) < 0.2
    assert luma(skin).min() > 0.4 and ink.mean() > 0.005
    # The clip: ink shows while the back of the hand faces the camera and never on the palm side.
    dark = [(luma(f)[m] < INK_LUMA).sum() for f, m in zip(turning.frames, turning.masks)]
    assert dark[N // 2] > 100 and dark[0] == 0 and dark[-1] == 0


def test_masks_match_frames_and_background(turning):
    background = np.clip(np.round(turning.background * 255), 0, 255)
    for frame, mask in zip(turning.frames, turning.masks):
        # Away from the antialiased silhouette, pixels are exactly the background or clearly not.
        outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        inside = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        np.testing.assert_array_equal(frame[outside], background[outside])
        assert np.abs(frame[inside] - background[inside]).mean() > 25


@pytest.mark.parametrize("clip", ["turning", "novel"])
def test_the_hand_stays_in_frame(clip, request):
    c = request.getfixturevalue(clip)
    h, w = SIZE
    assert not c.masks[:, [0, -1], :].any() and not c.masks[:, :, [0, -1]].any()
    assert (c.keypoints_2d >= 0).all() and (c.keypoints_2d[..., 0] < w).all() and (c.keypoints_2d[..., 1] < h).all()
    rows, cols = c.masks.any(2), c.masks.any(1)
    extent = [max(np.ptp(np.flatnonzero(r)), np.ptp(np.flatnonzero(k))) + 1 for r, k in zip(rows, cols)]
    assert max(extent) / min(h, w) == pytest.approx(0.77, abs=0.05)  # a close-up, with a margin
    if clip == "turning":
        assert min(extent) / min(h, w) > 0.5


def test_light_moves_and_shades(turning):
    spread = np.linalg.norm(turning.light_positions - turning.light_positions.mean(0), axis=1)
    assert spread.max() > 0.1  # metres
    still = make_enrollment_clip(num_frames=N, image_size=SIZE, light_motion=False)
    assert np.ptp(still.light_positions, axis=0).max() == 0
    np.testing.assert_array_equal(still.masks, turning.masks)  # same geometry, other shading
    changed = [np.abs(a.astype(int) - b)[m].mean() for a, b, m in zip(still.frames, turning.frames, turning.masks)]
    assert max(changed) > 10


def test_novel_poses_are_other_gestures_in_other_views(turning, novel):
    model = load_hand_model()
    flexion = [model.anatomy.from_pose(torch.from_numpy(c.pose))[..., 0].amax().item() for c in (turning, novel)]
    assert flexion[0] < 0.6 < 1.2 < flexion[1]  # mild flexion while enrolling; a fist later
    a = torch.from_numpy(turning.global_orient)
    b = torch.from_numpy(novel.global_orient)
    relative = axis_angle_to_matrix(b)[:, None].transpose(-1, -2) @ axis_angle_to_matrix(a)[None]
    assert matrix_to_axis_angle(relative).norm(dim=-1).min() > np.radians(15)
    with pytest.raises(ValueError, match="poses"):
        make_enrollment_clip(num_frames=1, poses="dancing")


def test_left_hand_mirrors_the_right():
    right = make_enrollment_clip(num_frames=1, image_size=(64, 64))
    left = make_enrollment_clip(num_frames=1, image_size=(64, 64), side="left")
    assert left.side == "left"
    # Mirrored views of mirrored hands: the silhouettes are mirror images (up to a pixel's rounding).
    assert (left.masks[0] != right.masks[0][:, ::-1]).mean() < 0.02
