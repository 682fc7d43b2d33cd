"""ONNX Runtime backend: MediaPipe's hand landmark and palm detection models converted to ONNX
(`tools/convert_mediapipe_onnx.py`), with MediaPipe's tracking logic re-implemented: a hand's
crop in the next frame comes from its landmarks in this one, and the palm detector runs only
while fewer than `max_hands` hands are tracked."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..keypoints import NUM_KEYPOINTS
from .base import HandLandmarks, TimestampCheck, camera_handedness, check_image
from .palm import WRIST_KEYPOINT, MIDDLE_MCP_KEYPOINT, PalmDetector
from .roi import Roi, iou, roi_from_landmarks, roi_from_palm

# Installed with the package (setup.cfg maps the repository's models/ to harp_track.models), so
# found in a wheel install as in a checkout.
MODEL_DIR = Path(str(resources.files("harp_track.models").joinpath("onnx")))
LANDMARK_MODEL = "hand_landmark_full.onnx"
PALM_MODEL = "palm_detection_full.onnx"
INPUT_SIZE = 224
# TensorsToLandmarksCalculator's normalize_z for hands: z is predicted at 0.4× the x scale.
Z_SCALE = 1 / 0.4
MIN_PRESENCE = 0.5  # MediaPipe's min_tracking_confidence
MIN_PALM_SCORE = 0.5  # MediaPipe's min_detection_confidence
# How far (mean crop pixels) the mirrored pass of `flip_average` may differ from the crop's own
# and still count in full: about three times the typical difference (1.7 px on real video and on
# synthetic renders alike; 99% of a real video's frames are within 5.1); at twice this it is left out.
MAX_FLIP_GAP = 5.0
# A palm whose crop overlaps a tracked hand's this much is that hand (AssociationNormRectCalculator).
SAME_HAND_IOU = 0.5


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for "auto" | "cpu" | "cuda"."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ValueError(f"device='cuda' but onnxruntime offers only {available} "
                             "(install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")


class OnnxDetector:
    """`LandmarkDetector` on ONNX Runtime (CUDA when available).

    flip_average: run the landmark model on each hand's crop and on its mirror image (the model
    takes either hand) and average the two, at the cost of a second inference. Measured on real
    video (mediapipe_samples' hand clip, 25 fps): 11% less frame-to-frame jitter of the 2D
    landmarks (second difference 1.09 -> 0.97 px/frame^2); on hgc_realworld's annotated frames,
    2D error 6.45 -> 6.37 px. Presence, handedness and the next frame's crop are the unmirrored
    pass's, so it finds a hand in exactly the frames the port does; a mirrored pass that
    disagrees is left out of the average (`MAX_FLIP_GAP`).
    Off, the detector is a faithful port of MediaPipe's graph.
    """

    def __init__(self, max_hands: int = 2, mirrored: bool = False, device: str = "auto",
                 model_dir: Path = MODEL_DIR, flip_average: bool = False) -> None:
        import onnxruntime as ort

        if max_hands < 1:
            raise ValueError(f"max_hands must be at least 1, got {max_hands}")
        for name in (LANDMARK_MODEL, PALM_MODEL):
            if not (model_dir / name).is_file():
                raise FileNotFoundError(f"{model_dir / name} is missing; make it with "
                                        "tools/convert_mediapipe_onnx.py (see models/onnx/README.md)")
        providers = providers_for(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the Cast-folding notices are noise
        # Spinning worker threads steal the CPU from the rest of the tracker between inferences.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.landmarks = ort.InferenceSession(str(model_dir / LANDMARK_MODEL), options,
                                              providers=providers)
        self.palms = PalmDetector(ort.InferenceSession(str(model_dir / PALM_MODEL), options,
                                                       providers=providers), MIN_PALM_SCORE)
        self.providers = self.landmarks.get_providers()
        self.max_hands = max_hands
        self.mirrored = mirrored
        self.flip_average = flip_average
        self._input_name = self.landmarks.get_inputs()[0].name
        # Identity: 21×(x, y, z) crop pixels; _1: presence; _2: P(MediaPipe "Left"); _3: world.
        self._output_names = sorted(o.name for o in self.landmarks.get_outputs())
        self._tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
        self._tracked: list[Roi] = []
        self._timestamps = TimestampCheck()

    def detect(self, image_rgb: np.ndarray, timestamp_s: float) -> list[HandLandmarks]:
        """Hands in an H×W×3 uint8 RGB frame (see `HandLandmarks`)."""
        image_rgb = check_image(image_rgb)
        self._timestamps(timestamp_s)
        rois = list(self._tracked)
        if len(rois) < self.max_hands:
            for palm in self.palms.detect(image_rgb):
                roi = roi_from_palm(palm.box, palm.keypoints[WRIST_KEYPOINT],
                                    palm.keypoints[MIDDLE_MCP_KEYPOINT])
                if len(rois) < self.max_hands and all(
                        iou(roi.box(), r.box()) < SAME_HAND_IOU for r in rois):
                    rois.append(roi)
        hands: list[HandLandmarks] = []
        self._tracked = []
        for roi in rois:
            found = self._landmarks_in(image_rgb, roi)
            if found is None:
                continue
            hand, own_xy = found
            next_roi = roi_from_landmarks(own_xy)
            # Two crops that converged on one hand keep the first (tracked before detected).
            if all(iou(next_roi.box(), r.box()) < SAME_HAND_IOU for r in self._tracked):
                hands.append(hand)
                self._tracked.append(next_roi)
        return hands

    def _landmarks_in(self, image_rgb: np.ndarray, roi: Roi) -> tuple[HandLandmarks, np.ndarray] | None:
        """Run the landmark model on one crop: the hand and the (21, 2) image landmarks of the
        crop's own pass, which place the next frame's crop (as in MediaPipe's graph, never the
        mirrored pass: one drifting off the hand had steered the crop off it, losing a synthetic
        clip's track at frame 51 that the port keeps); None when no hand is present in it."""
        to_image = roi.crop_to_image(INPUT_SIZE)
        # Used as is on pixel indices, like MediaPipe's OpenCV crop (which maps the crop's corners,
        # not its pixel centres, onto the ROI): a sub-pixel shift kept so both backends agree.
        crop = cv2.warpAffine(image_rgb, to_image, (INPUT_SIZE, INPUT_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        crop_xyz, score, p_left, world = self._run(crop)
        # Presence and handedness stay the crop's own: on mirror images the model is less sure of
        # both (it called a mirrored right hand "Left" too on some frames of a turning hand).
        if score < MIN_PRESENCE:
            return None
        own_xy = image_xy = crop_xyz[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        if self.flip_average:
            # The model's errors on a crop and on its mirror image are partly independent, so their
            # mean is steadier and closer to the truth (see the class docstring).
            f_xyz, f_score, _, f_world = self._run(crop[:, ::-1])
            # The model's x counts from the first pixel's centre: pixel i mirrors to 223 - i
            # (measured: with 224 - x the two passes differ by 1.2 crop pixels on average, with 223 - x by 0.2).
            f_xyz[:, 0] = INPUT_SIZE - 1 - f_xyz[:, 0]
            f_world[:, 0] = -f_world[:, 0]
            # Only a mirrored pass that sees a hand and roughly agrees helps; one that has lost the
            # hand would pull the landmarks off it. Its weight falls from 1 to 0 as the gap grows
            # from one to two MAX_FLIP_GAP, so the landmarks do not jump where it drops out.
            gap = float(np.linalg.norm(crop_xyz[:, :2] - f_xyz[:, :2], axis=1).mean())
            weight = float(np.clip(2.0 - gap / MAX_FLIP_GAP, 0.0, 1.0)) if f_score >= MIN_PRESENCE else 0.0
            crop_xyz = (crop_xyz + weight * f_xyz) / (1.0 + weight)
            world = (world + weight * f_world) / (1.0 + weight)
            image_xy = crop_xyz[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        pixels_per_crop_pixel = roi.size / INPUT_SIZE
        c, s = math.cos(roi.rotation), math.sin(roi.rotation)
        # World landmarks come in the crop's axes: turn x, y by the crop's rotation.
        world_xyz = np.column_stack([c * world[:, 0] - s * world[:, 1],
                                     s * world[:, 0] + c * world[:, 1], world[:, 2]])
        label = "Left" if p_left >= 0.5 else "Right"
        hand = HandLandmarks(
            image_xy=image_xy.astype(np.float32),
            image_z=(crop_xyz[:, 2] * (Z_SCALE * pixels_per_crop_pixel)).astype(np.float32),
            world_xyz=world_xyz.astype(np.float32),
            handedness=camera_handedness(label, self.mirrored),
            handedness_score=max(p_left, 1 - p_left), score=score)
        return hand, own_xy

    def _run(self, crop: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
        """The landmark model on one (224, 224, 3) uint8 crop: (21, 3) crop pixels and depth,
        hand presence, P(MediaPipe's "Left"), (21, 3) world landmarks in the crop's axes."""
        np.multiply(crop, np.float32(1 / 255), out=self._tensor[0], casting="unsafe")
        screen, presence, left, world = self.landmarks.run(self._output_names, {self._input_name: self._tensor})
        return (screen.reshape(NUM_KEYPOINTS, 3).astype(np.float64), float(presence.reshape(())),
                float(left.reshape(())), world.reshape(NUM_KEYPOINTS, 3).astype(np.float64))

    def reset(self) -> None:
        """Forget tracked hands."""
        self._tracked = []
        self._timestamps = TimestampCheck()

    def close(self) -> None:
        """Forget tracked hands; ONNX Runtime frees its sessions with the detector object."""
        self._tracked = []
