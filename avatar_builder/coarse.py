"""Landmarks and a coarse fit of the hand model to every usable frame, with one hand shape
shared by the whole clip (the tracker's fit, with the shape taken from the clip first)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import torch
from tqdm import tqdm

from harp_track import Camera, HandModel
from harp_track.fit import LandmarkFitter
from harp_track.keypoints import palm_normal
from harp_track.landmarks import HandLandmarks, create_detector

from .errors import EnrollmentError
from .frames import Frame

MIN_FRAMES = 8
# How much nearer or farther than the clip's median depth a frame's hand may be.
MAX_DEPTH_RATIO = 2.0


@dataclasses.dataclass
class CoarseFit:
    """The clip's usable frames and their fits (N frames). side: "left" | "right"; shape (K,) in the
    base model's units; global_orient (N, 3), pose (N, P, 3), transl (N, 3): inputs of the side's
    model placing the hand in each frame's camera space (metres); landmarks (N, 21, 2) pixels;
    reprojection_px (N,) mean distance of the fit's keypoints to the landmarks."""

    frames: list[Frame]
    cameras: list[Camera]
    side: str
    shape: np.ndarray
    global_orient: np.ndarray
    pose: np.ndarray
    transl: np.ndarray
    landmarks: np.ndarray
    reprojection_px: np.ndarray

    def subset(self, keep: np.ndarray) -> "CoarseFit":
        """The fit restricted to frames `keep` (indices into this fit)."""
        keep = np.asarray(keep, dtype=np.int64)
        return dataclasses.replace(
            self, frames=[self.frames[i] for i in keep], cameras=[self.cameras[i] for i in keep],
            global_orient=self.global_orient[keep], pose=self.pose[keep], transl=self.transl[keep],
            landmarks=self.landmarks[keep], reprojection_px=self.reprojection_px[keep])


# The middle finger's chain from the wrist: the hand length a ruler measures.
LENGTH_PATH = (0, 9, 10, 11, 12)


def hand_length(keypoints: np.ndarray | torch.Tensor):
    """(..., 21, 3) keypoints -> (...) wrist-to-middle-fingertip length along the finger, metres."""
    path = list(LENGTH_PATH)
    steps = keypoints[..., path[1:], :] - keypoints[..., path[:-1], :]
    return (steps.norm(dim=-1) if isinstance(steps, torch.Tensor) else np.linalg.norm(steps, axis=-1)).sum(-1)


def ruler_length(model: HandModel, shape: torch.Tensor | None = None) -> float:
    """The hand length a ruler measures on the rest hand, metres: from the wrist joint to the
    farthest point of the hand (the middle fingertip)."""
    with torch.no_grad():
        out = model(shape=shape)
    wrist = out.joints[0, model.data.joint_roles.index("wrist")] if "wrist" in model.data.joint_roles \
        else out.keypoints[0, 0]
    return float((out.vertices[0] - wrist).norm(dim=-1).max())


def keypoint_length_for_ruler(model: HandModel, ruler: float) -> float:
    """The `hand_length` of keypoints for a hand a ruler measures `ruler` metres long. The wrist
    landmark sits 2-3 cm up the palm from the wrist crease and the fingertip landmark inside the
    tip, so the two lengths differ; their ratio on the model's mean hand converts one to the
    other (shape changes are mostly of size, which keeps the ratio)."""
    with torch.no_grad():
        keypoint = float(hand_length(model.keypoints()[0]))
    return ruler * keypoint / ruler_length(model)


def shape_for_length(model: HandModel, length: float, iterations: int = 50) -> np.ndarray:
    """The smallest shape change (K,) that gives the rest hand `length` metres (see `hand_length`).

    Only the size is taken from outside: MediaPipe's world landmarks get a real hand's overall
    size within about 5% (measured on hgc_realworld), but single bones are off by up to 35%, so
    the proportions are left to the silhouettes of the geometry stage."""
    shape = torch.zeros(1, model.num_shape, requires_grad=True)
    optimizer = torch.optim.LBFGS([shape], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        error = hand_length(model.keypoints(shape=shape)[0]) / length - 1.0
        loss = error.square() * 1e3 + 1e-3 * shape.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return shape.detach()[0].numpy()


def coarse_fit(frames: list[Frame], right_model: HandModel, side: str | None = None, mirrored: bool = False,
               shape: np.ndarray | None = None, length: float | None = None, min_frames: int = MIN_FRAMES,
               landmarks: str = "mediapipe", progress: bool = True) -> CoarseFit:
    """Detect the hand in every frame (MediaPipe; `landmarks` names the detector backend; forwards,
    then backwards for the frames missed: `detect_both_ways`), fix one shape for the clip, then fit pose and
    translation per frame (warm-started along the clip). The shape is `shape` (K,) when given
    (e.g. an avatar's), else the mean hand changed to the ruler length `length` metres (wrist
    crease to middle fingertip, `ruler_length`), else to MediaPipe's median keypoint hand length
    over the clip. Frames without a hand, whose fit cannot reproduce the landmarks, or whose
    hand is more than `MAX_DEPTH_RATIO` times nearer or farther than the clip's median, are
    dropped; fewer than `min_frames` left raises EnrollmentError."""
    detections = detect_both_ways(frames, landmarks, mirrored, progress)
    seen = [(f, d) for f, d in zip(frames, detections) if d is not None]
    if len(seen) < min_frames:
        raise EnrollmentError(
            f"a hand was found in only {len(seen)} of {len(frames)} frames (need {min_frames}); record your "
            "whole hand in good light, filling about a third of the picture, turning it slowly")
    side = side or Counter(d.handedness for _, d in seen).most_common(1)[0][0]
    model = right_model if side == "right" else right_model.mirrored()

    if shape is None:
        # MediaPipe's world landmarks are keypoints already; a given length is a ruler's.
        length = (keypoint_length_for_ruler(model, length) if length
                  else float(np.median(hand_length(np.stack([d.world_xyz for _, d in seen])))))
        shape = shape_for_length(model, length)

    fitter = LandmarkFitter(model, torch.from_numpy(shape)[None].float() if model.num_shape else None)
    kept, cams, orient, pose, transl, marks, errors, depths = [], [], [], [], [], [], [], []
    previous, previous_index = None, -2
    for frame, det in tqdm(seen, desc="coarse fit", unit="frame", disable=not progress):
        height, width = frame.image.shape[:2]
        camera = frame.camera or Camera.from_fov(width, height)
        fit = fitter.fit(det.image_xy, det.hand_xyz(), camera,
                         previous=previous if frame.index == previous_index + 1 else None)
        previous, previous_index = fit, frame.index
        extent = float(np.linalg.norm(det.image_xy.max(0) - det.image_xy.min(0)))
        if fit.reprojection_px > 0.08 * extent:
            continue
        inputs = fitter.model_inputs(fit)
        kept.append(frame)
        cams.append(camera)
        orient.append(inputs["global_orient"][0].numpy())
        pose.append(inputs["pose"][0].numpy())
        transl.append(inputs["transl"][0].numpy())
        marks.append(det.image_xy)
        errors.append(fit.reprojection_px)
        depths.append(float(fit.keypoints[:, 2].mean()))
    # The hand is one size, so a fit far nearer or farther than the clip's others is of something
    # else: the palm detector takes a knuckle or a fold for a small hand now and then (seen on
    # fists in our synthetic gestures clip: a "hand" 16 pixels across, placed 1.3 m away).
    plausible = np.flatnonzero(np.abs(np.log(np.array(depths) / np.median(depths))) <= np.log(MAX_DEPTH_RATIO)) \
        if depths else []
    if len(plausible) < min_frames:
        raise EnrollmentError(
            f"only {len(plausible)} frames gave a consistent hand fit (need {min_frames}); keep one hand in view, "
            "fingers visible, and move slowly")
    return CoarseFit(kept, cams, side, shape, np.stack(orient), np.stack(pose), np.stack(transl),
                     np.stack(marks).astype(np.float32), np.array(errors, dtype=np.float32)).subset(plausible)


def detect_both_ways(frames: list[Frame], landmarks: str = "mediapipe", mirrored: bool = False,
                     progress: bool = True) -> list[HandLandmarks | None]:
    """One hand's landmarks in each frame (None where none was found), from a pass through the
    clip and, for the frames it missed, a second pass backwards. The detectors follow a hand
    from frame to frame once they have found it, and their palm detector misses hands seen
    edge-on (a pointing hand, a fist): played backwards, a clip that starts with such views
    reaches them from a frame where the hand was found (on our synthetic gestures clip,
    MediaPipe's solution found 15 of 40 frames forwards, 34 both ways)."""
    detections: list[HandLandmarks | None] = [None] * len(frames)
    for direction in ("forwards", "backwards"):
        order = range(len(frames)) if direction == "forwards" else range(len(frames) - 1, -1, -1)
        if direction == "backwards" and all(detections):
            break
        detector = create_detector(landmarks, max_hands=1, mirrored=mirrored, device="cpu")
        try:
            for step, i in enumerate(tqdm(order, desc=f"landmarks ({direction})", unit="frame", disable=not progress)):
                found = detector.detect(frames[i].image, step / 30.0)  # its clock: increasing in play order
                if found and detections[i] is None:
                    detections[i] = found[0]
        finally:
            detector.close()
    return detections


def palm_directions(fit: CoarseFit, model: HandModel) -> np.ndarray:
    """(N, 3) unit palm normals in camera space (pointing out of the palm)."""
    with torch.no_grad():
        kp = model.keypoints(global_orient=torch.from_numpy(fit.global_orient),
                             pose=torch.from_numpy(fit.pose)).numpy()
    return palm_normal(kp, fit.side)


def select_views(directions: np.ndarray, count: int, bins_polar: int = 6, bins_azimuth: int = 8) -> np.ndarray:
    """Indices of at most `count` frames spread over viewing directions: frames are binned by
    their palm normal (polar angle from the camera axis x azimuth) and taken round-robin from the
    bins, evenly in time within each, so a clip that lingers on one view does not dominate."""
    n = len(directions)
    if n <= count:
        return np.arange(n)
    polar = np.arccos(np.clip(-directions[:, 2], -1, 1))  # 0: palm faces the camera
    azimuth = np.arctan2(directions[:, 1], directions[:, 0])
    b = (np.minimum((polar / np.pi * bins_polar).astype(int), bins_polar - 1) * bins_azimuth
         + ((azimuth + np.pi) / (2 * np.pi) * bins_azimuth).astype(int) % bins_azimuth)
    # Bins in the order the clip first reaches them, so the choice does not hang on bin labels.
    queues = sorted((list(np.flatnonzero(b == k)) for k in np.unique(b)), key=lambda q: q[0])
    # Within a bin, take frames in an order that spreads over time: middle, then quarters, ...
    orders = [[q[i] for i in _spread_order(len(q))] for q in queues]
    chosen: list[int] = []
    while len(chosen) < count:
        for order in orders:
            if order and len(chosen) < count:
                chosen.append(order.pop(0))
    return np.sort(np.array(chosen))


def _spread_order(n: int) -> list[int]:
    """0..n-1 reordered so every prefix is spread out (bit-reversal-like)."""
    order, seen = [], set()
    step = n
    while len(order) < n:
        for i in range(step // 2, n, max(step, 1)):
            if i not in seen:
                seen.add(i)
                order.append(i)
        if step == 1:
            break
        step = max(step // 2, 1)
    return order + [i for i in range(n) if i not in seen]
