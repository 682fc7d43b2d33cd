"""Try appearance-refinement settings on the refinement benchmark's data in a minute or two.

    python tools/tune_refine.py --set crop_size=128 --set passes=2

Tracks each data set three ways, the landmark fit alone, the refinement with the default
`RefineSettings` and with the settings given, and prints 2D error, Procrustes and camera-space
3D error, and the depth ratio (median over frames of the tracked hand's mean depth over the
true one): the refinement's depth comes from the avatar's apparent size, so a ratio away from 1
is a bias that no filter removes.
- perfect: `benchmarks.gpu`'s clip with its own avatar (`synthetic.clip_avatar`: the exact
  mesh, albedo and light). What the method can do when enrollment is perfect.
- subject steady / changing: `benchmarks.refinement`'s synthetic subject with the avatar built
  from its enrollment clip, under steady light, and under changing light with an occluder.
- hgc (three avatars): hgc_realworld frames 150-299, avatars built from frames 0-149 at
  MediaPipe's size and at the two ground-truth sizes (`benchmarks.refinement.hgc_avatars`).

The avatars are built once, about ten minutes on a 2-core CPU, and kept in out/tune_refine/.
The hgc rows are the shared real frames: choose on the synthetic rows, and use hgc to see that a
setting does no harm on real video (the refinement's defaults were chosen on synthetic clips).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_filter import parse_settings  # noqa: E402  (this folder)

from benchmarks.refinement import hgc_avatars, subject_clip, synthetic_avatar  # noqa: E402
from benchmarks.tracking import load_hgc, tracked_errors  # noqa: E402
from harp_track.fit.refine import RefineSettings  # noqa: E402
from harp_track.synthetic import clip_avatar, make_clip  # noqa: E402
from harp_track.tracker import Tracker  # noqa: E402

WORK = Path(__file__).resolve().parents[1] / "out" / "tune_refine"
# `benchmarks.refinement.hgc_avatars`' names for its three avatars.
HGC_SIZES = ("MediaPipe's size", "the landmark fit's true size", "the refinement's true size")


def data_sets() -> dict[str, Callable[[], tuple]]:
    """name -> a function giving (avatar, images, cameras, true joints (N, 21, 3) m, true 2D
    (N, 21, 2) px, timestamps), so that only the data sets asked for are made."""
    def perfect() -> tuple:
        clip = make_clip(150, (360, 640), seed=1)
        return (clip_avatar(seed=1), clip.frames, [clip.camera] * len(clip.frames), clip.joints, clip.keypoints_2d,
                clip.timestamps)

    def subject(lighting: str, occluder: bool) -> Callable[[], tuple]:
        def make() -> tuple:
            clip = subject_clip(lighting, occluder)
            return (synthetic_avatar(WORK), clip.frames, [clip.camera] * len(clip.frames), clip.joints,
                    clip.keypoints_2d, clip.timestamps)
        return make

    def hgc(size: str) -> Callable[[], tuple]:
        def make() -> tuple:
            images, cameras, gt3, gt2 = load_hgc(300)
            return (hgc_avatars(WORK)[size], images[150:], cameras[150:], gt3[150:], gt2[150:],
                    np.arange(150, 300) / 30.0)
        return make

    out = {"perfect": perfect, "subject steady": subject("fixed", False),
           "subject changing": subject("changing", True)}
    for size in HGC_SIZES:
        out[f"hgc, avatar at {size}"] = hgc(size)
    return out


def scores(data: tuple, settings: RefineSettings | None) -> list[float]:
    """2D px, Procrustes mm, camera-space mm (mean, median) and the depth ratio; settings None
    tracks with the landmark fit alone."""
    avatar, images, cameras, gt3, gt2, timestamps = data
    with Tracker(avatar=avatar, max_hands=1, refine=settings is not None, refine_settings=settings) as tracker:
        hands = [r.hands[0] if r.hands else None for r in tracker.track(zip(images, cameras, timestamps))]
    rows = tracked_errors(hands, gt3, gt2, range(len(images)))
    depth = [h.joints[:, 2].mean() / gt3[i][:, 2].mean() for i, h in enumerate(hands) if h is not None]
    cam = [r["cam"] for r in rows]
    return [float(np.mean([r[k] for r in rows])) for k in ("2d", "pa")] + [
        float(np.mean(cam)), float(np.median(cam)), float(np.median(depth))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a RefineSettings field, e.g. crop_size=128 or blur=2")
    parser.add_argument("--only", action="append", default=[], metavar="WORD",
                        help="only the data sets whose name contains WORD (repeatable), e.g. perfect")
    args = parser.parse_args()
    settings = parse_settings(args.set, RefineSettings())
    runs = (("landmark fit", None), ("refinement, defaults", RefineSettings()),
            ("refinement, " + (" ".join(args.set) or "(the same)"), settings))
    print(" | ".join(["data", "tracker", "2D px", "Procrustes mm", "camera mm (mean)", "camera mm (median)",
                      "depth / true"]))
    for name, make in data_sets().items():
        if args.only and not any(word in name for word in args.only):
            continue
        data = make()
        for label, s in runs:
            print(" | ".join([name, label] + [f"{v:.3f}" for v in scores(data, s)]), flush=True)


if __name__ == "__main__":
    main()
