"""Per-frame 2D/3D hand landmarks: MediaPipe Hands, or MediaPipe's models on ONNX Runtime.

    from harp_track.landmarks import create_detector
    detector = create_detector("auto", max_hands=2)
    for t, frame in enumerate(frames):           # H×W×3 uint8 RGB
        hands = detector.detect(frame, t / 30)   # list[HandLandmarks]
    detector.close()

Handedness is that of the person's hand in an unmirrored camera image; pass `mirrored=True` for
selfie views that were flipped horizontally (MediaPipe's own convention).
"""

from __future__ import annotations

from .base import HandLandmarks, LandmarkDetector, check_image

BACKENDS = ("mediapipe", "onnx", "auto")


def onnx_offers_cuda() -> bool:
    """Whether onnxruntime can run the landmark model on CUDA (onnxruntime-gpu is installed)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def create_detector(backend: str = "auto", max_hands: int = 2, mirrored: bool = False,
                    device: str = "auto", flip_average: bool = False) -> LandmarkDetector:
    """A landmark detector. backend "mediapipe" (CPU), "onnx" (ONNX Runtime on `device`: "auto" |
    "cpu" | "cuda") or "auto": ONNX with CUDA when onnxruntime offers it, otherwise MediaPipe.
    flip_average: the ONNX backend also runs each crop mirrored and averages (steadier, a little
    more accurate, twice the inference; `OnnxDetector`); MediaPipe's own graph cannot."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "onnx" if device == "cuda" or (device == "auto" and onnx_offers_cuda()) else "mediapipe"
    if backend == "onnx":
        from .onnx_backend import OnnxDetector

        return OnnxDetector(max_hands=max_hands, mirrored=mirrored, device=device, flip_average=flip_average)
    if flip_average:
        raise ValueError("flip_average needs the onnx backend (MediaPipe's own graph runs each crop once)")
    if device not in ("auto", "cpu"):
        raise ValueError(f"the mediapipe backend runs on the CPU only, got device={device!r}")
    from .mediapipe_backend import MediaPipeDetector

    return MediaPipeDetector(max_hands=max_hands, mirrored=mirrored)


__all__ = ["HandLandmarks", "LandmarkDetector", "check_image", "create_detector", "onnx_offers_cuda", "BACKENDS"]
