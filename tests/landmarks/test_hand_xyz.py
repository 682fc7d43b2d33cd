"""`HandLandmarks.hand_xyz`: the world landmarks' depths averaged with the image landmarks'."""

from __future__ import annotations

import numpy as np

from benchmarks.tracking import procrustes_error
from harp_track.landmarks import create_detector
from harp_track.landmarks.base import HandLandmarks

from .landmark_data import data_path, load_rgb


def _landmarks(world: np.ndarray, image_xy: np.ndarray, image_z: np.ndarray) -> HandLandmarks:
    return HandLandmarks(image_xy=image_xy.astype(np.float32), image_z=image_z.astype(np.float32),
                         world_xyz=world.astype(np.float32), handedness="right", handedness_score=1.0, score=1.0)


def test_opposite_depth_errors_cancel_and_x_y_are_the_world_landmarks():
    rng = np.random.default_rng(0)
    truth = rng.uniform(-0.05, 0.05, (21, 3))
    truth -= truth.mean(0)
    # Weak perspective at 0.5 m with a 600 px focal length: 1200 px a metre, the same for depth.
    pixels_per_metre, centre = 1200.0, np.array([320.0, 240.0])
    error = rng.normal(0.0, 0.01, 21)
    world = truth + np.column_stack([np.zeros((21, 2)), error]) + [0.0, 0.0, 0.002]  # any origin
    image_z = (truth[:, 2] - error) * pixels_per_metre + 7.0  # any offset (MediaPipe's is the wrist)
    shape = _landmarks(world, truth[:, :2] * pixels_per_metre + centre, image_z).hand_xyz()
    np.testing.assert_allclose(shape, truth, atol=1e-6)
    # With the image depth equal to the world's, nothing changes but the centring.
    same = _landmarks(world, truth[:, :2] * pixels_per_metre + centre, world[:, 2] * pixels_per_metre).hand_xyz()
    np.testing.assert_allclose(same, world - world.mean(0), atol=1e-6)


def test_landmarks_piled_in_one_pixel_leave_the_world_depths_alone():
    world = np.random.default_rng(1).uniform(-0.05, 0.05, (21, 3))
    shape = _landmarks(world, np.full((21, 2), 100.0), np.arange(21.0)).hand_xyz()
    np.testing.assert_allclose(shape, world - world.mean(0), atol=1e-6)


def test_closer_to_the_truth_than_the_world_landmarks_on_real_frames():
    annotations = np.load(data_path("hgc_realworld/annotations.npz"))
    frames = range(50, 110)
    detector = create_detector("mediapipe", max_hands=1)
    world_errors, fused_errors = [], []
    for i in frames:
        found = detector.detect(load_rgb(f"hgc_realworld/{annotations['image_path'][i]}"), i / 30.0)
        if found:
            truth = annotations["joints3d_cam_mm"][i] / 1000.0
            world_errors.append(procrustes_error(found[0].world_xyz.astype(np.float64), truth))
            fused_errors.append(procrustes_error(found[0].hand_xyz(), truth))
    detector.close()
    assert len(fused_errors) > 0.9 * len(frames)
    assert np.mean(fused_errors) < 0.97 * np.mean(world_errors), (np.mean(fused_errors), np.mean(world_errors))
