"""The webcam demo: live tracking with the skeleton and the shaded hand mesh drawn over the camera.

    python -m demos.webcam                       # camera 0, in a window (q or Esc quits)
    python -m demos.webcam --video clip.mp4      # a file, looped
    python -m demos.webcam --video clip.mp4 --headless --out overlay.mp4   # no screen needed
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from harp_track.avatar import Avatar, AvatarError
from harp_track.camera import Camera
from harp_track.device import DEVICES, resolve_device
from harp_track.overlay import OverlayRenderer
from harp_track.result import TrackingResult
from harp_track.stream import encode
from harp_track.tracker import Tracker


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def open_source(source: int | str) -> cv2.VideoCapture:
    """The camera (index) or video file, opened; one that cannot be opened stops the program."""
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        raise SystemExit(f"cannot open {'camera' if isinstance(source, int) else 'video'} {source!r}")
    return capture


def frames_from(capture: cv2.VideoCapture, live: bool, loop: bool) -> Iterator[tuple[np.ndarray, float | None]]:
    """RGB frames of an opened capture and their timestamps (seconds; None for a live camera,
    which uses the clock); it is released at the end."""
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    index, offset = 0, 0.0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                if live or not loop or index == 0:
                    return
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                offset += index / fps
                index = 0
                continue
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None if live else offset + index / fps
            index += 1
    finally:
        capture.release()


def annotate(frame: np.ndarray, result: TrackingResult, fps: float) -> None:
    """FPS and per-stage latency, top-left, in place."""
    lines = [f"{fps:5.1f} FPS  {len(result.hands)} hand(s)"]
    lines += [f"{stage}: {ms:5.1f} ms" for stage, ms in result.timings.items()]
    for i, text in enumerate(lines):
        y = 22 + 20 * i
        cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)


def run(source: int | str, headless: bool = False, out: Path | None = None, camera: Camera | None = None,
        max_frames: int | None = None, poses: Path | None = None, loop: bool = True,
        mirrored: bool = False, avatar: Avatar | None = None, refine: bool = True,
        device: str = "auto") -> dict[str, float]:
    """Track `source` (camera index or video path) and show or write the overlay; with `avatar`,
    the user's own hand is tracked (known size, and refined against its appearance unless
    `refine` is False) and drawn textured. device: the tracker's ("auto", "cpu" or "cuda").
    Returns mean per-stage milliseconds and the end-to-end FPS."""
    if headless and out is None and poses is None:
        raise SystemExit("--headless needs --out (the overlay video) or --poses to write to")
    if out is not None and (out.suffix.lower() not in VIDEO_SUFFIXES or out.is_dir()):
        raise SystemExit(f"the overlay video must be a file ending in one of {', '.join(VIDEO_SUFFIXES)}, got {out}")
    if poses is not None and poses.is_dir():
        raise SystemExit(f"the pose file {poses} is a folder: name a file (poses.jsonl)")
    if max_frames is not None and max_frames < 1:
        raise SystemExit(f"--max-frames must be at least 1, got {max_frames}")
    try:
        resolve_device(device)
    except ValueError as error:
        raise SystemExit(f"--device: {error}") from None
    # The input first: a source that cannot be read must not cost an earlier pose file.
    capture = open_source(source)
    tracker = Tracker(mirrored=mirrored, avatar=avatar, refine=refine, device=device)
    overlay = OverlayRenderer(tracker.models, avatar=avatar)
    if poses:
        poses.parent.mkdir(parents=True, exist_ok=True)
    writer, pose_file = None, poses.open("w") if poses else None
    recent = collections.deque(maxlen=30)
    totals: dict[str, float] = collections.defaultdict(float)
    count = 0
    pending: collections.deque = collections.deque()  # frames handed to the tracker, awaiting results

    def stream():
        for frame, timestamp in frames_from(capture, live=isinstance(source, int), loop=loop and not headless):
            pending.append(frame)
            yield frame, camera, timestamp

    # Pipelined: the landmarks of the next frame run while this one is fitted, refined and drawn.
    results = tracker.track(stream())
    first = last = None  # when the first result came (the landmark process starts before it)
    try:
        for result in results:
            if first is None:
                first = last = time.perf_counter()
            drawn = overlay.draw(pending.popleft(), result)
            now = time.perf_counter()
            recent.append(now - last)
            last = now
            annotate(drawn, result, len(recent) / sum(recent))
            for stage, ms in result.timings.items():
                totals[stage] += ms
            count += 1
            if pose_file:
                pose_file.write(json.dumps(encode(result)) + "\n")
            bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
            if out is not None:
                if writer is None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, bgr.shape[1::-1])
                    if not writer.isOpened():
                        raise SystemExit(f"cannot write the overlay video {out}")
                writer.write(bgr)
            if not headless:
                cv2.imshow("harp_track", bgr)
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
            if max_frames is not None and count >= max_frames:
                break
    finally:
        results.close()
        tracker.close()
        if writer is not None:
            writer.release()
        if pose_file:
            pose_file.close()
        if not headless:
            cv2.destroyAllWindows()
    stats = {stage: total / max(count, 1) for stage, total in totals.items()}
    stats["frames"] = count
    stats["fps"] = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return stats


def parse_intrinsics(text: str | None) -> Camera | None:
    """'fx,fy,cx,cy' in pixels -> Camera."""
    if text is None:
        return None
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
        return Camera(fx, fy, cx, cy)
    except ValueError as error:
        raise SystemExit(f"--camera-intrinsics wants fx,fy,cx,cy in pixels (fx, fy > 0), got {text!r}: "
                         f"{error}") from None


def load_avatar(folder: str | None) -> Avatar | None:
    """The avatar in `folder` (None: no avatar); a bad one stops the program with the reason."""
    if folder is None:
        return None
    try:
        return Avatar.load(folder)
    except AvatarError as exc:
        raise SystemExit(f"cannot use the avatar: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    parser.add_argument("--video", help="a video file instead of a camera (looped unless headless)")
    parser.add_argument("--headless", action="store_true", help="no window: write --out instead")
    parser.add_argument("--out", type=Path, help="write the overlay video here (.mp4)")
    parser.add_argument("--poses", type=Path, help="write one pose message (JSON) per frame here")
    parser.add_argument("--camera-intrinsics", help="fx,fy,cx,cy in pixels (default: 60-degree field of view)")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--mirrored", action="store_true", help="the input is a mirrored selfie view")
    parser.add_argument("--avatar", help="your avatar folder (from `harp enroll`): track and draw your own hand")
    parser.add_argument("--no-refine", action="store_true",
                        help="with --avatar: track from the landmarks alone (no appearance refinement)")
    add_device_argument(parser)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the refinement renders (default auto: the CPU, whose torch renderer beats "
                             "CUDA's at the refinement's small crop; cuda: the GPU, see README)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    stats = run(args.video if args.video else args.camera, args.headless, args.out,
                parse_intrinsics(args.camera_intrinsics), args.max_frames, args.poses, mirrored=args.mirrored,
                avatar=load_avatar(args.avatar), refine=not args.no_refine, device=args.device)
    print(" ".join(f"{k}={v:.1f}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
