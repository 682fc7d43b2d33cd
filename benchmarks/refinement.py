"""Appearance refinement benchmark: tracking with the user's avatar, three ways, on synthetic clips
with exact ground truth and on real frames; jitter; speed.

    python -m benchmarks.refinement [--work DIR] [--skip-real]

Three ways: MediaPipe alone (its image landmarks; its world landmarks for the aligned 3D errors;
for camera space, PnP of those against the image landmarks with the true intrinsics), our landmark
fit with the avatar's hand (`Tracker(avatar=..., refine=False)`) and the same plus the appearance
refinement (`refine=True`). Both trackers filter over time as shipped; the unfiltered rows show the
refinement alone.

Synthetic: the avatar benchmark's subject (a non-mean hand with a tattoo and darker nails) enrolls
from its turning clip (60 frames at 256², hand length given, as `benchmarks.avatar` builds it); it
is then tracked in 640x360 clips of other motions (`harp_track.synthetic.make_clip` with the
subject's shape and albedo): "steady light", and "changing light + occluder" (the light swings
across the hand while the exposure drifts by +-25%, and a dark bar crosses in front of the hand
for the middle third).
Real: avatars built from hgc_realworld frames 0-149 track frames 150-299: one at MediaPipe's
estimate of the hand's size, and one at the true size for each tracker (what `--hand-length` from
a ruler gives; here fitted to the ground truth of frames 0-149, once with the landmark fit's
joints and once with the refinement's, see `hgc_avatars`). The appearance refinement trusts the
avatar's size: it pins depth through the hand's apparent size. Jitter is the mean magnitude of
the second difference of each output over consecutive frames. Jitter on
hand_landmarker_test_video.mp4 uses the landmark fit's true-size hgc avatar: another person's
hand, so it measures how steady the refinement is, not how well it fits. Speed on `benchmarks.gpu`'s
clip (640x360, the hand found in every frame, its own avatar), so the CPU and GPU tables compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import harp_track as ht
from avatar_builder import BuildSettings, build_avatar
from avatar_builder.coarse import ruler_length
from benchmarks.avatar import HGC, write_frames
from benchmarks.timing import machine_description, markdown_table
from benchmarks.landmarks import read_video
from benchmarks.tracking import VIDEO, errors, load_hgc, pnp, second_difference
from harp_track.fit.filtering import PoseFilterSettings
from harp_track.landmarks import create_detector
from harp_track.synthetic import ENROLLMENT_SHAPE, clip_avatar, make_clip, make_enrollment_clip, tattoo_texture
from harp_track.tracker import Tracker

COLUMNS = ["method", "frames with a hand", "2D px", "root-aligned 3D mm", "Procrustes 3D mm",
           "camera-space 3D mm (mean)", "camera-space 3D mm (median)", "jitter 2D px/frame²",
           "jitter camera-space mm/frame²"]


def synthetic_avatar(work: Path) -> ht.Avatar:
    """The enrollment subject's avatar (reused from `work` when already built there)."""
    out = work / "synthetic_avatar"
    if (out / "avatar.json").is_file():
        return ht.Avatar.load(out)
    clip = make_enrollment_clip(120, (256, 256), seed=0, progress=True)
    folder = write_frames(work / "synthetic_frames", clip.frames[np.arange(0, 120, 2)])
    base = ht.load_hand_model(side=clip.side)
    length = ruler_length(base, torch.from_numpy(clip.shape)[None].float())
    return build_avatar(folder, out, camera=clip.camera, resume=False, settings=BuildSettings(hand_length=length))


def hgc_avatars(work: Path) -> dict[str, ht.Avatar]:
    """Avatars from hgc frames 0-149: at MediaPipe's estimate of the hand's size, and at the size
    the ground truth of those same frames gives each tracker: the least-squares scale about the
    camera centre between its joints (with the first avatar) and the true joints, as
    `benchmarks.tracking` fixes a known size. The landmark fit's depth follows the landmarks'
    keypoints and the refinement's the avatar's surface; the dataset's joints are annotated in
    its own convention (fingertips at the very tip), so the two sizes differ, and each tracker
    is compared at its own."""
    images, cameras, gt3, _ = load_hgc(150)
    folder = write_frames(work / "hgc_frames", np.stack(images))
    avatars = {}
    for name, sub, refine in (("MediaPipe's size", "hgc_avatar", None),
                              ("the landmark fit's true size", "hgc_avatar_true_size", False),
                              ("the refinement's true size", "hgc_avatar_refinement_size", True)):
        out = work / sub
        if not (out / "avatar.json").is_file():
            settings = BuildSettings()
            if refine is not None:
                first = avatars["MediaPipe's size"]
                with Tracker(avatar=first, max_hands=1, refine=refine, smoothing=None) as tracker:
                    pairs = [(r.hands[0].joints, gt3[i]) for i, r in enumerate(
                        tracker.track(zip(images, cameras, np.arange(len(images)) / 30.0))) if r.hands]
                scale = sum(float((p * g).sum()) for p, g in pairs) / sum(float((p * p).sum()) for p, _ in pairs)
                base = ht.load_hand_model(side=first.side)
                length = scale * ruler_length(base, torch.from_numpy(first.shape)[None].float())
                settings = BuildSettings(hand_length=length)
            build_avatar(folder, out, camera=cameras, resume=False, settings=settings)
        avatars[name] = ht.Avatar.load(out)
    return avatars


def three_ways(avatar: ht.Avatar, images, cameras, gt3, gt2, fps: float = 30.0,
               with_mediapipe: bool = True, label: str = "") -> list[list]:
    """Rows of COLUMNS for MediaPipe alone and our tracker without and with refinement."""
    outputs: dict[str, list] = {}  # per method, per frame: (joints (21, 3) or None, keypoints_2d) or None
    if with_mediapipe:
        detector = create_detector("mediapipe", max_hands=1)
        found = [detector.detect(image, i / fps) for i, image in enumerate(images)]
        detector.close()
        outputs["MediaPipe alone (camera space: + PnP)"] = [
            (pnp(d[0].world_xyz, d[0].image_xy, camera), d[0].image_xy, d[0].world_xyz) if d else None
            for d, camera in zip(found, cameras)]
    for smoothing, suffix in ((PoseFilterSettings(), ""), (None, ", no filter")):
        for refine in (False, True):
            name = ("landmark fit + refinement" if refine else "landmark fit") + label + suffix
            with Tracker(avatar=avatar, max_hands=1, refine=refine, smoothing=smoothing) as tracker:
                outputs[name] = [(r.hands[0].joints, r.hands[0].keypoints_2d, r.hands[0].joints) if r.hands else None
                                 for r in tracker.track(zip(images, cameras, np.arange(len(images)) / fps))]
    rows = []
    for name, series in outputs.items():
        per_frame = []
        for i, out in enumerate(series):
            if out is not None:
                placed, keypoints_2d, shape_3d = out
                row = errors(shape_3d, keypoints_2d, gt3[i], gt2[i])
                row["cam"] = 1000 * float(np.linalg.norm(placed - gt3[i], axis=1).mean())
                per_frame.append(row)
        cam = [v["cam"] for v in per_frame]
        rows.append([name, f"{len(per_frame)}/{len(images)}"]
                    + [float(np.mean([v[k] for v in per_frame])) for k in ("2d", "root", "pa")]
                    + [float(np.mean(cam)), float(np.median(cam)),
                       second_difference([o[1] if o else None for o in series]),
                       1000 * second_difference([o[0] if o else None for o in series])])
    return rows


def subject_clip(lighting: str, occluder: bool, frames: int = 150):
    return make_clip(frames, (360, 640), seed=5, shape=np.array(ENROLLMENT_SHAPE, np.float32),
                     albedo=tattoo_texture(512), lighting=lighting, occluder=occluder, progress=True)


def jitter_rows(avatar: ht.Avatar) -> list[list]:
    frames, fps = read_video(VIDEO), 25.0  # the sample video's rate

    detector = create_detector("mediapipe", max_hands=1)
    found = [detector.detect(f, i / fps) for i, f in enumerate(frames)]
    detector.close()
    rows = [["MediaPipe (raw)", second_difference([d[0].image_xy if d else None for d in found]),
             1000 * second_difference([d[0].world_xyz if d else None for d in found]), "—"]]
    for refine in (False, True):
        with Tracker(avatar=avatar, max_hands=1, refine=refine) as tracker:
            hands = [r.hands[0] if r.hands else None for r in tracker.track(
                (f, None, i / fps) for i, f in enumerate(frames))]
        rows.append(["landmark fit + refinement" if refine else "landmark fit",
                     second_difference([h.keypoints_2d if h else None for h in hands]),
                     1000 * second_difference([h.joints - h.joints.mean(0) if h else None for h in hands]),
                     1000 * second_difference([h.joints if h else None for h in hands])])
    return rows


STAGES = ("landmarks", "fit", "refine", "filter", "mesh")


def timed_run(avatar: ht.Avatar, clip, refine: bool, pipelined: bool, warm_up: int = 10,
              **tracker_options) -> tuple[list, list[float], float]:
    """Track `clip` one frame after another (`process`) or pipelined (`track`): the results, the
    median ms of each of `STAGES` over the frames with a hand and the end-to-end FPS over all
    frames, both after the first `warm_up` (the pipelined tracker starts its landmark process,
    about 2 s, before its first frame)."""
    items = [(f, clip.camera, t) for f, t in zip(clip.frames, clip.timestamps)]
    with Tracker(avatar=avatar, max_hands=1, refine=refine, **tracker_options) as tracker:
        stream = tracker.track(items) if pipelined else (tracker.process(*item) for item in items)
        results, stamps = [], []
        for result in stream:
            results.append(result)
            stamps.append(time.perf_counter())
    steady = results[warm_up:]
    with_hand = [r for r in steady if r.hands] or steady
    stages = [float(np.median([r.timings[k] for r in with_hand])) for k in STAGES]
    return results, stages, (len(steady) - 1) / (stamps[-1] - stamps[warm_up])


def speed_rows(avatar: ht.Avatar, clip, **tracker_options) -> list[list]:
    """One row per way of tracking: its name, the median ms of each of `STAGES`, the FPS."""
    rows = []
    for refine, pipelined in ((False, False), (True, False), (False, True), (True, True)):
        _, stages, fps = timed_run(avatar, clip, refine, pipelined, **tracker_options)
        name = ("with refinement" if refine else "landmark fit only") + (", pipelined" if pipelined else "")
        rows.append([name] + stages + [fps])
    return rows


def run(work: Path | None = None, real: bool = True) -> str:
    if work is None:
        with tempfile.TemporaryDirectory() as tmp:
            return run(Path(tmp), real)
    work.mkdir(parents=True, exist_ok=True)
    sections = []
    avatar = synthetic_avatar(work)
    clips = {}
    for name, lighting, occluder in (("steady light", "fixed", False), ("changing light + occluder", "changing", True)):
        clip = clips[name] = subject_clip(lighting, occluder)
        rows = three_ways(avatar, list(clip.frames), [clip.camera] * len(clip.frames), clip.joints, clip.keypoints_2d)
        rows.append(["ground truth (its own motion)", "", "", "", "", "", "", second_difference(list(clip.keypoints_2d)),
                     1000 * second_difference(list(clip.joints))])
        sections += [f"Synthetic subject, {name} (150 frames, 640x360, exact ground truth)",
                     markdown_table(COLUMNS, rows)]
    if real and HGC.is_dir():
        images, cameras, gt3, gt2 = load_hgc(300)
        avatars = hgc_avatars(work)
        rows = []
        for k, (name, real_avatar) in enumerate(avatars.items()):
            rows += three_ways(real_avatar, images[150:], cameras[150:], gt3[150:], gt2[150:], with_mediapipe=k == 0,
                               label=f" (avatar at {name})")
        sections += ["hgc_realworld frames 150-299, avatars built from frames 0-149 (subsampled frames: "
                     "large motion from one to the next)", markdown_table(COLUMNS, rows)]
        if VIDEO.is_file():
            sections += ["Jitter on hand_landmarker_test_video.mp4 (mean second difference per frame; the true-size "
                         "hgc avatar, another person's hand)",
                         markdown_table(["output", "2D px/frame²", "3D mm/frame² (hand-centred)",
                                         "3D mm/frame² (camera space)"],
                                        jitter_rows(avatars["the landmark fit's true size"]))]
    # Speed on a clip whose hand MediaPipe finds in every frame (the subject's clips lose it for
    # long stretches, and frames without a hand cost only the landmarks), the GPU benchmark's.
    speed_clip = make_clip(150, (360, 640), seed=1, progress=True)
    sections += ["Speed on `benchmarks.gpu`'s clip (`make_clip` seed 1, 640x360, one hand in every frame, tracked "
                 "with its own avatar; median ms per stage over the frames with a hand after the first 10; "
                 "pipelined, the landmarks run in a second process and their column is the wait for them)",
                 markdown_table(["tracker", *STAGES, "end-to-end FPS"], speed_rows(clip_avatar(seed=1), speed_clip))]
    return "\n\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description="appearance refinement: accuracy, jitter, speed")
    parser.add_argument("--work", type=Path, default=None, help="keep (and reuse) the built avatars here")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    print(machine_description())
    print(run(args.work, real=not args.skip_real))


if __name__ == "__main__":
    main()
