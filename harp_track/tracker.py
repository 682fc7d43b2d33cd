"""The streaming tracker: the public entry point for AR engines.

Per frame: landmarks (MediaPipe or its ONNX port) -> a fit of the hand model to them (metric pose
in camera space) -> with an avatar, the appearance-consistency refinement (the avatar rendered
into the frame and the pose adjusted until it lines up) -> temporal filtering -> joints,
keypoints, mesh and model parameters. `Tracker.track` pipelines a stream: the landmarks of the
next frame run in a second process while the current one is fitted and refined.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Iterable, Iterator, Sequence

import numpy as np
import threadpoolctl
import torch

from .avatar import Avatar
from .camera import Camera
from .device import resolve_device
from .fit import HandFit, LandmarkFitter
from .fit.filtering import HandPoseFilter, PoseFilterSettings
from .fit.landmark_detail import LandmarkDetail, shift_in_image
from .fit.refine import AppearanceRefiner, RefineSettings
from .hand import HandModel, load_hand_model
from .landmarks import BACKENDS, HandLandmarks, create_detector, onnx_offers_cuda
from .landmarks.base import HANDEDNESS, TimestampCheck
from .landmarks.worker import DetectorProcess
from .result import TrackedHand, TrackingResult

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Track:
    """What the tracker keeps of one hand between frames."""

    track_id: int
    fit: HandFit  # the raw fit, which warm-starts the next frame (the filtered one would lag)
    filter: HandPoseFilter
    detail: LandmarkDetail | None
    last_frame: int
    landmarks: np.ndarray  # (21, 2) pixels, last frame's, to follow the hand when its label flips


class Tracker:
    """Tracks up to `max_hands` hands in a stream of frames.

    avatar: the user's `Avatar` (from enrollment): its personalized hand (true size, so metric
    depth is right) is fitted, mirrored for the other hand; hand_model and hand_shape are then
    not used. hand_model: a right-hand `HandModel` (default: the open model); left hands use its
    mirror. hand_shape: (1, K) shape coefficients of the user's hand; None uses the model's mean
    hand, so metric depth is then only as right as the mean size is for this user (results say
    `hand_size_assumed`). landmarks: "auto" (default): MediaPipe's landmark model on ONNX Runtime,
    each hand's crop also run mirrored and the two averaged (`OnnxDetector(flip_average=True)`:
    measured on real video, 11% less landmark jitter and slightly lower 2D error, for a second
    inference of about 8 ms on a 2-core CPU); "onnx": that model once a crop, a faithful port of
    MediaPipe's graph; "mediapipe": MediaPipe's own solution.
    mirrored: True for selfie views (handedness is then reported as the user sees it).
    smoothing: temporal filter settings, or None to switch filtering off.
    refine: with an avatar, correct each landmark fit so the rendered avatar lines up with the
    frame (`fit.refine`); False tracks from the landmarks alone. Without an avatar there is
    nothing to render and no refinement. refine_settings: its `RefineSettings`.
    device: "auto", "cpu" or "cuda": where the refinement renders the avatar ("auto": on the CPU,
    which is faster at its small crop, unless its settings ask for nvdiffrast; `refinement_device`).
    On CUDA ("cuda", or "auto" where torch sees it) the ONNX landmark model runs there when
    onnxruntime offers its CUDA provider (`pip install onnxruntime-gpu`), else on the CPU, which
    costs speed, not results. The landmark fit's small solves, the refinement's crop and
    Gauss-Newton steps and the output mesh stay on the CPU, where they are cheaper than kernel
    launches.
    torch_threads: the per-frame tensors and matrices are tiny, so thread hand-offs cost more than
    they save, and they fight MediaPipe's own threads (measured here: the fit took 219 ms a frame
    with 2 torch threads, 35 ms with 1; with OpenBLAS's two threads and the landmarks in a second
    process, 15 ms instead of 4). The tracker therefore sets the process-wide thread count of
    torch's intra-op pool and of numpy's BLAS to this; None leaves them alone.
    """

    def __init__(self, hand_model: HandModel | None = None, hand_shape: torch.Tensor | None = None,
                 avatar: Avatar | None = None, landmarks: str = "auto", max_hands: int = 2, mirrored: bool = False,
                 smoothing: PoseFilterSettings | None = PoseFilterSettings(), refine: bool = True,
                 refine_settings: RefineSettings | None = None, device: str = "auto",
                 torch_threads: int | None = 1):
        if landmarks not in BACKENDS:
            raise ValueError(f"landmarks must be one of {BACKENDS}, got {landmarks!r}")
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
            threadpoolctl.threadpool_limits(limits=torch_threads, user_api="blas")
        if avatar is not None:
            hand_model, hand_shape = avatar.for_side("right").hand_model(), None
        right = hand_model or load_hand_model()
        if right.side != "right":
            raise ValueError("pass the right-hand model; the tracker mirrors it for left hands")
        if hand_shape is not None and tuple(hand_shape.shape) != (1, right.num_shape):
            raise ValueError(f"hand_shape must be (1, {right.num_shape}), got {tuple(hand_shape.shape)}")
        # Keyed by the handedness the tracker reports. A selfie view shows each hand as its mirror
        # image, so the hand the user calls right looks like a left hand: it is fitted with the
        # left model, and its joints then project onto the mirrored image the user sees.
        left = right.mirrored()
        self.models = {"right": left, "left": right} if mirrored else {"right": right, "left": left}
        self.hand_shape = hand_shape
        self.avatar = avatar
        self.hand_size_known = avatar is not None or hand_shape is not None
        self._fitters = {side: LandmarkFitter(model, hand_shape) for side, model in self.models.items()}
        self.device = refinement_device(device, (refine_settings or RefineSettings()).render_backend)
        # The avatar of each reported side is the one of the model fitted to it (see above).
        self._refiners = {side: AppearanceRefiner(avatar.for_side(model.side), self._fitters[side], refine_settings,
                                                  self.device)
                          for side, model in self.models.items()} if avatar is not None and refine else {}
        cuda = resolve_device(device).type == "cuda"
        landmark_device = "cuda" if cuda and onnx_offers_cuda() else "cpu"
        if cuda and landmark_device == "cpu" and landmarks != "mediapipe":
            log.warning("tracker: onnxruntime has no CUDA provider (pip install onnxruntime-gpu); "
                        "the landmark model runs on the CPU")
        self._detector_options = dict(backend="onnx" if landmarks == "auto" else landmarks, max_hands=max_hands,
                                      mirrored=mirrored, device=landmark_device, flip_average=landmarks == "auto")
        self._detector = create_detector(**self._detector_options)
        self._smoothing = smoothing
        self._tracks: dict[str, _Track] = {}
        self._timestamps = TimestampCheck()  # for every path in, process_landmarks too
        self._frame_index = 0
        self._next_track_id = 1
        log.info("tracker: %s landmarks (%s), hand size %s, appearance refinement %s", landmarks,
                 landmark_device, "known" if self.hand_size_known else "assumed (the model's mean hand)",
                 f"on ({self.device})" if self._refiners else "off")

    def process(self, image_rgb: np.ndarray, camera: Camera | None = None,
                timestamp: float | None = None) -> TrackingResult:
        """Track the hands in one H x W x 3 uint8 RGB frame.

        camera: its intrinsics (may change every frame); None assumes a 60-degree horizontal field
        of view. timestamp: seconds (increasing); None uses the wall clock, right for live input.
        """
        image_rgb, camera, t = self._checked_frame(image_rgb, camera, timestamp)
        start = time.perf_counter()
        detections = self._detector.detect(image_rgb, t)
        return self._update(image_rgb, camera, t, detections, 1000 * (time.perf_counter() - start))

    def process_landmarks(self, image_rgb: np.ndarray, landmarks: Sequence[HandLandmarks],
                          camera: Camera | None = None, timestamp: float | None = None) -> TrackingResult:
        """Track the hands of one frame from landmarks found elsewhere: an engine's own MediaPipe
        graph, or landmarks saved from an earlier run (to try other filter or refinement settings
        on them without running the landmark model again). The same fit, refinement and filter as
        `process`, which it may alternate with on one stream; the tracker's own landmark model is
        not run. image_rgb: the frame (its size and, with an avatar, the refinement's pixels);
        landmarks: `HandLandmarks` in its pixels, most confident first; camera, timestamp: as
        `process`."""
        if isinstance(landmarks, HandLandmarks):
            raise ValueError("landmarks must be a list of HandLandmarks (one per hand), got a single one")
        for det in landmarks:
            _check_landmarks(det)
        image_rgb, camera, t = self._checked_frame(image_rgb, camera, timestamp)
        return self._update(image_rgb, camera, t, list(landmarks), 0.0)

    def track(self, frames: Iterable[np.ndarray | tuple]) -> Iterator[TrackingResult]:
        """Track a stream, pipelined: the landmarks of frame t + 1 run in a second process
        (`landmarks.worker`) while frame t is fitted and refined. Same results as calling `process`
        on every frame. frames: images, or (image, camera, timestamp) tuples. The tracks carry on
        across `track` and `process` calls. `timings["landmarks"]` is then the wait for them. The
        landmark process is `sys.executable`; where that is not a Python interpreter (some
        embedding hosts), use `process`."""
        def checked(item):
            return self._checked_frame(*(item if isinstance(item, tuple) else (item, None, None)))

        frames = iter(frames)
        with DetectorProcess(**self._detector_options) as worker:
            queued = []  # checked frames submitted to the worker, oldest first

            def submit_next() -> None:
                item = next(frames, None)
                if item is not None:
                    queued.append(checked(item))
                    worker.submit(queued[-1][0], queued[-1][2])

            submit_next()
            submit_next()  # one frame in flight while another is fitted
            while queued:
                start = time.perf_counter()
                detections = worker.result()
                waited_ms = 1000 * (time.perf_counter() - start)
                image, camera, t = queued.pop(0)
                submit_next()
                # The landmarks' own time is hidden behind the last frame's work: what is left is
                # the wait for them.
                yield self._update(image, camera, t, detections, waited_ms)

    def _checked_frame(self, image_rgb: np.ndarray, camera: Camera | None,
                       timestamp: float | None) -> tuple[np.ndarray, Camera, float]:
        """The frame, its camera (given or assumed) and its time, after refusing a frame that is not
        an RGB image, a camera that is not a `Camera`, or a timestamp that is not finite or does
        not increase (the filter would turn either into NaN poses or a reset)."""
        if not isinstance(image_rgb, np.ndarray) or image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 \
                or image_rgb.shape[2] != 3:
            desc = (f"{image_rgb.dtype} array of shape {image_rgb.shape}" if isinstance(image_rgb, np.ndarray)
                    else type(image_rgb).__name__)
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got a {desc}")
        height, width = image_rgb.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"the image is empty: shape {image_rgb.shape}")
        if camera is not None and not isinstance(camera, Camera):
            raise TypeError(f"camera must be a harp_track.Camera (Camera(fx, fy, cx, cy), pixels) or None, "
                            f"got {type(camera).__name__}")
        camera = camera or Camera.from_fov(width, height)
        t = time.monotonic() if timestamp is None else float(timestamp)
        self._timestamps(t)
        return image_rgb, camera, t

    def _update(self, image_rgb: np.ndarray, camera: Camera, t: float, detections: list[HandLandmarks],
                landmark_ms: float) -> TrackingResult:
        """Fit, refine and filter this frame's detections, and advance the tracks."""
        height, width = image_rgb.shape[:2]
        timings: dict[str, float] = {"landmarks": landmark_ms}
        hands, seen = [], set()
        fit_ms = refine_ms = filter_ms = mesh_ms = 0.0
        for det in self._distinct(detections):
            side = self._side_of(det)
            if side in seen:  # two hands of one side: keep the first (most confident)
                continue
            seen.add(side)
            start = time.perf_counter()
            track = self._tracks.get(side)
            if track is not None and track.last_frame != self._frame_index - 1:
                track = None  # lost for a while: start afresh rather than from a stale pose
            previous = track.fit if track else None
            hand_xyz = det.hand_xyz()
            fit = self._fitters[side].fit(det.image_xy, hand_xyz, camera, previous=previous)
            landmark_fit_2d = camera.project(fit.keypoints.double().numpy())  # the detail is measured on it
            fit_ms += 1000 * (time.perf_counter() - start)
            agreement, fit_2d = None, landmark_fit_2d
            if side in self._refiners:
                start = time.perf_counter()
                refined = self._refiners[side].refine(image_rgb, camera, fit, det.image_xy, hand_xyz, previous,
                                                      1.0 if det.score is None else float(det.score))
                fit, agreement = refined.fit, refined.agreement
                fit_2d = camera.project(fit.keypoints.double().numpy())
                refine_ms += 1000 * (time.perf_counter() - start)
            start = time.perf_counter()
            if track is None:
                detail_time = self._smoothing and self._smoothing.detail_time_constant
                track = _Track(self._next_track_id, fit, HandPoseFilter(self._smoothing),
                               LandmarkDetail(detail_time) if detail_time else None, self._frame_index, det.image_xy)
                self._next_track_id += 1
            track.fit, track.last_frame, track.landmarks = fit, self._frame_index, det.image_xy
            self._tracks[side] = track
            smoothed = self._smooth(track, side, fit, fit_2d, camera, t) if self._smoothing is not None else fit
            detail = track.detail(det.image_xy, landmark_fit_2d, t) if track.detail else None
            filter_ms += 1000 * (time.perf_counter() - start)
            start = time.perf_counter()
            hands.append(self._output(side, det, smoothed, detail, camera, track.track_id, agreement))
            mesh_ms += 1000 * (time.perf_counter() - start)
        timings.update(fit=fit_ms, refine=refine_ms, filter=filter_ms, mesh=mesh_ms)
        for side in set(self._tracks) - seen:
            del self._tracks[side]
        result = TrackingResult(hands=hands, camera=camera, timestamp=t, frame_index=self._frame_index,
                                image_size=(height, width), hand_size_assumed=not self.hand_size_known,
                                timings=timings)
        self._frame_index += 1
        return result

    def _smooth(self, track: _Track, side: str, fit: HandFit, fit_2d: np.ndarray, camera: Camera,
                t: float) -> HandFit:
        """The filtered fit, pulled back towards this frame's fit (whose keypoints project to
        fit_2d, (21, 2) pixels) where it trails it by more than `max_lag` of the hand's image size
        (a fast move between sparse frames), so smoothing never shows as more lag than that."""
        smoothed = track.filter(fit, t)
        smooth_2d = camera.project(self._fitters[side].keypoints(smoothed))
        gap = np.linalg.norm(smooth_2d - fit_2d, axis=1).mean()
        allowed = self._smoothing.max_lag * np.linalg.norm(fit_2d.max(0) - fit_2d.min(0))
        if gap > allowed:
            smoothed = track.filter.pull_towards(smoothed, fit, 1.0 - allowed / gap)
        return smoothed

    def _distinct(self, detections: list[HandLandmarks]) -> list[HandLandmarks]:
        """Detections in order of how well they continue a track, dropping any that overlap one
        already kept: MediaPipe sometimes reports a second, smaller copy of the same hand."""
        def distance_to_tracks(det: HandLandmarks) -> float:
            gaps = [np.linalg.norm(det.image_xy - t.landmarks, axis=1).mean() for t in self._tracks.values()
                    if t.last_frame == self._frame_index - 1]
            return min(gaps, default=np.inf)

        kept: list[HandLandmarks] = []
        for det in sorted(detections, key=distance_to_tracks):
            if all(_box_overlap(det.image_xy, other.image_xy) < 0.3 for other in kept):
                kept.append(det)
        return kept

    def _side_of(self, det: HandLandmarks) -> str:
        """MediaPipe's label, unless the hand continues a track of the other side: its label
        flickers on some frames (seen on synthetic clips), and a hand does not change sides."""
        other = "left" if det.handedness == "right" else "right"
        track = self._tracks.get(other)
        if track is None or det.handedness in self._tracks or track.last_frame != self._frame_index - 1:
            return det.handedness
        extent = float(np.linalg.norm(track.landmarks.max(0) - track.landmarks.min(0)))
        moved = float(np.linalg.norm(det.image_xy - track.landmarks, axis=1).mean())
        return other if moved < 0.5 * extent else det.handedness

    def _output(self, side: str, det: HandLandmarks, fit: HandFit, detail: np.ndarray | None, camera: Camera,
                track_id: int, agreement: float | None) -> TrackedHand:
        """detail: (21, 2) pixels, the smoothed landmark offsets the joints take on (`LandmarkDetail`)."""
        model = self.models[side]
        inputs = self._fitters[side].model_inputs(fit)
        joints, vertices = self._fitters[side].posed(fit)
        if detail is not None:
            joints = shift_in_image(joints, detail, camera)
        extent = float(np.linalg.norm(det.image_xy.max(0) - det.image_xy.min(0))) or 1.0
        # The landmark score, lowered when the model cannot reproduce the landmarks, and when the
        # frame does not show the avatar where the pose puts it (occlusion, blur, a wrong pose).
        score = 1.0 if det.score is None else float(det.score)
        confidence = score * float(np.exp(-fit.reprojection_px / (0.1 * extent)))
        if agreement is not None:
            confidence *= agreement
        shape = inputs["shape"][0] if inputs["shape"] is not None else torch.zeros(model.num_shape)
        return TrackedHand(
            handedness=side,
            joints=joints.astype(np.float32),
            keypoints_2d=camera.project(joints).astype(np.float32),
            vertices=vertices.astype(np.float32),
            confidence=confidence,
            global_orient=inputs["global_orient"][0].numpy().astype(np.float32),
            pose=inputs["pose"][0].numpy().astype(np.float32),
            shape=shape.numpy().astype(np.float32),
            transl=inputs["transl"][0].numpy().astype(np.float32),
            track_id=track_id,
            appearance_agreement=agreement,
        )

    def reset(self) -> None:
        """Forget all tracks (e.g. on a scene cut); the next timestamp may start afresh."""
        self._tracks.clear()
        self._timestamps = TimestampCheck()
        self._detector.reset()

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_landmarks(det: object) -> None:
    """ValueError naming what is wrong with a `HandLandmarks` handed to the tracker."""
    if not isinstance(det, HandLandmarks):
        raise ValueError(f"landmarks must be HandLandmarks, got {type(det).__name__}")
    for name, shape in (("image_xy", (21, 2)), ("image_z", (21,)), ("world_xyz", (21, 3))):
        value = np.asarray(getattr(det, name))
        if value.shape != shape or not np.isfinite(value).all():
            raise ValueError(f"HandLandmarks.{name} must be finite with shape {shape}, got shape {value.shape}")
    if det.handedness not in HANDEDNESS:
        raise ValueError(f"HandLandmarks.handedness must be one of {HANDEDNESS}, got {det.handedness!r}")


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box of two landmark sets' bounding boxes (0..1)."""
    lo, hi = np.maximum(a.min(0), b.min(0)), np.minimum(a.max(0), b.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    smaller = min(float(np.prod(np.ptp(a, 0))), float(np.prod(np.ptp(b, 0))))
    return inter / smaller if smaller > 0 else 0.0


def refinement_device(device: str, render_backend: str) -> torch.device:
    """Where the appearance refinement renders, for the tracker's `device` ("auto" | "cpu" |
    "cuda") and the refinement's render backend: "auto" renders on the CPU unless nvdiffrast
    (CUDA only) is asked for. One hand's 96-pixel crop is too little work for a GPU, whose kernel
    launches cost more than the CPU's arithmetic: on an H200 machine the refinement took 13-17 ms
    a frame with nvdiffrast on CUDA and 28-32 ms with the torch renderer there, against 11-16 ms
    with that machine's CPU (docs/benchmarks.md, "GPU path"; on an H100 machine earlier, 20 and
    24-36 against 15-18)."""
    resolved = resolve_device(device)
    if device == "auto" and render_backend != "nvdiffrast":
        return torch.device("cpu")
    return resolved
