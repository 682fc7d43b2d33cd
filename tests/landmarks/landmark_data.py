"""Real photos and videos from ../shared/data (never copied into the repo) and the helpers the
landmark tests share. Tests skip when the data folder is missing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ONE_HAND_PHOTOS = [
    "in_the_wild/mediapipe_rs_samples/thumbs_up.jpg",
    "in_the_wild/mediapipe_rs_samples/thumbs_down.jpg",
    "in_the_wild/mediapipe_rs_samples/victory.jpg",
    "in_the_wild/mediapipe_rs_samples/pointing_up.jpg",
    "mediapipe_samples/thumbs-up.png",
    "mediapipe_samples/gesture_hand_thumb_up.jpg",
]
TWO_HANDS_PHOTO = "in_the_wild/mediapipe_rs_samples/google_sample_woman_hands.jpg"


def data_path(relative: str) -> Path:
    """A file under shared/data; skips the test when it is not there."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def load_rgb(relative: str) -> np.ndarray:
    """H×W×3 uint8 RGB image from shared/data."""
    image = cv2.imread(str(data_path(relative)), cv2.IMREAD_COLOR)
    assert image is not None, relative
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_video(relative: str, max_frames: int) -> list[np.ndarray]:
    """Up to `max_frames` first frames of a video as RGB arrays."""
    capture = cv2.VideoCapture(str(data_path(relative)))
    frames = []
    while len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    assert frames, relative
    return frames


def nearest_hand(hands: list, reference_xy: np.ndarray):
    """The hand whose landmarks lie closest to `reference_xy`."""
    return min(hands, key=lambda h: float(np.abs(h.image_xy - reference_xy).mean()))


def onnx_models_present() -> bool:
    from harp_track.landmarks.onnx_backend import LANDMARK_MODEL, MODEL_DIR, PALM_MODEL

    return (MODEL_DIR / LANDMARK_MODEL).is_file() and (MODEL_DIR / PALM_MODEL).is_file()


needs_onnx_models = pytest.mark.skipif(not onnx_models_present(), reason="models/onnx not converted")
