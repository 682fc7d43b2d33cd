"""The open model's keypoints sit where MediaPipe puts its landmarks on renders of the model."""

import dataclasses

import numpy as np
import pytest

import harp_track as ht
from harp_track.hand import HandModel
from harp_track.hand.calibrate_keypoints import _anchor_joints, render_mediapipe_views


def projected_error(model, transforms, rays, camera):
    """(N, 21) pixel distance between rigidly posed keypoints and MediaPipe's landmarks."""
    d = model.data
    anchors = _anchor_joints(d)
    points = d.keypoint_regressor @ np.concatenate([d.bind_joints, d.vertices])
    G = transforms[:, anchors, :, :3] @ d.bind_rotations[anchors]
    x = (G @ (points - d.bind_joints[anchors])[..., None])[..., 0] + transforms[:, anchors][..., 3]
    uv = x[..., :2] / x[..., 2:] * camera.fx + camera.cx
    landmarks = rays[..., :2] / rays[..., 2:] * camera.fx + camera.cx
    return np.linalg.norm(uv - landmarks, axis=-1)


@pytest.mark.slow
def test_calibrated_keypoints_agree_with_mediapipe_better_than_joint_centres():
    model = ht.load_hand_model()
    # Views the calibration never saw (it used seed 0).
    transforms, rays, camera = render_mediapipe_views(model, 30, seed=11)
    assert len(transforms) >= 12
    anchors = _anchor_joints(model.data)
    centres = np.zeros_like(model.data.keypoint_regressor)
    centres[np.arange(21), anchors] = 1.0  # each keypoint at its joint's centre
    for tip in (4, 8, 12, 16, 20):  # tips as the calibration found them
        centres[tip] = model.data.keypoint_regressor[tip]
    uncalibrated = HandModel(dataclasses.replace(model.data, keypoint_regressor=centres))
    ours = projected_error(model, transforms, rays, camera)
    theirs = projected_error(uncalibrated, transforms, rays, camera)
    assert ours.mean() < 0.9 * theirs.mean()
    assert ours[:, 0].mean() < 0.6 * theirs[:, 0].mean()  # the wrist moved the most
