"""Avatar builder benchmark: reconstruction quality against ground truth, and build time.

    python -m benchmarks.avatar [--frames 120] [--skip-real]

Synthetic (our own renders, exact ground truth): a turning hand of a non-mean shape with a
tattoo-like albedo, darker nails and a moving light (`harp_track.synthetic.make_enrollment_clip`).
The avatar is built from the even frames; the odd frames are novel views and a second take of the
same subject (its shape and albedo) in other gestures gives novel poses. In frames the builder did
not see, only pose and light are fitted (appearance fixed, `avatar_builder.evaluate.fit_avatar`)
and the avatar is rendered with `Avatar.render_vertices`. PSNR and SSIM are measured inside the
true hand mask (the render over black, and the render over the clip's true background, which the
true frame's outline pixels partly show), the silhouette IoU against it, and the surface error
(mean symmetric point-to-surface distance) between the avatar's rest mesh and the true rest mesh at
the zero pose. Reference rows score the exact avatar (the clip's own mesh, albedo and lights) at
the true poses: the ceiling of each metric. Over black it is 38 dB, not infinite, because the true
outline pixels are part background; so every pixel the render misses along the outline costs that
metric a great deal, and half of a fitted avatar's error there sits within 1.5 px of the outline
(measured on 15 novel views).
Real: built from `hgc_realworld` frames 0-199, fitted to frames 200-299; a picture of renders next
to the images goes to out/avatar_hgc.jpg (no ground-truth masks there: PSNR inside the render).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import harp_track as ht
from avatar_builder import BuildSettings, build_avatar
from avatar_builder.coarse import ruler_length
from avatar_builder.evaluate import PoseFit, fit_avatar
from avatar_builder.frames import Frame
from avatar_builder.metrics import psnr, silhouette_iou, ssim, surface_error_mm
from benchmarks import SHARED_DATA
from benchmarks.timing import machine_description, markdown_table
from harp_track.synthetic import clip_avatar, make_enrollment_clip

HGC = SHARED_DATA / "hgc_realworld"
# Out of the repository: the picture holds the dataset's frames, which must not be committed.
PICTURE = Path(__file__).resolve().parents[1] / "out" / "avatar_hgc.jpg"


def write_frames(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def image_scores(avatar: ht.avatar.Avatar, frames: list[Frame], masks: np.ndarray | None,
                 background: np.ndarray | None = None, posed: PoseFit | None = None) -> dict[str, float]:
    """Fit pose and light to `frames`, render, and score against the frames (`render_scores`).
    posed: the avatar already fitted to `frames` (`fit_avatar`), else it is fitted here."""
    posed = posed or fit_avatar(avatar, frames)
    kept = {f.index: k for k, f in enumerate(posed.fit.frames)}
    renders = []
    for frame in frames:
        k = kept.get(frame.index)
        if k is None:
            continue
        with torch.no_grad():
            rgb, alpha = avatar.render_vertices(posed.vertices[k:k + 1], posed.fit.cameras[k], frame.image.shape[:2],
                                                torch.from_numpy(posed.solution.light_positions[k:k + 1]),
                                                posed.intensity[k:k + 1])
        renders.append((frame, rgb[0].numpy(), alpha[0].numpy()))
    return render_scores(renders, len(frames), masks, background)


def exact_avatar_scores(clip, model: ht.HandModel, indices: np.ndarray) -> dict[str, float]:
    """`render_scores` of the exact avatar (the clip's own mesh, albedo, ambient and lights; model:
    the clip side's base model) at the true poses: what the image metrics give when nothing is
    wrong but the renderer's own sampling, the ceiling of every row."""
    exact = dataclasses.replace(clip_avatar(model, clip.shape, torch.from_numpy(clip.albedo)), ambient=clip.ambient)
    renders = []
    for i in indices:
        with torch.no_grad():
            rgb, alpha = exact.render_vertices(torch.from_numpy(clip.vertices[i:i + 1]), clip.camera,
                                               clip.frames.shape[1:3], torch.from_numpy(clip.light_positions[i:i + 1]))
        renders.append((Frame(clip.frames[i], int(i), clip.camera), rgb[0].numpy(), alpha[0].numpy()))
    return render_scores(renders, len(indices), clip.masks, clip.background)


def render_scores(renders: list[tuple[Frame, np.ndarray, np.ndarray]], count: int, masks: np.ndarray | None,
                  background: np.ndarray | None = None) -> dict[str, float]:
    """Score renders (frame, rgb (H, W, 3) over black, alpha (H, W)) of `count` frames against the
    frames, inside `masks` (N, H, W) by frame index when given, else inside the render's own
    silhouette. With the frames' true `background` (H, W, 3) float in [0, 1], also the PSNR of the
    render laid over it: the true frames' outline pixels are part background, which a render over
    black counts as error."""
    psnrs, inner_psnrs, ssims, ious, over_psnrs = [], [], [], [], []
    for frame, rgb, alpha in renders:
        target = frame.image.astype(np.float32) / 255.0
        mask = masks[frame.index] if masks is not None else alpha > 0.5
        psnrs.append(psnr(rgb, target, mask))
        if background is not None:
            over_psnrs.append(psnr(rgb + (1 - alpha[..., None]) * background, target, mask))
        # Appearance apart from alignment: the hand's interior (3 px in from its outline) where
        # the render covers it.
        interior = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        inner_psnrs.append(psnr(rgb, target, interior & (alpha > 0.5)))
        ssims.append(ssim(rgb, target, mask))
        if masks is not None:
            ious.append(silhouette_iou(alpha > 0.5, mask))
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return dict(frames=f"{len(psnrs)}/{count}", psnr=mean(psnrs), over_psnr=mean(over_psnrs),
                inner_psnr=mean(inner_psnrs), ssim=mean(ssims), iou=mean(ious))


def score_row(name: str, scores: dict[str, float]) -> list[object]:
    """A table row of `render_scores`' numbers; n/a for those the data cannot give (no true masks
    or background)."""
    def cell(key: str, digits: int) -> str:
        return "n/a" if np.isnan(scores[key]) else f"{scores[key]:.{digits}f}"
    return [name, scores["frames"], cell("psnr", 2), cell("over_psnr", 2), cell("inner_psnr", 2), cell("ssim", 3),
            cell("iou", 3)]


def synthetic_rows(num_frames: int, work: Path) -> tuple[list[list[object]], float]:
    clip = make_enrollment_clip(num_frames, (256, 256), seed=0, progress=True)
    novel = make_enrollment_clip(max(num_frames // 3, 16), (256, 256), poses="novel", seed=1, progress=True)
    even = np.arange(0, num_frames, 2)
    folder = write_frames(work / "synthetic_frames", clip.frames[even])
    base = ht.load_hand_model(side=clip.side)
    with torch.no_grad():
        true_rest = base(shape=torch.from_numpy(clip.shape)[None].float()).vertices[0].numpy()
        length = ruler_length(base, torch.from_numpy(clip.shape)[None].float())
        mean_rest = base().vertices[0].numpy()

    def surface(avatar) -> float:
        with torch.no_grad():
            rest = avatar.hand_model()().vertices[0].numpy()
        return surface_error_mm(rest, avatar.hand.faces, true_rest, base.faces.numpy())

    # Built twice: with the true hand length (a ruler), and with MediaPipe's estimate of it.
    guessed = build_avatar(folder, work / "synthetic_avatar_mp", camera=clip.camera, resume=False)
    start = time.perf_counter()
    avatar = build_avatar(folder, work / "synthetic_avatar", camera=clip.camera, resume=False,
                          settings=BuildSettings(hand_length=length))
    build_s = time.perf_counter() - start

    views, poses = np.arange(1, num_frames, 2), np.arange(len(novel.frames))
    rows = []
    for name, source, indices in (("training views (every third even frame)", clip, even[::3]),
                                  ("novel views (odd frames)", clip, views),
                                  ("novel poses (other gestures)", novel, poses)):
        frames = [Frame(source.frames[i], int(i), source.camera) for i in indices]
        rows.append(score_row(name, image_scores(avatar, frames, source.masks, source.background)))
    for name, source, indices in (("novel views", clip, views), ("novel poses", novel, poses)):
        rows.append(score_row(f"{name}, the exact avatar at the true poses (the metrics' ceiling)",
                              exact_avatar_scores(source, base, indices)))
    blank = ["", "", "", ""]
    rows.append(["surface error (mm), hand length given", "", f"{surface(avatar):.2f}"] + blank)
    rows.append(["surface error (mm), hand length from MediaPipe", "", f"{surface(guessed):.2f}"] + blank)
    rows.append(["surface error (mm), the mean hand (reference)", "",
                 f"{surface_error_mm(mean_rest, base.faces.numpy(), true_rest, base.faces.numpy()):.2f}"] + blank)
    return rows, build_s


def real_rows(work: Path) -> tuple[list[list[object]], float]:
    ann = np.load(HGC / "annotations.npz")
    cameras = [ht.Camera(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])) for k in ann["K_crop"]]
    paths = [HGC / str(p) for p in ann["image_path"]]
    folder = work / "hgc_frames"
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(paths[:200]):
        (folder / f"{i:05d}{p.suffix}").write_bytes(p.read_bytes())
    start = time.perf_counter()
    avatar = build_avatar(folder, work / "hgc_avatar", camera=cameras[:200], resume=False)
    build_s = time.perf_counter() - start
    frames = []
    for i in range(200, len(paths)):
        frames.append(Frame(cv2.cvtColor(cv2.imread(str(paths[i])), cv2.COLOR_BGR2RGB), i, cameras[i]))
    posed = fit_avatar(avatar, frames)
    _picture(avatar, posed, frames)
    scores = image_scores(avatar, frames, None, posed=posed)
    return [score_row("hgc frames 200-299 (novel views and poses)", scores)], build_s


def _picture(avatar, posed, frames: list[Frame], count: int = 8) -> None:
    """out/avatar_hgc.jpg: frames (top) and the avatar rendered over them (bottom)."""
    kept = posed.fit.frames
    chosen = np.linspace(0, len(kept) - 1, min(count, len(kept))).round().astype(int)
    top, bottom = [], []
    for k in chosen:
        image = kept[k].image
        with torch.no_grad():
            rgb, alpha = avatar.render_vertices(posed.vertices[k:k + 1], posed.fit.cameras[k], image.shape[:2],
                                                torch.from_numpy(posed.solution.light_positions[k:k + 1]),
                                                posed.intensity[k:k + 1])
        a = alpha[0].numpy()[..., None]
        over = image.astype(np.float32) / 255 * (1 - a) + rgb[0].numpy() * a
        top.append(image)
        bottom.append(np.clip(over * 255, 0, 255).astype(np.uint8))
    picture = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(PICTURE), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def run(frames: int = 120, real: bool = True) -> str:
    torch.set_num_threads(2)
    header = ["evaluation", "frames fitted", "PSNR dB (in mask)", "PSNR dB (in mask, over the true background)",
              "PSNR dB (interior, rendered)", "SSIM (in mask)", "silhouette IoU"]
    with tempfile.TemporaryDirectory() as tmp:
        rows, synthetic_s = synthetic_rows(frames, Path(tmp))
        parts = [f"Synthetic subject: built from {frames // 2} frames at 256x256 in {synthetic_s:.0f} s "
                 "(hand length given; novel views and poses are fitted with 100 Adam steps per frame at 128 pixels, then 100 at 256)",
                 markdown_table(header, rows)]
        if real and HGC.is_dir():
            real_table, real_s = real_rows(Path(tmp))
            parts += [f"Real: hgc_realworld, built from frames 0-199 in {real_s:.0f} s; renders next to frames "
                      f"200-299 in out/{PICTURE.name} (not committed: the frames are the dataset's)", markdown_table(header, real_table)]
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description="avatar reconstruction quality and build time")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    print(machine_description())
    print(run(args.frames, real=not args.skip_real))


if __name__ == "__main__":
    main()
