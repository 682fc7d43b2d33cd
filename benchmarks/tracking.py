"""Tracking benchmark: accuracy on real frames with ground truth, jitter on a real video, speed.

    python -m benchmarks.tracking [--frames 300]

Accuracy on `../shared/data/hgc_realworld/` (300 real frames, camera-space 3D joints, per-frame
intrinsics): MediaPipe alone, "MediaPipe + PnP" (what a user would write for metric 3D:
cv2.solvePnP of its world landmarks against its image landmarks, true intrinsics, SQPNP), and our
tracker with the default (mean) hand size and with the hand size known (the latter also with
MediaPipe's own landmarks instead of the default flip-averaged ONNX ones). "Known" means the size
fitted on the first 50 frames: the scale about the camera centre that best maps our tracked
joints onto the ground truth there (a scale about the camera centre leaves the image unchanged,
so it is exactly what a size error does); those 50 frames are then left out of every row.
Jitter and speed on `mediapipe_samples/hand_landmarker_test_video.mp4` (25 fps, 640x360).
The source joints are annotated by that dataset's people, so a constant offset against
MediaPipe's joint definitions is part of every row (compare rows, not against zero).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

import harp_track as ht
from benchmarks import SHARED_DATA
from benchmarks.landmarks import read_video
from benchmarks.timing import machine_description, markdown_table
from harp_track.camera import Camera
from harp_track.keypoints import KEYPOINT_PARENTS
from harp_track.landmarks import create_detector
from harp_track.tracker import Tracker

DATA = SHARED_DATA
HGC = DATA / "hgc_realworld"
VIDEO = DATA / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
SIZE_FRAMES = 50


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean joint distance after the similarity transform that best aligns pred to gt."""
    p, g = pred - pred.mean(0), gt - gt.mean(0)
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    u[:, -1] *= d
    scale = s.sum() / (p ** 2).sum()
    return float(np.linalg.norm(scale * p @ u @ vt - g, axis=1).mean())


def errors(joints: np.ndarray | None, keypoints_2d: np.ndarray, gt3: np.ndarray, gt2: np.ndarray) -> dict:
    """2D px, root-aligned, Procrustes-aligned and camera-space errors (mm) of one frame."""
    row = {"2d": float(np.linalg.norm(keypoints_2d - gt2, axis=1).mean())}
    if joints is not None:
        row["root"] = 1000 * float(np.linalg.norm((joints - joints[0]) - (gt3 - gt3[0]), axis=1).mean())
        row["pa"] = 1000 * procrustes_error(joints, gt3)
    return row


def pnp(world: np.ndarray, image: np.ndarray, camera: Camera) -> np.ndarray:
    """MediaPipe's world landmarks placed in camera space by PnP against its image landmarks."""
    K = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(world.astype(np.float64), image.astype(np.float64), K, None,
                                  flags=cv2.SOLVEPNP_SQPNP)
    return (cv2.Rodrigues(rvec)[0] @ world.T).T + tvec[:, 0]


def shape_for_scale(model, scale: float) -> torch.Tensor:
    """(1, K) shape whose skeleton is `scale` times the mean's, moving along the first component
    (which is mostly size), by bisection on the summed bone lengths."""
    bones = [(k, p) for k, p in enumerate(KEYPOINT_PARENTS) if p >= 0]

    def size(beta0: float) -> float:
        shape = torch.zeros(1, model.num_shape)
        shape[0, 0] = beta0
        kp = model.keypoints(shape=shape)[0].detach().numpy()
        return float(sum(np.linalg.norm(kp[k] - kp[p]) for k, p in bones))

    target = scale * size(0.0)
    lo, hi = -4.0, 4.0
    increasing = size(hi) > size(lo)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if (size(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    shape = torch.zeros(1, model.num_shape)
    shape[0, 0] = 0.5 * (lo + hi)
    return shape


def load_hgc(frames: int):
    z = np.load(HGC / "annotations.npz")
    images = [cv2.cvtColor(cv2.imread(str(HGC / p)), cv2.COLOR_BGR2RGB) for p in z["image_path"][:frames]]
    cameras = [Camera(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])) for K in z["K_crop"][:frames]]
    return images, cameras, z["joints3d_cam_mm"][:frames] / 1000.0, z["joints2d_crop_px"][:frames]


def track_hgc(images, cameras, hand_shape=None, smoothing=True, landmarks="auto") -> list:
    kwargs = {} if smoothing else {"smoothing": None}
    out = []
    with Tracker(max_hands=1, hand_shape=hand_shape, landmarks=landmarks, **kwargs) as tracker:
        for i, (image, camera) in enumerate(zip(images, cameras)):
            result = tracker.process(image, camera, timestamp=i / 30.0)
            out.append(result.hands[0] if result.hands else None)
    return out


def tracked_errors(hands: list, gt3: np.ndarray, gt2: np.ndarray, evaluated: range) -> list[dict]:
    """`errors` plus the camera-space error (mm) of each evaluated frame where a hand was tracked
    (hands: `TrackedHand` or None per frame)."""
    rows = []
    for i in evaluated:
        if hands[i] is not None:
            row = errors(hands[i].joints, hands[i].keypoints_2d, gt3[i], gt2[i])
            row["cam"] = 1000 * float(np.linalg.norm(hands[i].joints - gt3[i], axis=1).mean())
            rows.append(row)
    return rows


def known_size_scale(hands: list, gt3: np.ndarray) -> float:
    """The hand size "known" from the first `SIZE_FRAMES` frames: the least-squares scale about the
    camera centre that maps the tracked joints (mean hand size) onto the true ones."""
    pairs = [(hands[i].joints, gt3[i]) for i in range(SIZE_FRAMES) if hands[i] is not None]
    return sum(float((p * g).sum()) for p, g in pairs) / sum(float((p * p).sum()) for p, _ in pairs)


def accuracy_rows(frames: int) -> list[list]:
    images, cameras, gt3, gt2 = load_hgc(frames)
    evaluated = range(SIZE_FRAMES, frames)
    table: dict[str, list[dict]] = {}

    detector = create_detector("mediapipe", max_hands=1)
    mp_rows, pnp_rows = [], []
    for i, (image, camera) in enumerate(zip(images, cameras)):
        found = detector.detect(image, i / 30.0)
        if i not in evaluated or not found:
            continue
        d = found[0]
        mp_rows.append(errors(d.world_xyz, d.image_xy, gt3[i], gt2[i]))
        placed = pnp(d.world_xyz, d.image_xy, camera)
        row = errors(placed, camera.project(torch.as_tensor(placed, dtype=torch.float32)).numpy(), gt3[i], gt2[i])
        row["cam"] = 1000 * float(np.linalg.norm(placed - gt3[i], axis=1).mean())
        pnp_rows.append(row)
    detector.close()
    table["MediaPipe alone"] = mp_rows
    table["MediaPipe + PnP"] = pnp_rows

    def ours(hands) -> list[dict]:
        return tracked_errors(hands, gt3, gt2, evaluated)

    default = track_hgc(images, cameras)
    table["ours, mean hand size"] = ours(default)
    table["ours, mean size, no filter"] = ours(track_hgc(images, cameras, smoothing=False))
    scale = known_size_scale(default, gt3)
    known = shape_for_scale(ht.load_hand_model(), scale)
    table[f"ours, size known (x{scale:.3f})"] = ours(track_hgc(images, cameras, known))
    table["ours, size known, MediaPipe's own landmarks (no flip averaging)"] = ours(
        track_hgc(images, cameras, known, landmarks="mediapipe"))

    rows = []
    for name, values in table.items():
        mean = {k: np.mean([v[k] for v in values if k in v]) if any(k in v for v in values) else None
                for k in ("2d", "root", "pa", "cam")}
        rows.append([name, f"{len(values)}/{len(evaluated)}"] + ["—" if mean[k] is None else float(mean[k])
                                                                for k in ("2d", "root", "pa", "cam")])
    return rows


def second_difference(series: list[np.ndarray | None]) -> float:
    """Mean magnitude of the second difference of a per-frame series of (..., D) points, over
    runs of three frames that all have a value (jitter, per frame squared)."""
    values = [np.linalg.norm(a - 2 * b + c, axis=-1).mean() for a, b, c in zip(series, series[1:], series[2:])
              if a is not None and b is not None and c is not None]
    return float(np.mean(values))


def jitter_and_speed_rows(max_frames: int | None = None) -> tuple[list[list], list[list]]:
    frames, fps = read_video(VIDEO)[:max_frames], 25.0  # the sample video's rate

    jitter = []
    for name, options in (("MediaPipe (raw)", dict(backend="mediapipe")),
                          ("flip-averaged landmarks (raw; ours use them)", dict(backend="onnx", flip_average=True))):
        detector = create_detector(max_hands=1, **options)
        raw2d, raw3d = [], []
        for i, frame in enumerate(frames):
            found = detector.detect(frame, i / fps)
            raw2d.append(found[0].image_xy if found else None)
            raw3d.append(found[0].world_xyz if found else None)
        detector.close()
        jitter.append([name, second_difference(raw2d), 1000 * second_difference(raw3d), "—"])

    speeds = {}
    for name, landmarks in (("ours", "auto"), ("ours, MediaPipe's own landmarks", "mediapipe")):
        timings, ours2d, ours3d, ours_cam = [], [], [], []
        with Tracker(max_hands=1, landmarks=landmarks) as tracker:
            start = time.perf_counter()
            for i, frame in enumerate(frames):
                result = tracker.process(frame, None, i / fps)
                timings.append(result.timings)
                hand = result.hands[0] if result.hands else None
                ours2d.append(hand.keypoints_2d if hand else None)
                ours3d.append(hand.joints - hand.joints.mean(0) if hand else None)
                ours_cam.append(hand.joints if hand else None)
            elapsed = time.perf_counter() - start
        jitter.append([name, second_difference(ours2d), 1000 * second_difference(ours3d),
                       1000 * second_difference(ours_cam)])
        speeds[landmarks] = timings, elapsed
    timings, elapsed = speeds["auto"]  # the speed of the default
    stages = sorted({k for t in timings for k in t})
    speed = [[f"{stage} ms", float(np.median([t[stage] for t in timings]))] for stage in stages]
    speed.append(["end to end FPS", len(frames) / elapsed])
    return jitter, speed


def run(frames: int = 300) -> str:
    if not HGC.is_dir() or not VIDEO.is_file():
        return f"(skipped: {DATA} not present)"
    accuracy = accuracy_rows(frames)
    jitter, speed = jitter_and_speed_rows()
    return "\n\n".join([
        f"Accuracy on hgc_realworld frames {SIZE_FRAMES}-{frames - 1} (frames 0-{SIZE_FRAMES - 1} fit the known size)",
        markdown_table(["method", "frames with a hand", "2D px", "root-aligned 3D mm", "Procrustes 3D mm",
                        "camera-space 3D mm"], accuracy),
        "Jitter on hand_landmarker_test_video.mp4: mean second difference per frame "
        "(3D hand-centred for both; ours also in camera space)",
        markdown_table(["output", "2D px/frame²", "3D mm/frame² (hand-centred)", "3D mm/frame² (camera space)"], jitter),
        "Speed on the same video (640x360, one hand, the default tracker, median per stage)",
        markdown_table(["stage", "value"], speed),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description="tracking accuracy, jitter and speed")
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    print(machine_description())
    print(run(args.frames))


if __name__ == "__main__":
    main()
