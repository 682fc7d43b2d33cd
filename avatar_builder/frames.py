"""Enrollment input: frames from a video file or a folder of images, with optional masks and
per-frame cameras; blurred and duplicate frames dropped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from harp_track import Camera

from .errors import EnrollmentError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclasses.dataclass
class Frame:
    """One input frame: image (H, W, 3) uint8 RGB, its index in the source, its camera (None when
    unknown) and an optional user-given hand mask (H, W) bool."""

    image: np.ndarray
    index: int
    camera: Camera | None = None
    mask: np.ndarray | None = None


def read_frames(source: str | Path, cameras: Camera | Sequence[Camera] | None = None,
                masks: str | Path | None = None, max_frames: int = 2000) -> list[Frame]:
    """Read a video file or a folder of images (sorted by name), at most `max_frames`.

    cameras: one Camera for all frames or one per frame. masks: a folder of mask images named as
    the frames (non-zero = hand), or None.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"enrollment input not found: {source}")
    names: list[str] = []
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_frames]
        images = []
        for p in paths:
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise EnrollmentError(f"{p} is not a readable image")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            names.append(p.stem)
    else:
        images = _read_video(source, max_frames)
    if not images:
        raise EnrollmentError(f"{source} holds no frames; record a 5-15 s video of your hand turning")
    if isinstance(cameras, Camera) or cameras is None:
        per_frame = [cameras] * len(images)
    else:
        per_frame = list(cameras)
        if len(per_frame) != len(images):
            raise ValueError(f"{len(per_frame)} cameras given for {len(images)} frames")
    frames = [Frame(image, i, cam) for i, (image, cam) in enumerate(zip(images, per_frame))]
    if masks is not None:
        _attach_masks(frames, names, Path(masks))
    return frames


def _read_video(path: Path, max_frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise EnrollmentError(f"{path} is neither a folder of images nor a video OpenCV can read")
    images = []
    try:
        while len(images) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return images


def _attach_masks(frames: list[Frame], names: list[str], folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"mask folder not found: {folder}")
    by_stem = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    keys = names or [f"{f.index:05d}" for f in frames]
    for frame, key in zip(frames, keys):
        path = by_stem.get(key)
        if path is None:
            continue
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != frame.image.shape[:2]:
            raise EnrollmentError(f"mask {path} is unreadable or not the size of its frame")
        frame.mask = mask > 127


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher is sharper)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def drop_blurred_and_duplicates(frames: list[Frame], blur_ratio: float = 0.35,
                                duplicate_level: float = 4.0) -> list[Frame]:
    """Frames without motion blur or repeats: a frame is dropped when its sharpness is under
    `blur_ratio` times the clip's median (blur is relative: cameras differ), or when no part of
    it differs from the last kept frame by `duplicate_level` grey levels (the 99.9th percentile of
    a 64² thumbnail's difference: a paused video only differs by noise, a moving hand locally)."""
    if not frames:
        return frames
    scores = np.array([sharpness(f.image) for f in frames])
    threshold = blur_ratio * float(np.median(scores))
    kept: list[Frame] = []
    last = None
    for frame, score in zip(frames, scores):
        if score < threshold:
            continue
        thumb = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32)
        if last is not None and float(np.percentile(np.abs(thumb - last), 99.9)) < duplicate_level:
            continue
        kept.append(frame)
        last = thumb
    return kept
