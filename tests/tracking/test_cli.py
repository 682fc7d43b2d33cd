"""The command line and the headless demo app on real video (slow: real MediaPipe on real frames)."""

from pathlib import Path

import cv2
import pytest

from demos.cli import main
from harp_track.stream import decode

VIDEO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not VIDEO.is_file(), reason="shared data not present")]


def test_harp_track_writes_poses_and_overlay(tmp_path):
    poses, overlay = tmp_path / "poses.jsonl", tmp_path / "overlay.mp4"
    assert main(["track", str(VIDEO), "--out", str(poses), "--overlay", str(overlay), "--max-frames", "15",
                 "--camera-intrinsics", "500,500,320,180"]) == 0
    frames = [decode(line) for line in poses.read_text().splitlines()]
    assert len(frames) == 15 and [f["frame_index"] for f in frames] == list(range(15))
    assert sum(bool(f["hands"]) for f in frames) >= 12
    assert frames[0]["camera"]["fx"] == 500 and not frames[0]["camera"]["assumed"]
    capture = cv2.VideoCapture(str(overlay))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    capture.release()


def test_webcam_app_headless_on_a_file(tmp_path):
    out = tmp_path / "demo.mp4"
    assert main(["webcam", "--video", str(VIDEO), "--headless", "--out", str(out), "--max-frames", "10"]) == 0
    assert out.stat().st_size > 10_000


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such video"):
        main(["track", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "p.jsonl")])
