"""The `harp` command line: the outer layer over harp_track and avatar_builder."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    from demos import webcam
    from demos.default_clip import clip_camera, ensure_clip
    from demos.hand_poses import GESTURES, render_gestures
    from harp_track.stream import decode

    out = Path(args.out)
    start = time.perf_counter()
    picture = render_gestures(out, side="right")
    print(f"posed the open hand model ({', '.join(GESTURES)}): {picture}")
    video, truth = ensure_clip(out, args.frames)
    print(f"default clip (synthetic, with ground truth): {video}")
    stats = webcam.run(str(video), headless=True, out=out / "overlay.mp4", camera=clip_camera(truth),
                       poses=out / "poses.jsonl", loop=False)
    print(f"tracked {int(stats['frames'])} frames at {stats['fps']:.1f} FPS (overlay drawing included); "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in stats.items() if k not in ("frames", "fps")))
    gt = np.load(truth)
    errors_3d, errors_2d = [], []
    for line in (out / "poses.jsonl").read_text().splitlines():
        frame = decode(line)
        if frame["hands"]:
            hand, i = frame["hands"][0], frame["frame_index"]
            errors_3d.append(np.linalg.norm(np.array(hand["joints"]) - gt["joints"][i], axis=1).mean())
            errors_2d.append(np.linalg.norm(np.array(hand["keypoints_2d"]) - gt["keypoints_2d"][i], axis=1).mean())
    if errors_3d:
        print(f"against the ground truth: hand found in {len(errors_3d)}/{len(gt['joints'])} frames, "
              f"3D joint error {1000 * np.mean(errors_3d):.1f} mm (camera space, mean hand size), "
              f"2D {np.mean(errors_2d):.1f} px")
    if args.enroll_frames:
        _demo_enrollment(out / "avatar", args.enroll_frames)
    print(f"wrote {out / 'overlay.mp4'} and {out / 'poses.jsonl'} in {time.perf_counter() - start:.0f} s")
    return 0


def _demo_enrollment(out: Path, frames: int) -> None:
    """Enroll a synthetic subject (our own renders of a non-mean hand with a tattoo) with quick
    settings, so the demo shows the whole product in about a minute on a CPU."""
    import cv2

    from avatar_builder import BuildSettings, OptimizeSettings, build_avatar
    from harp_track.synthetic import make_enrollment_clip

    clip = make_enrollment_clip(frames, (256, 256), seed=0)
    folder = out.parent / "enroll_frames"
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip.frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    # The subject's true hand length, as a user would give it with --hand-length: one camera
    # cannot tell size from distance, and MediaPipe's guess is poor on renders.
    import torch

    from avatar_builder.coarse import ruler_length
    from harp_track import load_hand_model

    with torch.no_grad():
        length = ruler_length(load_hand_model(), torch.from_numpy(clip.shape)[None].float())
    settings = BuildSettings(max_views=24, crop_size=192, hand_length=length,
                             optimize=OptimizeSettings(view_updates=(30, 40, 15), texture_size=256))
    start = time.perf_counter()
    avatar = build_avatar(folder, out, camera=clip.camera, settings=settings)
    print(f"enrolled a synthetic {avatar.side} hand ({100 * length:.1f} cm long) from {frames} frames in "
          f"{time.perf_counter() - start:.0f} s (quick settings): {out} (avatar.glb, avatar.obj, report.png)")
    _demo_tracking_with_avatar(avatar, clip.shape)


def _demo_tracking_with_avatar(avatar, shape: np.ndarray, frames: int = 60) -> None:
    """Track the enrolled subject in a new clip with its avatar, with and without the appearance
    refinement, against the clip's ground truth."""
    from harp_track.synthetic import make_clip, tattoo_texture
    from harp_track.tracker import Tracker

    clip = make_clip(frames, (360, 640), seed=5, shape=shape, albedo=tattoo_texture(512))
    items = [(f, clip.camera, t) for f, t in zip(clip.frames, clip.timestamps)]
    for refine in (False, True):
        with Tracker(avatar=avatar, max_hands=1, refine=refine) as tracker:
            results, stamps = [], []
            for result in tracker.track(items):
                results.append(result)
                stamps.append(time.perf_counter())
        fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])  # from the first result: the landmark process starts first
        pairs = [(r.hands[0], i) for i, r in enumerate(results) if r.hands]
        error_3d = 1000 * np.mean([np.linalg.norm(h.joints - clip.joints[i], axis=1).mean() for h, i in pairs])
        error_2d = np.mean([np.linalg.norm(h.keypoints_2d - clip.keypoints_2d[i], axis=1).mean() for h, i in pairs])
        print(f"tracked the enrolled hand in a new clip {'with' if refine else 'without'} appearance refinement: "
              f"{len(pairs)}/{frames} frames, 3D joint error {error_3d:.1f} mm (camera space), 2D {error_2d:.1f} px, "
              f"{fps:.1f} FPS")


def _track(args: argparse.Namespace) -> int:
    from demos import webcam

    if not Path(args.video).is_file():
        raise SystemExit(f"no such video: {args.video}")
    stats = webcam.run(args.video, headless=True, out=Path(args.overlay) if args.overlay else None,
                       camera=webcam.parse_intrinsics(args.camera_intrinsics), poses=Path(args.out),
                       max_frames=args.max_frames, loop=False, mirrored=args.mirrored,
                       avatar=webcam.load_avatar(args.avatar), refine=not args.no_refine, device=args.device)
    print(json.dumps({k: round(v, 2) for k, v in stats.items()}))
    return 0


def _webcam(args: argparse.Namespace) -> int:
    from demos import webcam

    stats = webcam.run(args.video if args.video else args.camera, args.headless, args.out,
                       webcam.parse_intrinsics(args.camera_intrinsics), args.max_frames, args.poses,
                       mirrored=args.mirrored, avatar=webcam.load_avatar(args.avatar), refine=not args.no_refine,
                       device=args.device)
    print(json.dumps({k: round(v, 2) for k, v in stats.items()}))
    return 0


def _export(args: argparse.Namespace) -> int:
    from demos.webcam import load_avatar

    avatar = load_avatar(args.avatar)
    written = avatar.export(Path(args.out or args.avatar))
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from demos import enroll

    return enroll.run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harp", description="harp_track: personalized hand tracking")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the SDK chooses (device, backend)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the main job on the embedded default: no camera, no downloads")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--frames", type=int, default=90, help="length of the synthetic clip")
    demo.add_argument("--enroll-frames", type=int, default=48,
                      help="frames of the synthetic enrollment clip (0 skips enrollment)")
    demo.set_defaults(run=_demo)

    track = commands.add_parser("track", help="track the hands in a video file")
    track.add_argument("video")
    track.add_argument("--out", required=True, help="pose messages, one JSON per line (.jsonl)")
    track.add_argument("--overlay", help="also write the video with the tracked hands drawn on it")
    track.add_argument("--camera-intrinsics", help="fx,fy,cx,cy in pixels (default: 60-degree field of view)")
    track.add_argument("--mirrored", action="store_true", help="the video is a mirrored selfie view")
    track.add_argument("--max-frames", type=int, help="stop after this many frames")
    track.add_argument("--avatar", help="your avatar folder (from `harp enroll`): track your own hand, true size")
    track.add_argument("--no-refine", action="store_true",
                       help="with --avatar: track from the landmarks alone (no appearance refinement)")
    from demos.webcam import add_arguments, add_device_argument

    add_device_argument(track)
    track.set_defaults(run=_track)

    export = commands.add_parser("export", help="write an avatar as glTF 2.0 (.glb) and OBJ/MTL with its textures")
    export.add_argument("avatar", help="the avatar folder")
    export.add_argument("--out", help="output folder (default: the avatar folder)")
    export.set_defaults(run=_export)

    webcam = commands.add_parser("webcam", help="the live demo app (window, or --headless --out)")
    add_arguments(webcam)
    webcam.set_defaults(run=_webcam)

    from demos.enroll import add_arguments as add_enroll_arguments

    enroll = commands.add_parser("enroll", help="record your hand once and build your avatar from it",
                                 description="Record your hand from every side (guided, in a window) or take a "
                                 "video file, keep the sharp frames, then build your avatar from them.")
    add_enroll_arguments(enroll)
    enroll.set_defaults(run=_enroll)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
