"""ROI and palm-anchor geometry against hand-worked cases (no models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harp_track.landmarks.palm import ssd_anchors, weighted_nms
from harp_track.landmarks.roi import Roi, iou, roi_from_landmarks, roi_from_palm


def test_crop_to_image_maps_centre_corners_and_up_direction():
    roi = Roi(cx=100.0, cy=50.0, size=40.0, rotation=math.pi / 2)
    m = roi.crop_to_image(224)
    apply = lambda u: m[:, :2] @ np.asarray(u, float) + m[:, 2]
    np.testing.assert_allclose(apply([112, 112]), [100, 50], atol=1e-9)
    # Rotated a quarter turn: the crop's top (fingers) lies to the right of the centre in the image.
    np.testing.assert_allclose(apply([112, 0]), [120, 50], atol=1e-9)
    np.testing.assert_allclose(apply([0, 0]), [120, 30], atol=1e-9)


@pytest.mark.parametrize("angle_deg", [0.0, 35.0, 90.0, -120.0, 179.0])
def test_roi_from_landmarks_recovers_rotation_centre_and_size(angle_deg):
    # An upright synthetic hand (fingers up), turned by angle_deg about its wrist.
    rng = np.random.default_rng(0)
    upright = np.zeros((21, 2))
    upright[1:] = rng.uniform([-30, -90], [30, -5], size=(20, 2))
    upright[[5, 9, 13]] = [[-15, -60], [0, -62], [15, -60]]
    a = math.radians(angle_deg)
    # Positive rotation turns the hand's up direction (0, -1) towards the image's right.
    turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    points = upright @ turn.T + [320, 240]
    roi = roi_from_landmarks(points)
    # The palm's top (mean of the index/ring MCP midpoint and the middle MCP) is straight above
    # the wrist, so the crop's rotation is the hand's.
    assert abs((roi.rotation - a + math.pi) % (2 * math.pi) - math.pi) < 1e-9
    stable = upright[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]]
    extent = np.ptp(stable, axis=0)
    assert math.isclose(roi.size, 2.0 * extent.max(), rel_tol=1e-9)
    # Centre: the box centre shifted 0.1 box heights towards the fingers, in the hand's frame.
    centre = 0.5 * (stable.min(0) + stable.max(0)) + [0, -0.1 * extent[1]]
    np.testing.assert_allclose([roi.cx, roi.cy], turn @ centre + [320, 240], atol=1e-9)


def test_roi_from_palm_expands_the_box_like_mediapipe():
    roi = roi_from_palm(np.array([90.0, 80.0, 110.0, 120.0]), np.array([100.0, 120.0]),
                        np.array([100.0, 80.0]))
    assert roi.rotation == 0.0
    assert math.isclose(roi.size, 2.6 * 40)
    assert math.isclose(roi.cy, 100 - 0.5 * 40) and math.isclose(roi.cx, 100)


def test_iou():
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_ssd_anchors_match_the_palm_model_layout():
    anchors = ssd_anchors()
    assert anchors.shape == (2016, 2)
    # Stride-8 grid first (24², 2 anchors per cell), then stride 16 (12², 6 per cell), x fastest.
    np.testing.assert_allclose(anchors[:3], [[0.5 / 24, 0.5 / 24]] * 2 + [[1.5 / 24, 0.5 / 24]])
    np.testing.assert_allclose(anchors[1152:1159], [[0.5 / 12, 0.5 / 12]] * 6 + [[1.5 / 12, 0.5 / 12]])
    np.testing.assert_allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


def test_weighted_nms_merges_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    keypoints = boxes[:, None, :2].repeat(7, 1)
    out_boxes, out_keypoints, scores = weighted_nms(boxes, keypoints, np.array([0.9, 0.6, 0.7]))
    assert scores.tolist() == [0.9, 0.7]
    np.testing.assert_allclose(out_boxes[0], [0.4, 0, 10.4, 10])
    np.testing.assert_allclose(out_keypoints[1, 0], [50, 50])
