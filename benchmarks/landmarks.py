"""Landmark backends on the real hand videos of shared/data: time per frame and agreement with
MediaPipe.

    python -m benchmarks.landmarks

Time: median ms per frame over the 640×360 hand video (mediapipe_samples/
hand_landmarker_test_video.mp4, 202 frames, tracked in order; the palm detector also runs every
frame while fewer than max_hands=2 hands are tracked, as in MediaPipe). Agreement: mean landmark
distance to the MediaPipe backend's, rescaled to a hand ~200 px long as in a 256-px crop.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from benchmarks import SHARED_DATA
from benchmarks.timing import markdown_table, median_ms
from harp_track.landmarks import HandLandmarks, create_detector

DATA = SHARED_DATA
HAND_VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"  # 640×360
GESTURE_VIDEO = "mediapipe_samples/gesture_test_video.mp4"  # 1280×720
# hgc_realworld's 256-px crops show hands about 200 px long (bounding box of the 21 landmarks).
HAND_EXTENT_IN_256_CROP = 200.0


def error_at_256px_crop(image_xy: np.ndarray, reference_xy: np.ndarray) -> float:
    """Mean distance between (21, 2) pixel landmarks, rescaled to a reference hand ~200 px long."""
    extent = float(np.ptp(reference_xy, axis=0).max())
    return float(np.linalg.norm(image_xy - reference_xy, axis=1).mean()) * HAND_EXTENT_IN_256_CROP / extent


def read_video(path: Path) -> list[np.ndarray]:
    """All frames of a video as H×W×3 uint8 RGB arrays."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def track(backend: str, device: str, frames: list[np.ndarray]) -> list[list[HandLandmarks]]:
    """Hands per frame when one detector tracks the whole sequence."""
    detector = create_detector(backend, device=device)
    try:
        return [detector.detect(frame, i / 25) for i, frame in enumerate(frames)]
    finally:
        detector.close()


def agreement(hands: list[list[HandLandmarks]], reference: list[list[HandLandmarks]]) -> tuple[float, int]:
    """Mean error at a 256-px crop over the reference's hands (each matched to the nearest hand),
    and how many reference hands had no hand to match."""
    errors, missed = [], 0
    for found, expected in zip(hands, reference):
        for ref in expected:
            if not found:
                missed += 1
                continue
            nearest = min(found, key=lambda h: float(np.abs(h.image_xy - ref.image_xy).mean()))
            errors.append(error_at_256px_crop(nearest.image_xy, ref.image_xy))
    return (float(np.mean(errors)) if errors else float("nan")), missed


def time_per_frame(backend: str, device: str, frames: list[np.ndarray], repeats: int) -> float:
    """Median ms of one `detect` call, cycling through the frames in order."""
    detector = create_detector(backend, device=device)
    clock = itertools.count()
    stream = itertools.cycle(frames)
    try:
        return median_ms(lambda: detector.detect(next(stream), next(clock) / 25), repeats=repeats, warmup=5)
    finally:
        detector.close()


def run() -> str:
    """Markdown table: backend, device, ms per frame at 640×360, agreement with MediaPipe."""
    if not (DATA / HAND_VIDEO).exists():
        return f"(skipped: {DATA / HAND_VIDEO} not found)"
    import onnxruntime as ort

    videos = {name: read_video(DATA / name) for name in (HAND_VIDEO, GESTURE_VIDEO)}
    configs = [("mediapipe", "cpu"), ("onnx", "cpu")]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        configs.append(("onnx", "cuda"))
    reference = {name: track("mediapipe", "cpu", frames) for name, frames in videos.items()}
    rows = []
    for backend, device in configs:
        ms = time_per_frame(backend, device, videos[HAND_VIDEO], repeats=len(videos[HAND_VIDEO]))
        row: list[object] = [backend, device, ms, 1000.0 / ms]
        for name, frames in videos.items():
            err, missed = agreement(track(backend, device, frames), reference[name])
            row.append(f"{err:.2f} ({missed} missed)")
        rows.append(row)
    return markdown_table(
        ["backend", "device", "ms/frame (640×360)", "FPS",
         "vs MediaPipe px@256, hand video (202 fr.)", "vs MediaPipe px@256, gesture video (195 fr., 1280×720)"],
        rows)


if __name__ == "__main__":
    print(run())
