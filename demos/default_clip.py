"""The embedded default clip: a synthetic hand video with ground truth, made by our own code."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from harp_track.camera import Camera
from harp_track.synthetic import make_clip


def ensure_clip(out_dir: Path, num_frames: int = 90) -> tuple[Path, Path]:
    """Write (or reuse) out_dir/clip.mp4 and its ground truth out_dir/clip_truth.npz."""
    video, truth = out_dir / "clip.mp4", out_dir / "clip_truth.npz"
    if video.exists() and truth.exists() and len(np.load(truth)["joints"]) == num_frames:
        return video, truth
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = make_clip(num_frames, progress=True)
    height, width = clip.frames.shape[1:3]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    c = clip.camera
    np.savez(truth, joints=clip.joints, keypoints_2d=clip.keypoints_2d, timestamps=clip.timestamps,
             intrinsics=np.array([c.fx, c.fy, c.cx, c.cy]))
    return video, truth


def clip_camera(truth: Path) -> Camera:
    fx, fy, cx, cy = np.load(truth)["intrinsics"]
    return Camera(float(fx), float(fy), float(cx), float(cy))
