"""`harp enroll`'s recording step: view bins on the posed hand model, the guide, the panel, and the
headless recorder with the real tracker on a real video and on a synthetic clip (the builder is
not run here)."""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from demos import enroll
from demos.cli import main
from harp_track import load_hand_model
from harp_track.camera import Camera
from harp_track.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle, palm_to_camera
from harp_track.result import TrackedHand
from harp_track.synthetic import make_clip

VIDEO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
CAMERA = Camera.from_fov(320, 240)


@pytest.fixture(scope="module")
def model():
    return load_hand_model()


def posed_hand(model, turn=(0.0, 0.0, 0.0), gesture="flat", track_id=1, shift=0.0) -> TrackedHand:
    """The right hand model 45 cm in front of the camera, palm to it, then turned by the
    axis-angle `turn` (camera axes), in a named gesture, `shift` metres to the right."""
    orient = matrix_to_axis_angle(axis_angle_to_matrix(torch.tensor(turn)) @ palm_to_camera())[None]
    transl = torch.tensor([[shift, 0.05, 0.45]])
    pose = model.anatomy.to_pose(model.anatomy.gesture(gesture))
    with torch.no_grad():
        out = model(global_orient=orient, pose=pose, transl=transl)
    joints = out.keypoints[0]
    return TrackedHand("right", joints.numpy(), CAMERA.project(joints).numpy(), out.vertices[0].numpy(), 1.0,
                       orient[0].numpy(), pose[0].numpy(), np.zeros(model.num_shape, np.float32),
                       transl[0].numpy(), track_id)


@pytest.mark.parametrize("yaw, name", list(zip((0, 60, 120, 180, -120, -60), enroll.YAW_BINS)))
def test_turning_the_hand_about_the_vertical_walks_the_yaw_bins(model, yaw, name):
    # Turning by -yaw about camera y swings the palm normal towards +x (image right) for yaw > 0.
    hand = posed_hand(model, turn=(0.0, -math.radians(yaw), 0.0))
    measured, pitch = enroll.palm_orientation(hand.joints, "right")
    assert abs((measured - yaw + 180) % 360 - 180) < 12 and abs(pitch) < 20  # the MCPs are not coplanar with the wrist axis
    assert enroll.orientation_bin(measured, pitch) == name


def test_tilts_mirrors_and_fingers(model):
    up = posed_hand(model, turn=(-1.1, 0.0, 0.0))  # about camera x: the palm normal swings upwards
    assert enroll.orientation_bin(*enroll.palm_orientation(up.joints, "right")) == "facing up"
    down = posed_hand(model, turn=(1.1, 0.0, 0.0))
    assert enroll.orientation_bin(*enroll.palm_orientation(down.joints, "right")) == "facing down"
    # A right hand's palm facing right, seen in a mirror, is a left hand's palm facing left.
    right = posed_hand(model, turn=(0.0, -1.0, 0.0))
    mirrored = right.joints * np.array([-1.0, 1.0, 1.0], np.float32)
    yaw_right, _ = enroll.palm_orientation(right.joints, "right")
    yaw_left, _ = enroll.palm_orientation(mirrored, "left")
    assert yaw_right > 30 and yaw_left == pytest.approx(-yaw_right, abs=1e-3)
    # The line of sight, not the optical axis: a hand far to the right, palm to the camera's
    # centre, is still a palm view.
    aside = posed_hand(model, turn=(0.0, math.atan2(0.35, 0.45), 0.0), shift=0.35)
    assert enroll.orientation_bin(*enroll.palm_orientation(aside.joints, "right")) == "palm"
    assert enroll.finger_bin(posed_hand(model, gesture="spread").joints) == "spread"
    assert enroll.finger_bin(posed_hand(model, gesture="fist").joints) == "closed"


def test_coverage_counts_frames_and_a_still_hand(model):
    coverage = enroll.CoverageTracker(frames_per_bin=2)
    assert coverage.coverage() == 0 and len(coverage.missing()) == len(enroll.BINS)
    hand = posed_hand(model, gesture="spread")
    assert coverage.update(hand, 0.0) and coverage.current == ("palm", "spread")
    assert coverage.update(hand, 0.1) and coverage.current == ("palm", "spread", "still")
    assert coverage.update(hand, 0.2)  # palm and spread are full, still gets its second frame
    assert not coverage.update(hand, 0.3) and coverage.fill("still") == 1.0
    assert coverage.coverage() == pytest.approx(3 / len(enroll.BINS))
    moved = posed_hand(model, gesture="spread", shift=0.05)
    coverage.update(moved, 0.4)
    assert "still" not in coverage.current  # 5 cm in 0.1 s
    coverage.update(posed_hand(model, track_id=2), 0.5)
    assert "still" not in coverage.current  # a new track: no motion to measure


def test_the_guide_moves_on_when_a_step_is_done_or_stalls():
    coverage = enroll.CoverageTracker(frames_per_bin=1)
    guide = enroll.Guide(coverage, stall_seconds=5.0)
    assert guide.step(0.0) is enroll.STEPS[0]
    coverage.counts["palm"] = 1
    assert guide.step(4.0) is enroll.STEPS[0]  # progress restarts the stall clock
    assert guide.step(8.0) is enroll.STEPS[0]
    assert guide.step(9.5) is enroll.STEPS[1]  # stalled: the tilts are hard for this user
    coverage.counts.update(dict.fromkeys(enroll.STEPS[1].bins, 1))
    assert guide.step(10.0) is enroll.STEPS[2]
    coverage.counts.update(dict.fromkeys(enroll.STEPS[2].bins + enroll.STEPS[3].bins, 1))
    assert guide.step(11.0) is enroll.STEPS[0]  # back round to the step left unfinished
    coverage.counts.update(dict.fromkeys(enroll.BINS, 1))
    assert guide.step(12.0) is None


def test_the_panel_shows_filled_bins_without_touching_the_frame():
    frame = np.full((360, 640, 3), 128, np.uint8)
    coverage = enroll.CoverageTracker()
    empty = enroll.render_panel(frame, coverage, enroll.STEPS[0], "note")
    coverage.counts["palm"] = coverage.frames_per_bin
    full = enroll.render_panel(frame, coverage, enroll.STEPS[0], "note")
    assert (frame == 128).all() and empty.shape == frame.shape and empty.dtype == np.uint8
    green = np.array([60, 220, 90], np.uint8)
    gained = (full == green).all(-1).sum() - (empty == green).all(-1).sum()
    assert gained > 500  # the palm sector plus the coverage bar
    tiny = enroll.render_panel(np.zeros((120, 160, 3), np.uint8), coverage, None)
    assert tiny.shape == (120, 160, 3)


def write_video(path: Path, frames_bgr, fps: float) -> None:
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()


def read_video(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def synthetic_bgr():
    clip = make_clip(num_frames=60, image_size=(240, 320))
    return [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in clip.frames]


def test_record_keeps_sharp_hand_frames_of_a_synthetic_clip(tmp_path, synthetic_bgr):
    frames, blurred, empty = [], set(), set()
    for i, frame in enumerate(synthetic_bgr):
        if i % 6 == 3:
            blurred.add(len(frames))
            frame = cv2.GaussianBlur(frame, (0, 0), 5)
        frames.append(frame)
        if i in (20, 40):  # two frames without any hand
            empty.update((len(frames), len(frames) + 1))
            frames += [np.full_like(frame, 90)] * 2
    source = tmp_path / "source.mp4"
    write_video(source, frames, 30.0)
    coverage = enroll.CoverageTracker()
    recording = enroll.record(enroll.open_source(str(source)), tmp_path / "out" / enroll.CLIP_NAME, live=False,
                              coverage=coverage)
    assert recording.stopped == "end of input" and recording.frames == len(frames) and recording.side == "right"
    kept = set(recording.kept_indices)
    assert not kept & blurred and not kept & empty
    assert recording.dropped["blurry"] >= len(blurred) - 1  # the blur gate, not the detector, drops them
    assert recording.dropped["no hand"] >= len(empty)
    assert len(kept) >= 0.85 * (len(frames) - len(blurred) - len(empty))
    written = read_video(recording.clip)
    assert len(written) == len(kept)
    first = frames[recording.kept_indices[0]].astype(float)
    assert np.abs(written[0] - first).mean() < 6  # the frame itself, only re-encoded
    assert recording.coverage is coverage and 0 < coverage.coverage() < 1
    assert coverage.fill("palm") == 1.0 and coverage.counts["spread"] > 0  # the clip's gestures, palm on
    assert "back" in coverage.missing()


@pytest.mark.skipif(not VIDEO.is_file(), reason="shared data not present")
def test_record_a_real_video_drops_defocused_and_blurred_frames(tmp_path):
    frames = read_video(VIDEO)  # 202 frames: out of focus at first, the hand sharp from ~frame 100
    blurred = set(range(130, len(frames), 5))
    for i in blurred:
        frames[i] = cv2.GaussianBlur(frames[i], (0, 0), 5)
    source = tmp_path / "real.mp4"
    write_video(source, frames, 25.0)
    recording = enroll.record(enroll.open_source(str(source)), tmp_path / enroll.CLIP_NAME, live=False)
    kept = recording.kept_indices
    assert recording.side == "right" and not set(kept) & blurred
    assert recording.dropped["blurry"] >= 60 + len(blurred) - 2 and min(kept) > 60
    assert len(kept) >= 60 and len(read_video(recording.clip)) == len(kept)
    coverage = recording.coverage
    # The woman holds her palm out, turned to image right, fingers together, then keeps still.
    assert coverage.counts["palm facing right"] >= 0.8 * len(kept)
    assert coverage.fill("closed") == coverage.fill("still") == 1.0 and coverage.counts["back"] == 0


def test_cli_records_a_mirrored_video_without_building(tmp_path, synthetic_bgr, capsys):
    source, out = tmp_path / "selfie.mp4", tmp_path / "avatars" / "alice"
    write_video(source, [cv2.flip(f, 1) for f in synthetic_bgr], 30.0)
    args = ["enroll", "--video", str(source), "--out", str(out), "--mirrored", "--record-only",
            "--camera-intrinsics", "277,277,150,120"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "right hand, coverage" in printed.out  # unmirrored: the synthetic right hand again
    assert "--camera-intrinsics 277,277,170,120" in printed.out  # cx of the unmirrored frames
    assert "coverage is poor" in printed.err and "turn to the back of your hand" in printed.err
    clip = out / enroll.CLIP_NAME
    written = read_video(clip)
    assert len(written) >= 50
    to_original = min(np.abs(written[5].astype(float) - f).mean() for f in synthetic_bgr)
    to_mirrored = min(np.abs(written[5].astype(float) - cv2.flip(f, 1)).mean() for f in synthetic_bgr)
    assert to_original < 6 < to_mirrored

    with pytest.raises(SystemExit, match="exists from an earlier enrollment"):
        main(args)
    before = clip.stat().st_mtime_ns
    # The kept clip itself as input: analysed, not rewritten.
    assert main(["enroll", "--video", str(clip), "--out", str(out), "--record-only", "--max-seconds", "1"]) == 0
    printed = capsys.readouterr().out
    assert clip.stat().st_mtime_ns == before and "build later with" in printed
    assert "of 31 frames" in printed and "stopped: time limit" in printed  # 30 fps: frames 0..30 are within 1 s


def test_cli_help_and_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["enroll", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--camera", "--video", "--out", "--headless", "--max-seconds", "--mirrored",
                   "--camera-intrinsics", "--record-only"):
        assert option in help_text
    for argv, message in ((["--camera", "0", "--video", "x.mp4", "--out", "a"], "not allowed with"),
                          (["--video", "x.mp4"], "required: --out"),
                          (["--out", "a", "--max-seconds", "-2"], "positive number of seconds"),
                          (["--out", "a", "--max-seconds", "soon"], "positive number of seconds"),
                          (["--out", "a", "--camera", "front"], "invalid int value"),
                          # Checked before recording, not after: centimetres, a sign slip, a typo.
                          (["--out", "a", "--hand-length", "19"], "in metres"),
                          (["--out", "a", "--hand-length", "-0.19"], "in metres"),
                          (["--out", "a", "--hand-length", "long"], "in metres"),
                          (["--out", "a", "--device", "gpu"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_:
            main(["enroll", *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    for argv, message in ((["--video", str(tmp_path / "nope.mp4"), "--out", "a"], "no such video"),
                          (["--out", str(a_file)], "must be a folder"),
                          (["--video", str(a_file), "--out", str(tmp_path / "b"), "--camera-intrinsics", "1,2"],
                           "fx,fy,cx,cy")):
        with pytest.raises(SystemExit, match=message):
            main(["enroll", *argv])
