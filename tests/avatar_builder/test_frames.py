"""Enrollment input: reading frames from folders and videos, masks, cameras, and the filter that
drops blurred and repeated frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import harp_track as ht
from avatar_builder import BuildSettings, EnrollmentError, build_avatar
from avatar_builder.frames import Frame, drop_blurred_and_duplicates, read_frames
from harp_track.synthetic import make_clip

H, W = 48, 64
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)  # RGB


def solid(rgb):
    image = np.zeros((H, W, 3), np.uint8)
    image[:] = rgb
    return image


def write_rgb(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture
def folder(tmp_path):
    """Three frames named out of order on disk: b (green), a (red), c (blue)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    write_rgb(folder / "b.png", solid(GREEN))
    write_rgb(folder / "a.png", solid(RED))
    write_rgb(folder / "c.jpg", solid(BLUE))
    (folder / "notes.txt").write_text("not a frame")
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 6-frame mp4: red, green, blue, red, green, blue."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    assert writer.isOpened()
    for k in range(6):
        writer.write(cv2.cvtColor(solid((RED, GREEN, BLUE)[k % 3]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def dominant(image):
    return int(np.argmax(image.reshape(-1, 3).mean(0)))


def test_folder_frames_in_name_order_as_rgb(folder):
    frames = read_frames(folder)
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.camera is None and f.mask is None for f in frames)
    # a (red), b (green), c (blue): channel 0 is red.
    assert [dominant(f.image) for f in frames] == [0, 1, 2]
    assert frames[0].image[..., 0].min() == 255 and frames[0].image[..., 1:].max() == 0
    assert len(read_frames(folder, max_frames=2)) == 2


def test_video_frames_as_rgb(video):
    frames = read_frames(video)
    assert len(frames) == 6 and [f.index for f in frames] == list(range(6))
    assert frames[0].image.shape == (H, W, 3) and frames[0].image.dtype == np.uint8
    red = frames[0].image.reshape(-1, 3).mean(0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # lossy codec: near, not exactly, pure red
    assert [dominant(f.image) for f in frames] == [0, 1, 2, 0, 1, 2]
    assert len(read_frames(video, max_frames=4)) == 4


def test_cameras_one_for_all_or_one_per_frame(folder, video):
    cam = ht.Camera(100.0, 100.0, 32.0, 24.0)
    assert all(f.camera is cam for f in read_frames(folder, cam))
    per_frame = [ht.Camera(100.0 + k, 100.0, 32.0, 24.0) for k in range(6)]
    assert [f.camera for f in read_frames(video, per_frame)] == per_frame
    with pytest.raises(ValueError, match="5 cameras given for 6 frames"):
        read_frames(video, per_frame[:5])
    with pytest.raises(ValueError, match="6 cameras given for 3 frames"):
        read_frames(folder, per_frame)


def test_missing_empty_and_unreadable_inputs(tmp_path, folder):
    with pytest.raises(FileNotFoundError):
        read_frames(tmp_path / "nothing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(EnrollmentError, match="no frames"):
        read_frames(empty)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(EnrollmentError, match="broken.png is not a readable image"):
        read_frames(folder)
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"definitely not a video" * 20)
    with pytest.raises(EnrollmentError):
        read_frames(garbage)


def test_masks_attached_by_name(tmp_path, folder):
    masks = tmp_path / "masks"
    masks.mkdir()
    left_half = np.zeros((H, W), np.uint8)
    left_half[:, : W // 2] = 255
    assert cv2.imwrite(str(masks / "b.png"), left_half)
    assert cv2.imwrite(str(masks / "zzz.png"), np.full((H, W), 255, np.uint8))  # no such frame
    frames = read_frames(folder, masks=masks)
    assert frames[0].mask is None and frames[2].mask is None  # a and c have no mask
    mask = frames[1].mask
    assert mask.dtype == bool and mask.shape == (H, W)
    assert mask[:, : W // 2].all() and not mask[:, W // 2:].any()
    with pytest.raises(FileNotFoundError):
        read_frames(folder, masks=tmp_path / "no_masks")
    assert cv2.imwrite(str(masks / "a.png"), np.zeros((H // 2, W), np.uint8))  # wrong size
    with pytest.raises(EnrollmentError, match="a.png"):
        read_frames(folder, masks=masks)


def test_video_masks_named_by_frame_number(tmp_path, video):
    masks = tmp_path / "masks"
    masks.mkdir()
    top = np.zeros((H, W), np.uint8)
    top[: H // 2] = 200
    assert cv2.imwrite(str(masks / "00004.png"), top)
    frames = read_frames(video, masks=masks)
    assert [k for k, f in enumerate(frames) if f.mask is not None] == [4]
    assert frames[4].mask[: H // 2].all() and not frames[4].mask[H // 2:].any()


@pytest.fixture(scope="module")
def moving():
    return make_clip(num_frames=12, image_size=(128, 128)).frames


def test_moving_hand_is_kept(moving):
    frames = [Frame(image, k) for k, image in enumerate(moving)]
    assert [f.index for f in drop_blurred_and_duplicates(frames)] == list(range(12))
    assert drop_blurred_and_duplicates([]) == []


def test_blurred_and_repeated_frames_are_dropped(moving):
    noise = np.random.default_rng(0).normal(0.0, 1.5, moving[5].shape)
    frames = []
    for k, image in enumerate(moving):
        if k == 7:
            image = cv2.GaussianBlur(image, (0, 0), 1.5)  # motion-blurred: softer than the clip
        frames.append(Frame(image, k))
        if k == 5:
            frames.append(Frame(image.copy(), 100))  # a paused video: the same frame again
            noisy = np.clip(image + noise, 0, 255).astype(np.uint8)  # ... with sensor noise
            frames.append(Frame(noisy, 101))
    kept = drop_blurred_and_duplicates(frames)
    assert [f.index for f in kept] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    assert all(f.image is frames[[g.index for g in frames].index(f.index)].image for f in kept)


def test_a_missing_clip_fails_before_the_output_folder_is_made(tmp_path):
    out = tmp_path / "avatars" / "alice"
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        build_avatar(tmp_path / "missing.mp4", out)
    assert not out.exists()


def test_a_clip_without_a_hand_fails_before_the_output_folder_is_made(tmp_path):
    """Sharp, distinct frames, none with a hand: refused with what to record, nothing left behind."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    out = tmp_path / "avatars" / "alice"
    with pytest.raises(EnrollmentError, match="a hand was found in only 0"):
        build_avatar(folder, out, progress=False)
    assert not out.exists()


def test_a_hand_length_that_is_not_in_metres_is_refused():
    assert BuildSettings(hand_length=0.19).hand_length == 0.19
    for length in (19.0, -0.19, 0.0):
        with pytest.raises(ValueError, match="in metres"):
            BuildSettings(hand_length=length)
