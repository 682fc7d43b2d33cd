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
Real: an avatar built from hgc_realworld frames 0-149 tracks frames 150-299. Jitter on
hand_landmarker_test_video.mp4 uses that avatar too: another person's hand, so it measures how
steady the refinement is, not how well it fits. Speed on the steady synthetic clip (640x360).
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
from benchmarks.avatar import HGC, _write_frames
from benchmarks.timing import machine_description, markdown_table
from benchmarks.landmarks import read_video
from benchmarks.tracking import VIDEO, errors, load_hgc, pnp, second_difference
from harp_track.fit.filtering import PoseFilterSettings
from harp_track.landmarks import create_detector
from harp_track.synthetic import ENROLLMENT_SHAPE, make_clip, make_enrollment_clip, tattoo_texture
from harp_track.tracker import Tracker

COLUMNS = ["method", "frames with a hand", "2D px", "root-aligned 3D mm", "Procrustes 3D mm", "camera-space 3D mm"]


def synthetic_avatar(work: Path) -> ht.Avatar:
    """The enrollment subject's avatar (reused from `work` when already built there)."""
    out = work / "synthetic_avatar"
    if (out / "avatar.json").is_file():
        return ht.Avatar.load(out)
    clip = make_enrollment_clip(120, (256, 256), seed=0, progress=True)
    folder = _write_frames(work / "synthetic_frames", clip.frames[np.arange(0, 120, 2)])
    base = ht.load_hand_model(side=clip.side)
    length = ruler_length(base, torch.from_numpy(clip.shape)[None].float())
    return build_avatar(folder, out, camera=clip.camera, resume=False, settings=BuildSettings(hand_length=length))


def hgc_avatar(work: Path) -> ht.Avatar:
    out = work / "hgc_avatar"
    if (out / "avatar.json").is_file():
        return ht.Avatar.load(out)
    images, cameras, _, _ = load_hgc(150)
    folder = _write_frames(work / "hgc_frames", np.stack(images))
    return build_avatar(folder, out, camera=cameras, resume=False)


def three_ways(avatar: ht.Avatar, images, cameras, gt3, gt2, fps: float = 30.0) -> list[list]:
    """Rows of COLUMNS for MediaPipe alone and our tracker without and with refinement."""
    table: dict[str, list[dict]] = {"MediaPipe alone (camera space: + PnP)": []}
    detector = create_detector("mediapipe", max_hands=1)
    for i, (image, camera) in enumerate(zip(images, cameras)):
        found = detector.detect(image, i / fps)
        if found:
            d = found[0]
            row = errors(d.world_xyz, d.image_xy, gt3[i], gt2[i])
            row["cam"] = 1000 * float(np.linalg.norm(pnp(d.world_xyz, d.image_xy, camera) - gt3[i], axis=1).mean())
            table["MediaPipe alone (camera space: + PnP)"].append(row)
    detector.close()
    for smoothing, label in ((PoseFilterSettings(), ""), (None, ", no filter")):
        for refine in (False, True):
            name = ("landmark fit + refinement" if refine else "landmark fit") + label
            table[name] = []
            with Tracker(avatar=avatar, max_hands=1, refine=refine, smoothing=smoothing) as tracker:
                for i, result in enumerate(tracker.track(zip(images, cameras, np.arange(len(images)) / fps))):
                    if result.hands:
                        hand = result.hands[0]
                        row = errors(hand.joints, hand.keypoints_2d, gt3[i], gt2[i])
                        row["cam"] = 1000 * float(np.linalg.norm(hand.joints - gt3[i], axis=1).mean())
                        table[name].append(row)
    rows = []
    for name, values in table.items():
        rows.append([name, f"{len(values)}/{len(images)}"]
                    + [float(np.mean([v[k] for v in values])) if values else "—" for k in ("2d", "root", "pa", "cam")])
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


def speed_rows(avatar: ht.Avatar, clip) -> list[list]:
    """Median per-stage ms and end-to-end FPS, one frame after another and pipelined."""
    rows = []
    items = [(f, clip.camera, t) for f, t in zip(clip.frames, clip.timestamps)]
    for refine, pipelined in ((False, False), (True, False), (True, True)):
        with Tracker(avatar=avatar, max_hands=1, refine=refine) as tracker:
            start = time.perf_counter()
            results = list(tracker.track(items)) if pipelined else [tracker.process(*item) for item in items]
            elapsed = time.perf_counter() - start
        stages = {k: float(np.median([r.timings[k] for r in results])) for k in ("landmarks", "fit", "refine",
                                                                                  "filter", "mesh")}
        name = ("with refinement" if refine else "landmark fit only") + (", pipelined" if pipelined else "")
        rows.append([name] + list(stages.values()) + [len(items) / elapsed])
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
        sections += [f"Synthetic subject, {name} (150 frames, 640x360, exact ground truth)",
                     markdown_table(COLUMNS, rows)]
    if real and HGC.is_dir():
        images, cameras, gt3, gt2 = load_hgc(300)
        real_avatar = hgc_avatar(work)
        rows = three_ways(real_avatar, images[150:], cameras[150:], gt3[150:], gt2[150:])
        sections += ["hgc_realworld frames 150-299, avatar built from frames 0-149", markdown_table(COLUMNS, rows)]
        if VIDEO.is_file():
            sections += ["Jitter on hand_landmarker_test_video.mp4 (mean second difference per frame; the hgc "
                         "avatar, another person's hand)",
                         markdown_table(["output", "2D px/frame²", "3D mm/frame² (hand-centred)",
                                         "3D mm/frame² (camera space)"], jitter_rows(real_avatar))]
    sections += ["Speed on the steady synthetic clip (640x360, one hand; median ms per stage)",
                 markdown_table(["tracker", "landmarks", "fit", "refine", "filter", "mesh", "end-to-end FPS"],
                                speed_rows(avatar, clips["steady light"]))]
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
