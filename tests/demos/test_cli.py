"""`harp track` on a video file: poses only (no overlay), and a device it cannot have."""

from __future__ import annotations

import json

import cv2
import pytest
import torch

from demos.cli import main
from harp_track.synthetic import make_clip


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    clip = make_clip(num_frames=8, image_size=(240, 320), seed=3)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 240))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_track_writes_one_pose_message_per_frame_without_an_overlay(video, tmp_path, capsys):
    poses = tmp_path / "not yet made" / "poses.jsonl"  # its folder is made, as --overlay's is
    assert main(["track", str(video), "--out", str(poses), "--device", "cpu"]) == 0
    messages = [json.loads(line) for line in poses.read_text().splitlines()]
    assert len(messages) == 8
    assert sum(len(m["hands"]) for m in messages) >= 6
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_track_refuses_a_cuda_device_it_does_not_have(video, tmp_path):
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["track", str(video), "--out", str(tmp_path / "poses.jsonl"), "--device", "cuda"])


def test_track_keeps_an_earlier_pose_file_when_the_video_cannot_be_read(tmp_path):
    poses = tmp_path / "poses.jsonl"
    poses.write_text('{"earlier": true}\n')
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    for source in (not_a_video, tmp_path / "missing.mp4"):
        with pytest.raises(SystemExit, match="cannot open video|no such video"):
            main(["track", str(source), "--out", str(poses), "--device", "cpu"])
    assert poses.read_text() == '{"earlier": true}\n'


@pytest.mark.parametrize("extra, message", [
    (["--overlay", "overlay.txt"], "overlay video must be a file ending in"),
    (["--camera-intrinsics", "0,500,160,120"], "fx, fy > 0"),
    (["--camera-intrinsics", "500,500,160"], "fx,fy,cx,cy"),
    (["--max-frames", "0"], "at least 1"),
])
def test_track_refuses_bad_arguments_before_it_starts(video, tmp_path, extra, message):
    poses = tmp_path / "poses.jsonl"
    with pytest.raises(SystemExit, match=message):
        main(["track", str(video), "--out", str(poses), "--device", "cpu", *extra])
    assert not poses.exists()


def test_track_refuses_a_folder_for_its_pose_file(video, tmp_path):
    with pytest.raises(SystemExit, match="is a folder"):
        main(["track", str(video), "--out", str(tmp_path), "--device", "cpu"])
