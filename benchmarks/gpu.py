"""GPU path: tracking speed end to end on CUDA beside the CPU of the same machine, and how far the
CPU and GPU results are apart.

    python -m benchmarks.gpu [--frames 150]

Runs only where torch sees a CUDA device (the `device` tool lends one now and then); elsewhere
`run` returns None and `python -m benchmarks` keeps the section of the last GPU run.
Clip: `make_clip` at 640x360, steady light, one hand, tracked with the clip's own avatar
(`synthetic.clip_avatar`), so the numbers measure compute and agreement, not an enrollment.
Landmarks: the ONNX model (MediaPipe's, converted), on onnxruntime's CUDA provider where it is
installed (onnxruntime-gpu), else on the CPU; each row says which.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avatar_builder import BuildSettings, OptimizeSettings, build_avatar
from avatar_builder.coarse import ruler_length
from benchmarks.avatar import write_frames
from benchmarks.refinement import STAGES, timed_run
from benchmarks.render import run as render_run
from benchmarks.timing import machine_description, markdown_table
from harp_track.fit.refine import RefineSettings
from harp_track.hand import load_hand_model
from harp_track.landmarks import onnx_offers_cuda
from harp_track.synthetic import clip_avatar, make_clip, make_enrollment_clip


def nvdiffrast_installed() -> bool:
    return importlib.util.find_spec("nvdiffrast") is not None


def configurations() -> list[tuple[str, dict]]:
    """(name, Tracker options) of each way to run: CPU, CUDA with each installed render backend."""
    cuda_landmarks = "CUDA" if onnx_offers_cuda() else "CPU"
    configs = [("CPU (landmarks CPU)", dict(device="cpu", landmarks="onnx")),
               (f"CUDA, torch renderer (landmarks {cuda_landmarks})", dict(device="cuda", landmarks="onnx"))]
    if nvdiffrast_installed():
        configs.append((f"CUDA, nvdiffrast (landmarks {cuda_landmarks})",
                        dict(device="cuda", landmarks="onnx", refine_settings=RefineSettings(render_backend="nvdiffrast"))))
    return configs


def gaps(results: list, reference: list) -> list[float]:
    """Mean and max 2D gap (px), mean and max 3D joint gap (mm), mean agreement gap, over frames
    where both found the hand."""
    pairs = [(a.hands[0], b.hands[0]) for a, b in zip(results, reference) if a.hands and b.hands]
    px = np.array([np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=1).mean() for a, b in pairs])
    mm = 1000 * np.array([np.linalg.norm(a.joints - b.joints, axis=1).mean() for a, b in pairs])
    agreement = np.array([abs((a.appearance_agreement or 0) - (b.appearance_agreement or 0)) for a, b in pairs])
    return [float(px.mean()), float(px.max()), float(mm.mean()), float(mm.max()), float(agreement.mean())]


def errors(results: list, clip) -> list[float]:
    """Mean 2D (px) and camera-space 3D (mm) error against the clip's ground truth."""
    found = [(r.hands[0], i) for i, r in enumerate(results) if r.hands]
    return [float(np.mean([np.linalg.norm(h.keypoints_2d - clip.keypoints_2d[i], axis=1).mean() for h, i in found])),
            float(1000 * np.mean([np.linalg.norm(h.joints - clip.joints[i], axis=1).mean() for h, i in found]))]


BUILD_COLUMNS = ["device", "render backend", "views", "build s", "final photometric loss", "final total loss"]


def build_row(device: str, backend: str, frames: int = 120) -> list:
    """Enroll the avatar benchmark's synthetic subject (every second frame of a `frames`-frame
    256x256 turning clip, hand length given, landmarks by the ONNX models) on `device` with the
    `backend` renderer: seconds for the whole `build_avatar`, and its final loss terms."""
    clip = make_enrollment_clip(frames, (256, 256), seed=0)
    base = load_hand_model(side=clip.side)
    length = ruler_length(base, torch.from_numpy(clip.shape)[None].float())
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_frames(Path(tmp) / "frames", clip.frames[::2])
        settings = BuildSettings(hand_length=length, landmarks="onnx", optimize=OptimizeSettings(render_backend=backend))
        start = time.perf_counter()
        build_avatar(folder, Path(tmp) / "avatar", camera=clip.camera, device=device, settings=settings,
                     progress=False, resume=False)
        seconds = time.perf_counter() - start
        info = json.loads((Path(tmp) / "avatar" / "build.json").read_text())
    final = info["final_losses"]
    total = sum(v for k, v in final.items() if k != "stage")
    return [device, backend, info["views"], seconds, f"{final['photometric']:.4f}", f"{total:.4f}"]


def run(frames: int = 150) -> str | None:
    if not torch.cuda.is_available():
        return None
    clip = make_clip(frames, (360, 640), seed=1, progress=True)
    avatar = clip_avatar(seed=1)
    speed, accuracy, reference = [], [], None
    for name, options in configurations():
        for refine, pipelined in ((False, False), (False, True), (True, False), (True, True)):
            results, stages, fps = timed_run(avatar, clip, refine, pipelined, **options)
            way = ("with refinement" if refine else "landmark fit only") + (", pipelined" if pipelined else "")
            speed.append([name, way, *stages, fps])
            if refine and not pipelined:
                reference = reference or results
                accuracy.append([name, sum(bool(r.hands) for r in results), *errors(results, clip),
                                 *gaps(results, reference)])
    backends = ["torch"] + (["nvdiffrast"] if nvdiffrast_installed() else [])
    renders = [render_run("cuda", backend, (128, 256, 512), repeats=20) for backend in backends]
    # One build, with the faster renderer: a device lease is short (the torch renderer's build
    # took over 95 s on an H200, nvdiffrast's 54 s; `--build cuda torch` times the other).
    builds = [build_row("cuda", backends[-1])]
    return "\n\n".join([
        f"Speed on a {frames}-frame synthetic clip (640x360, one hand, the clip's own avatar; median ms per stage "
        "after 10 frames; pipelined, the landmarks run in a second process and their column is the wait for them)",
        markdown_table(["device", "tracker", *STAGES, "end-to-end FPS"], speed),
        "Accuracy with refinement against the ground truth, and the gap of each run to the CPU run (same frames, "
        "tracked one after another)",
        markdown_table(["device", "frames with a hand", "2D px", "camera-space 3D mm", "gap 2D px (mean)",
                        "gap 2D px (max)", "gap 3D mm (mean)", "gap 3D mm (max)", "gap agreement (mean)"], accuracy),
        "Renderer on CUDA (`benchmarks.render`)", *renders,
        "Avatar build on CUDA (`build_row`: the avatar benchmark's synthetic subject, 60 frames at 256x256)",
        markdown_table(BUILD_COLUMNS, builds)])


def main() -> None:
    parser = argparse.ArgumentParser(description="GPU path: speed and CPU/GPU agreement")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--build", nargs=2, metavar=("DEVICE", "BACKEND"),
                        help="only time one avatar build (e.g. cpu torch) and print its row")
    args = parser.parse_args()
    print(machine_description())
    if args.build:
        print(markdown_table(BUILD_COLUMNS, [build_row(*args.build)]))
    else:
        print(run(args.frames) or "no CUDA device: nothing to measure")


if __name__ == "__main__":
    main()
