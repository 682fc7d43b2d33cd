"""The one-time enrollment: record the user's hand from every side, then build their avatar.

    harp enroll --camera 0 --out avatars/alice          # guided, in a window (space: finish, q: abort)
    harp enroll --video clip.mp4 --out avatars/alice    # from a file: coverage summary, then build
    harp enroll --video clip.mp4 --out avatars/alice --record-only   # keep the clip, build later

Every frame is tracked; a frame is kept when it shows the enrolled hand sharply. Kept frames go
to `<out>/enroll_clip.mp4` (unmirrored), which is what the avatar builder then reconstructs from.
Coverage counts kept frames per view of the hand (which side faces the camera, tilts, spread and
closed fingers, a still moment); the window's panel asks for the views still missing.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from demos.webcam import open_source, parse_intrinsics
from harp_track.camera import Camera
from harp_track.device import DEVICES
from harp_track.keypoints import palm_normal
from harp_track.result import TrackedHand
from harp_track.tracker import Tracker
from harp_track.visualize import draw_skeleton

CLIP_NAME = "enroll_clip.mp4"
WINDOW = "harp enroll"
DEFAULT_CAMERA_SECONDS = 60.0

# Views by the palm normal's direction from the camera's line of sight: six yaw sectors of 60
# degrees named by the side the camera sees and where it faces, then two tilt caps.
YAW_BINS = ("palm", "palm facing right", "back facing left", "back", "back facing right", "palm facing left")
TILT_BINS = ("facing up", "facing down")
TILT_DEGREES = 40.0  # beyond this pitch the yaw sector is ill-defined: the hand is seen edge-on from above/below
SPREAD_DEGREES = 45.0  # index-little abduction; the open model's flat hand measures ~30, its spread gesture ~70
CLOSED_DEGREES = 28.0
CURLED_STRAIGHTNESS = 0.75  # chord / length of the fingers: ~0.99 extended, ~0.5 in a fist
STILL_SPEED = 0.15  # hand sizes per second of 2D keypoint motion; a resting hand measures 0.01-0.1
BINS = YAW_BINS + TILT_BINS + ("spread", "closed", "still")


@dataclasses.dataclass(frozen=True)
class Step:
    """One instruction of the guide and the bins it fills."""

    text: str
    bins: tuple[str, ...]


STEPS = (
    Step("Show your palm, then tilt it up and down", ("palm",) + TILT_BINS),
    Step("Slowly turn to the back of your hand, and back again", YAW_BINS[1:]),
    Step("Spread your fingers wide, then close them", ("spread", "closed")),
    Step("Hold still for a moment", ("still",)),
)


def palm_orientation(joints: np.ndarray, handedness: str) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the palm normal seen along the line of sight to the palm.

    joints: (21, 3) camera space. Yaw 0 is the palm facing the camera, +-180 the back; positive
    yaw turns the palm towards image right. Positive pitch: the palm faces up. The line of sight,
    not the optical axis, so a hand at the edge of a wide-angle frame is judged as it is seen."""
    normal = palm_normal(joints, handedness)
    forward = joints[[0, 5, 9, 13, 17]].mean(0)
    forward = forward / np.linalg.norm(forward)
    right = np.cross((0.0, 1.0, 0.0), forward)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    x, y, z = normal @ right, normal @ down, normal @ forward
    return math.degrees(math.atan2(x, -z)), math.degrees(math.atan2(-y, math.hypot(x, z)))


def orientation_bin(yaw: float, pitch: float) -> str:
    """The view bin of a palm orientation (degrees, as `palm_orientation` gives them)."""
    if abs(pitch) > TILT_DEGREES:
        return TILT_BINS[0] if pitch > 0 else TILT_BINS[1]
    return YAW_BINS[round(yaw / 60.0) % 6]


def finger_bin(joints: np.ndarray) -> str | None:
    """The finger bin of (21, 3) joints: "spread", "closed" (together, or curled) or None (in between)."""
    normal = palm_normal(joints, "right")  # only the plane matters here, not which way it faces

    def in_palm(a: int, b: int) -> np.ndarray:
        v = joints[b] - joints[a]
        v = v - normal * (v @ normal)
        return v / (np.linalg.norm(v) + 1e-12)

    # Abduction: the angle between the index and little proximal phalanges within the palm plane.
    spread = math.degrees(math.acos(float(np.clip(in_palm(5, 6) @ in_palm(17, 18), -1.0, 1.0))))
    chains = [joints[[m, m + 1, m + 2, m + 3]] for m in (5, 9, 13, 17)]
    straightness = np.mean([np.linalg.norm(c[3] - c[0]) / np.linalg.norm(np.diff(c, axis=0), axis=1).sum()
                            for c in chains])
    if straightness < CURLED_STRAIGHTNESS or spread <= CLOSED_DEGREES:
        return "closed"
    return "spread" if spread >= SPREAD_DEGREES else None


class CoverageTracker:
    """Counts kept frames per view bin; a bin is full at `frames_per_bin` frames."""

    def __init__(self, frames_per_bin: int = 6) -> None:
        self.frames_per_bin = frames_per_bin
        self.counts: dict[str, int] = dict.fromkeys(BINS, 0)
        self.current: tuple[str, ...] = ()  # the bins of the latest frame, for the display
        self._previous: tuple[int, float, np.ndarray] | None = None  # track id, time, keypoints

    def update(self, hand: TrackedHand, timestamp: float) -> bool:
        """Count one kept frame of `hand` (timestamp in seconds); True when it filled a bin that
        was not full yet."""
        bins = [orientation_bin(*palm_orientation(hand.joints, hand.handedness))]
        fingers = finger_bin(hand.joints)
        if fingers:
            bins.append(fingers)
        keypoints = hand.keypoints_2d
        if self._previous is not None and self._previous[0] == hand.track_id and timestamp > self._previous[1]:
            size = float(np.ptp(keypoints, axis=0).max()) or 1.0
            motion = float(np.linalg.norm(keypoints - self._previous[2], axis=1).mean())
            if motion / size / (timestamp - self._previous[1]) < STILL_SPEED:
                bins.append("still")
        self._previous = (hand.track_id, timestamp, keypoints)
        self.current = tuple(bins)
        added = any(self.counts[b] < self.frames_per_bin for b in bins)
        for b in bins:
            self.counts[b] += 1
        return added

    def fill(self, name: str) -> float:
        """How full one bin is, 0..1."""
        return min(self.counts[name] / self.frames_per_bin, 1.0)

    def coverage(self) -> float:
        """The mean fill over all bins, 0..1."""
        return sum(self.fill(b) for b in BINS) / len(BINS)

    def missing(self) -> list[str]:
        """Bins not full yet."""
        return [b for b in BINS if self.fill(b) < 1.0]


class Guide:
    """Which step the panel shows: the current one until its bins are full, then the next
    unfinished one. A step that makes no progress for `stall_seconds` gives way to the next
    unfinished one (cycling), so a view the user cannot reach never blocks the others."""

    def __init__(self, coverage: CoverageTracker, stall_seconds: float = 8.0) -> None:
        self.coverage = coverage
        self.stall_seconds = stall_seconds
        self._index = 0
        self._since: float | None = None  # when the shown step last made progress
        self._progress = 0.0

    def step(self, now: float) -> Step | None:
        """The step to show at time `now` (seconds), or None when coverage is complete."""
        unfinished = [i for i, s in enumerate(STEPS) if any(self.coverage.fill(b) < 1.0 for b in s.bins)]
        if not unfinished:
            return None
        progress = sum(self.coverage.fill(b) for b in STEPS[self._index].bins)
        if self._since is None or progress > self._progress:
            self._since, self._progress = now, progress
        if self._index not in unfinished or now - self._since > self.stall_seconds:
            self._index = next((i for i in unfinished if i > self._index), unfinished[0])
            self._since, self._progress = now, sum(self.coverage.fill(b) for b in STEPS[self._index].bins)
        return STEPS[self._index]


def hand_box(keypoints_2d: np.ndarray, width: int, height: int, margin: float = 0.2) -> tuple[int, int, int, int]:
    """A square (x0, y0, x1, y1) around the keypoints, `margin` of its size added on each side,
    clipped to the image."""
    lo, hi = keypoints_2d.min(0), keypoints_2d.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() * (0.5 + margin)
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def sharpness(image: np.ndarray, keypoints_2d: np.ndarray) -> float:
    """Variance of the Laplacian inside the hand's box, resampled to 128 x 128 so that the score
    does not depend on how large the hand appears. Measured here: 50-160 for sharp hands (real
    and rendered), 2-20 out of focus or blurred."""
    x0, y0, x1, y1 = hand_box(keypoints_2d, image.shape[1], image.shape[0])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    gray = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_BGR2GRAY)
    shrink = gray.shape[0] > 128
    gray = cv2.resize(gray, (128, 128), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


class SharpnessGate:
    """Accepts a frame when its sharpness reaches both an absolute floor and a fraction of the
    recent sharp frames' level: the floor drops defocus, the fraction drops motion blur on
    cameras whose noise alone would pass the floor."""

    def __init__(self, floor: float = 30.0, fraction: float = 0.4, window: int = 60) -> None:
        self.floor, self.fraction = floor, fraction
        self._recent: collections.deque[float] = collections.deque(maxlen=window)

    def __call__(self, score: float) -> bool:
        self._recent.append(score)
        return score >= max(self.floor, self.fraction * float(np.percentile(self._recent, 90)))


class VideoSource(Protocol):
    """What `record` reads: cv2.VideoCapture or anything with the same three methods."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclasses.dataclass
class Recording:
    """What `record` did. clip: the written video (None when no frame was kept, or when only
    analysing); kept_indices: the source frame index of each frame in it; dropped: counts by
    reason; stopped: why recording ended; camera: the intrinsics of the clip's (unmirrored)
    frames, None when unknown; side: the enrolled hand."""

    clip: Path | None
    kept_indices: list[int]
    frames: int
    dropped: dict[str, int]
    coverage: CoverageTracker
    stopped: str
    camera: Camera | None
    side: str | None


def record(capture: VideoSource, clip_path: Path | None, *, live: bool, camera: Camera | None = None,
           mirrored: bool = False, headless: bool = True, max_seconds: float | None = None,
           stop_when_complete: bool = True, coverage: CoverageTracker | None = None,
           gate: SharpnessGate | None = None, min_confidence: float = 0.5) -> Recording:
    """Track every frame of `capture`, keep the sharp frames of the enrolled hand (the first hand
    seen), write them to `clip_path` (None: analyse only) and count coverage.

    live: a camera (wall-clock time) rather than a file (frame time). camera: intrinsics of the
    frames as delivered. mirrored: frames arrive mirrored (selfie); they are unmirrored before
    tracking and writing, so the clip shows the hand's true geometry. headless: no window;
    otherwise space finishes, q or Esc aborts. Stops at the end of the input, after
    `max_seconds`, on complete coverage (if `stop_when_complete`) or on Ctrl-C. Releases `capture`."""
    coverage = coverage or CoverageTracker()
    gate = gate or SharpnessGate()
    guide = Guide(coverage)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    dropped = {"no hand": 0, "blurry": 0}
    kept: list[int] = []
    writer, side, clip_camera, stopped, index = None, None, camera, "end of input", 0
    tracker = Tracker()
    start = time.monotonic()
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            t = time.monotonic() - start if live else index / fps
            if max_seconds is not None and t > max_seconds:
                stopped = "time limit"
                break
            if mirrored:
                bgr = cv2.flip(bgr, 1)
            height, width = bgr.shape[:2]
            if index == 0 and mirrored and camera is not None:
                clip_camera = dataclasses.replace(camera, cx=width - camera.cx)
            result = tracker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), clip_camera, None if live else t)
            candidates = [h for h in result.hands if h.confidence >= min_confidence and side in (None, h.handedness)]
            hand = max(candidates, key=lambda h: h.confidence, default=None)
            added, status = False, "no hand"
            if hand is not None and not gate(sharpness(bgr, hand.keypoints_2d)):
                status = "blurry"
            elif hand is not None:
                status, side = "kept", hand.handedness
                added = coverage.update(hand, t)
                kept.append(index)
                if clip_path is not None:
                    if writer is None:
                        clip_path.parent.mkdir(parents=True, exist_ok=True)
                        writer = cv2.VideoWriter(str(clip_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                        if not writer.isOpened():
                            raise SystemExit(f"cannot write the clip {clip_path} (no mp4v encoder in this OpenCV?)")
                    writer.write(bgr)
            if status != "kept":
                dropped[status] += 1
            index += 1
            if not headless:
                key = _show(bgr, hand, status, added, coverage, guide.step(t), mirrored, len(kept))
                if key == ord(" "):
                    stopped = "finished by the user"
                    break
                if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    stopped = "aborted"
                    break
            if stop_when_complete and not coverage.missing():
                stopped = "coverage complete"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        tracker.close()
        capture.release()
        if writer is not None:
            writer.release()
        if not headless:
            cv2.destroyWindow(WINDOW)
    return Recording(clip=clip_path if writer is not None else None, kept_indices=kept, frames=index,
                     dropped=dropped, coverage=coverage, stopped=stopped, camera=clip_camera, side=side)


def _show(bgr: np.ndarray, hand: TrackedHand | None, status: str, added: bool, coverage: CoverageTracker,
          step: Step | None, mirrored: bool, kept: int) -> int:
    """Draw the guidance over one (unmirrored) frame, show it and return the key pressed (255: none)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if hand is not None:
        rgb = draw_skeleton(rgb, hand.keypoints_2d)
        x0, y0, x1, y1 = hand_box(hand.keypoints_2d, rgb.shape[1], rgb.shape[0])
        colour = (255, 70, 60) if status == "blurry" else (60, 220, 90) if added else (230, 230, 230)
        cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
    if mirrored:
        rgb = cv2.flip(rgb, 1)  # show the selfie view the user expects; text is drawn after the flip
    note = {"no hand": "no hand seen", "blurry": "too blurry: move a little slower"}.get(status, f"{kept} frames kept")
    panel = render_panel(rgb, coverage, step, f"{note}   space: finish   q: abort")
    cv2.imshow(WINDOW, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1) & 0xFF


def _mix(fill: float) -> tuple[int, int, int]:
    """Grey (empty) to green (full), RGB."""
    return tuple(int(round(a + (b - a) * fill)) for a, b in zip((90, 90, 90), (60, 220, 90)))


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, max_width: int | None = None) -> None:
    """White text with a dark outline, readable over any frame; shrunk to fit `max_width` pixels."""
    if max_width is not None:
        scale = min(scale, scale * max_width / cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0])
    thickness = 2 if scale > 0.9 else 1
    for colour, extra in (((0, 0, 0), 2), ((255, 255, 255), 0)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness + extra, cv2.LINE_AA)


def render_panel(frame: np.ndarray, coverage: CoverageTracker, step: Step | None, note: str = "") -> np.ndarray:
    """A copy of the H x W x 3 uint8 RGB `frame` with the guidance drawn on it: the instruction
    and a coverage bar in a strip at the bottom; at the top right, a top-down dial of the six
    sides (camera below it, so the palm sector is at the bottom) and chips for the other bins.
    Grey is empty, green full; the current frame's bins are outlined in white."""
    out = np.ascontiguousarray(frame).copy()
    height, width = out.shape[:2]
    unit = max(height / 480.0, 0.5)  # layout sizes are for a 480-line frame
    pad, strip, bar = int(10 * unit), int(90 * unit), int(8 * unit)
    top = height - strip
    out[top:] = (out[top:] * 0.35).astype(np.uint8)
    cv2.rectangle(out, (0, top), (width - 1, top + bar), (60, 60, 60), -1)
    cv2.rectangle(out, (0, top), (int(width * coverage.coverage()), top + bar), (60, 220, 90), -1)
    title = "Coverage complete" if step is None else f"{STEPS.index(step) + 1}/{len(STEPS)}  {step.text}"
    _text(out, title, (pad, top + bar + int(38 * unit)), 0.9 * unit, width - 2 * pad)
    _text(out, f"coverage {100 * coverage.coverage():3.0f}%   {note}", (pad, height - pad), 0.55 * unit,
          width - 2 * pad)

    chips = TILT_BINS + ("spread", "closed", "still")
    label = 0.45 * unit
    chip = int(16 * unit)
    label_width = max(cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, label, 1)[0][0] for n in chips)
    radius = int(50 * unit)
    column = max(2 * radius, chip + pad // 2 + label_width)  # the right-hand column holds dial and chips
    x = width - pad - column
    centre = (x + column // 2, pad + int(20 * unit) + radius)
    for k, name in enumerate(YAW_BINS):
        # Sector k is centred on yaw 60k; yaw 0 (palm to the camera) points down on screen, and
        # OpenCV's angles run clockwise on screen because y points down.
        angle = 90.0 - 60.0 * (k if k < 4 else k - 6)
        cv2.ellipse(out, centre, (radius, radius), 0, angle - 29, angle + 29, _mix(coverage.fill(name)), -1, cv2.LINE_AA)
        if name in coverage.current:
            cv2.ellipse(out, centre, (radius, radius), 0, angle - 29, angle + 29, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.circle(out, centre, radius // 3, (30, 30, 30), -1, cv2.LINE_AA)
    for text, y in (("back", centre[1] - radius - pad // 2), ("palm", centre[1] + radius + int(18 * unit))):
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, label, 1)[0][0]
        _text(out, text, (centre[0] - size // 2, y), label)
    y = centre[1] + radius + int(28 * unit)
    for name in chips:
        cv2.rectangle(out, (x, y), (x + chip, y + chip), _mix(coverage.fill(name)), -1)
        if name in coverage.current:
            cv2.rectangle(out, (x, y), (x + chip, y + chip), (255, 255, 255), 2)
        _text(out, name, (x + chip + pad // 2, y + chip - 2), label)
        y += chip + pad // 2
    return out


def summary(recording: Recording) -> str:
    """A few lines for the terminal: what was kept and dropped, and the fill of every bin."""
    kept = len(recording.kept_indices)
    drops = ", ".join(f"{n} {reason}" for reason, n in recording.dropped.items() if n) or "none"
    where = f" -> {recording.clip}" if recording.clip else ""
    lines = [f"kept {kept} of {recording.frames} frames (dropped: {drops}; stopped: {recording.stopped}){where}"]
    cov = recording.coverage
    hand = f"{recording.side} hand" if recording.side else "no hand kept"
    lines.append(f"{hand}, coverage {100 * cov.coverage():.0f}%:")
    for name in BINS:
        bar = "#" * round(10 * cov.fill(name))
        lines.append(f"  {name:<18} {bar:<10} {cov.counts[name]} frames")
    return "\n".join(lines)


def _advice(coverage: CoverageTracker) -> str:
    """The instructions of the steps whose bins are still missing."""
    missing = set(coverage.missing())
    return "; ".join(s.text.lower() for s in STEPS if missing & set(s.bins))


def _build_command(clip: Path, out: Path, camera: Camera | None) -> str:
    """The command that builds the avatar from a kept clip later."""
    intrinsics = f" --camera-intrinsics {camera.fx:g},{camera.fy:g},{camera.cx:g},{camera.cy:g}" if camera else ""
    return f"harp enroll --video {clip} --out {out}{intrinsics}"


def _build(clip: Path, out: Path, camera: Camera | None, device: str, hand_length: float | None = None) -> int:
    """Run the avatar builder on the clip; exit code 2 with its advice when the clip is unusable."""
    # The builder is heavy: only load it to build.
    from avatar_builder import BuildSettings, EnrollmentError, build_avatar

    try:
        build_avatar(clip, out_dir=out, camera=camera, device=device, progress=True,
                     settings=BuildSettings(hand_length=hand_length))
    except EnrollmentError as error:
        print(f"enrollment failed: {error}\nthe clip is kept: {clip}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nbuild interrupted; the clip is kept, continue with: {_build_command(clip, out, camera)}",
              file=sys.stderr)
        return 130
    print(f"avatar written to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """`harp enroll`: record (camera) or filter (video), summarise, then build unless told not to."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out must be a folder, and {out} is a file")
    if args.video is not None and not Path(args.video).is_file():
        raise SystemExit(f"no such video: {args.video}")
    camera = parse_intrinsics(args.camera_intrinsics)
    clip = out / CLIP_NAME
    reuse = args.video is not None and clip.exists() and Path(args.video).resolve() == clip.resolve()
    if clip.exists() and not reuse:
        raise SystemExit(f"{clip} exists from an earlier enrollment: build from it with "
                         f"`{_build_command(clip, out, None)}`, or move it away to record again")
    live = args.video is None
    camera_index = 0 if args.camera is None else args.camera
    max_seconds = args.max_seconds or (DEFAULT_CAMERA_SECONDS if live else None)
    if live:
        print(f"recording from camera {camera_index} for up to {max_seconds:.0f} s"
              + ("" if args.headless else ": follow the window (space: finish, q: abort)"))
    # A file is used whole (more views, more texture); a live recording ends once coverage is complete.
    recording = record(open_source(camera_index if live else args.video), None if reuse else clip, live=live,
                       camera=camera, mirrored=args.mirrored, headless=args.headless or not live,
                       max_seconds=max_seconds, stop_when_complete=live)
    print(summary(recording))
    source = clip if reuse else recording.clip
    if recording.stopped in ("aborted", "interrupted"):
        kept = f"; the clip is kept: {source}" if source else ""
        print(f"{recording.stopped}: not building{kept}", file=sys.stderr)
        return 1 if recording.stopped == "aborted" else 130
    if not recording.kept_indices:
        print("no usable frames: show one hand, well lit and in focus, filling about a third of the frame",
              file=sys.stderr)
        return 2
    if recording.coverage.coverage() < 0.5:
        print(f"warning: coverage is poor: the avatar will be guessed where views are missing. "
              f"For a better one, record again and {_advice(recording.coverage)}.", file=sys.stderr)
    if args.record_only:
        print(f"recorded; build later with: {_build_command(source, out, recording.camera)}")
        return 0
    return _build(source, out, recording.camera, args.device, args.hand_length)


def _positive_seconds(text: str) -> float:
    """argparse type: a duration in seconds, > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _hand_length(text: str) -> float:
    """argparse type: a hand length in metres that `BuildSettings` accepts (checked before a
    recording, not after it)."""
    from avatar_builder.build import BuildSettings

    try:
        length = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a length in metres (e.g. 0.19), got {text!r}") from None
    try:
        return BuildSettings(hand_length=length).hand_length
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    # No default here: argparse lets an explicit value equal to the default slip past the exclusion.
    source.add_argument("--camera", type=int, metavar="N", help="camera index (default 0)")
    source.add_argument("--video", metavar="PATH", help="enroll from this video file instead of a camera")
    parser.add_argument("--out", required=True, metavar="DIR", help="the avatar's folder (e.g. avatars/alice); "
                        f"the recording is kept there as {CLIP_NAME}")
    parser.add_argument("--headless", action="store_true", help="no window (a video file never opens one)")
    parser.add_argument("--max-seconds", type=_positive_seconds, metavar="S",
                        help=f"stop recording after this long (default: {DEFAULT_CAMERA_SECONDS:.0f} s for a camera, "
                             "the whole file for a video)")
    parser.add_argument("--mirrored", action="store_true",
                        help="the input is a mirrored selfie view (the clip is written unmirrored)")
    parser.add_argument("--camera-intrinsics", metavar="FX,FY,CX,CY", help="fx,fy,cx,cy in pixels of the input as delivered "
                        "(default: the builder assumes a 60-degree field of view)")
    parser.add_argument("--record-only", action="store_true", help="stop after writing the clip; build later")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the builder runs: auto, cpu or cuda (default auto)")
    parser.add_argument("--hand-length", type=_hand_length, metavar="METRES",
                        help="your hand, wrist crease to middle fingertip (e.g. 0.19): the avatar's true size; "
                        "without it MediaPipe's estimate is used")
