"""The coarse fit on either landmark backend: MediaPipe, or the same models on ONNX Runtime (what
a CUDA machine without MediaPipe uses)."""

from __future__ import annotations

import numpy as np

from avatar_builder.coarse import coarse_fit
from avatar_builder.frames import Frame


def test_coarse_fit_agrees_on_both_landmark_backends(clip, model):
    frames = [Frame(image, i, clip.camera) for i, image in enumerate(clip.frames)]
    fits = {backend: coarse_fit(frames, model, landmarks=backend, length=0.18, min_frames=1, progress=False)
            for backend in ("mediapipe", "onnx")}
    kept = {backend: {f.index: k for k, f in enumerate(fit.frames)} for backend, fit in fits.items()}
    common = sorted(set(kept["mediapipe"]) & set(kept["onnx"]))
    assert len(common) >= 0.8 * len(frames)
    a = fits["mediapipe"].transl[[kept["mediapipe"][i] for i in common]]
    b = fits["onnx"].transl[[kept["onnx"][i] for i in common]]
    assert np.linalg.norm(a - b, axis=1).mean() < 0.01  # metres
    assert np.abs(fits["mediapipe"].landmarks[[kept["mediapipe"][i] for i in common]]
                  - fits["onnx"].landmarks[[kept["onnx"][i] for i in common]]).mean() < 3.0  # pixels
