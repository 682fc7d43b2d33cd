"""The streaming tracker end to end: real MediaPipe, real fit, synthetic frames with ground truth."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from harp_track.camera import Camera
from harp_track.fit.filtering import PoseFilterSettings
from harp_track.landmarks import create_detector
from harp_track.synthetic import clip_avatar as synthetic_clip_avatar, make_clip
from harp_track.tracker import Tracker, refinement_device

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_frames=12, image_size=(240, 320), seed=3)


@pytest.fixture(scope="module")
def tracker():
    with Tracker(max_hands=2) as t:
        yield t


def test_tracks_a_synthetic_clip_in_metres(clip, tracker):
    tracker.reset()
    errors_3d, errors_2d = [], []
    for frame, t, joints, keypoints in zip(clip.frames, clip.timestamps, clip.joints, clip.keypoints_2d):
        result = tracker.process(frame, clip.camera, t)
        assert set(result.timings) == {"landmarks", "fit", "refine", "filter", "mesh"}
        assert result.timings["refine"] == 0.0  # no avatar: nothing to refine against
        assert len(result.hands) == 1
        hand = result.hands[0]
        assert hand.handedness == "right"
        assert hand.joints.shape == (21, 3) and hand.joints.dtype == np.float32
        assert hand.vertices.shape == (1609, 3) and 0 < hand.confidence <= 1
        errors_3d.append(np.linalg.norm(hand.joints - joints, axis=1).mean())
        errors_2d.append(np.linalg.norm(hand.keypoints_2d - keypoints, axis=1).mean())
    assert result.hand_size_assumed and not result.camera.assumed
    # Camera space, with the model's mean size (which this synthetic hand has): centimetres, not metres.
    assert np.mean(errors_3d) < 0.06
    assert np.mean(errors_2d) < 12.0
    assert len({h.track_id for h in result.hands}) == 1


def test_reported_pose_parameters_reproduce_the_reported_mesh(clip, tracker):
    """The vertices (from the numba kinematics) are what the hand model gives for the reported
    global_orient, pose, shape and transl, for both hands' models; the joints too, but for the
    landmarks' detail: moved within the image plane, by at most its cap."""
    tracker.reset()
    hands = [h for f, t in zip(clip.frames[:3], clip.timestamps[:3]) for h in tracker.process(f, clip.camera, t).hands]
    tracker.reset()
    mirrored = np.ascontiguousarray(clip.frames[0][:, ::-1])
    hands += tracker.process(mirrored, clip.camera, clip.timestamps[0]).hands  # the left hand's model
    assert {h.handedness for h in hands} == {"right", "left"}
    for hand in hands:
        model = tracker.models[hand.handedness]
        args = {k: torch.from_numpy(getattr(hand, k))[None] for k in ("global_orient", "pose", "shape", "transl")}
        with torch.no_grad():
            out = model(**args)
        np.testing.assert_allclose(hand.vertices, out.vertices[0].numpy(), atol=2e-6)
        model_joints = out.keypoints[0].numpy()
        np.testing.assert_allclose(hand.joints[:, 2], model_joints[:, 2], atol=2e-6)
        shift = hand.keypoints_2d - clip.camera.project(torch.from_numpy(model_joints)).numpy()
        extent = np.linalg.norm(hand.keypoints_2d.max(0) - hand.keypoints_2d.min(0))
        assert np.linalg.norm(shift, axis=1).max() < 0.06 * extent


def test_joints_keep_the_landmarks_detail_the_model_cannot_express(clip):
    """A still hand: with the detail, the reported keypoints settle onto the landmarks, which the
    model's own keypoints miss by its fit residual; the joints still project onto them."""
    frame, gaps = clip.frames[4], {}
    detector = create_detector(max_hands=1, backend="onnx", flip_average=True)  # the tracker's default
    landmarks = [detector.detect(frame, i / 30)[0].image_xy for i in range(30)][-1]  # as the tracker's sees it
    detector.close()
    for detail in (None, PoseFilterSettings().detail_time_constant):
        settings = dataclasses.replace(PoseFilterSettings(), detail_time_constant=detail)
        with Tracker(max_hands=1, smoothing=settings) as tracker:
            hands = [tracker.process(frame, clip.camera, i / 30).hands[0] for i in range(30)]
        gaps[detail] = np.linalg.norm(hands[-1].keypoints_2d - landmarks, axis=1).mean()
        np.testing.assert_allclose(hands[-1].keypoints_2d,
                                   clip.camera.project(torch.from_numpy(hands[-1].joints)).numpy(), atol=1e-3)
    assert gaps[None] > 0.5  # the model's own miss
    assert gaps[PoseFilterSettings().detail_time_constant] < 0.1 * gaps[None]


def test_filtered_output_trails_the_fit_by_at_most_the_lag_bound(clip):
    """Every third frame (fast motion between samples): filtered keypoints stay within about
    `max_lag` of the hand's image size of the unfiltered ones, while still differing from them."""
    settings = dataclasses.replace(PoseFilterSettings(), detail_time_constant=None)  # the pose filter alone
    outputs = []
    for smoothing in (settings, None):
        with Tracker(max_hands=1, smoothing=smoothing) as tracker:
            outputs.append([tracker.process(frame, clip.camera, t).hands[0].keypoints_2d
                            for frame, t in zip(clip.frames[::3], clip.timestamps[::3])])
    gaps = []
    for smooth, raw in zip(*outputs):
        extent = np.linalg.norm(raw.max(0) - raw.min(0))
        gaps.append(np.linalg.norm(smooth - raw, axis=1).mean() / extent)
    assert max(gaps) < 1.5 * settings.max_lag
    assert max(gaps[1:]) > 0.1 * settings.max_lag


def test_no_hand_gives_an_empty_list(tracker):
    tracker.reset()
    result = tracker.process(np.full((240, 320, 3), 90, np.uint8), timestamp=100.0)
    assert result.hands == [] and result.camera.assumed
    assert result.camera == Camera.from_fov(320, 240)


@pytest.mark.parametrize("image, message", [
    (np.zeros((240, 320), np.uint8), "H x W x 3 uint8"),
    (np.zeros((240, 320, 3), np.float32), "float32"),
    ([[0]], "list"),
])
def test_bad_images_raise_value_errors(tracker, image, message):
    with pytest.raises(ValueError, match=message):
        tracker.process(image)


def test_empty_images_and_cameras_of_another_type_are_refused(tracker):
    with pytest.raises(ValueError, match="empty"):
        tracker.process(np.zeros((0, 0, 3), np.uint8))
    image = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(TypeError, match="Camera"):
        tracker.process(image, camera=np.eye(3))
    with pytest.raises(TypeError, match="Camera"):
        tracker.process(image, camera=(300.0, 300.0, 160.0, 120.0))


def test_landmarks_found_elsewhere_need_finite_increasing_timestamps(clip, clip_avatar):
    """As `process` (its landmark model checks them): a NaN time would turn every later pose into
    NaN in the filter, and a time going back would reset it silently."""
    detector = create_detector("onnx", max_hands=1)
    found = detector.detect(clip.frames[0], 0.0)
    detector.close()
    with Tracker(avatar=clip_avatar, max_hands=1) as tracker:
        tracker.process_landmarks(clip.frames[0], found, clip.camera, 1.0)
        for bad in (float("nan"), float("inf"), 1.0, 0.5):
            with pytest.raises(ValueError, match="timestamp"):
                tracker.process_landmarks(clip.frames[0], found, clip.camera, bad)
        assert np.isfinite(tracker.process_landmarks(clip.frames[0], found, clip.camera, 1.1).hands[0].joints).all()
        tracker.reset()  # a new sequence may start again from 0
        assert tracker.process_landmarks(clip.frames[0], found, clip.camera, 0.0).hands


@pytest.mark.skipif(not (SHARED / "mediapipe_samples").is_dir(), reason="shared data not present")
def test_real_photo_left_and_right(tracker):
    import cv2

    tracker.reset()
    image = cv2.cvtColor(cv2.imread(str(SHARED / "in_the_wild" / "mediapipe_rs_samples" / "google_sample_woman_hands.jpg")), cv2.COLOR_BGR2RGB)
    result = tracker.process(image, timestamp=200.0)
    assert sorted(h.handedness for h in result.hands) == ["left", "right"]
    for hand in result.hands:
        assert 0.1 < hand.joints[:, 2].mean() < 3.0  # in front of the camera, at a sane distance


def test_mirrored_selfie_view_gives_the_mirror_image_hand(clip):
    """A selfie frame is the unmirrored one flipped left-right: with mirrored=True the tracker
    reports the user's true side and joints that are the mirror (x -> -x for a centred camera)
    of the unmirrored result, so they project onto the mirrored picture the user sees."""
    frame = clip.frames[0]
    with Tracker(max_hands=1, smoothing=None) as plain, Tracker(max_hands=1, smoothing=None, mirrored=True) as selfie:
        direct = plain.process(frame, clip.camera, 0.0).hands[0]
        flipped = selfie.process(np.ascontiguousarray(frame[:, ::-1]), clip.camera, 0.0).hands[0]
    assert direct.handedness == flipped.handedness == "right"
    mirrored_joints = direct.joints * np.array([-1.0, 1.0, 1.0], np.float32)
    # MediaPipe is not exactly mirror-symmetric: its landmarks differ by a few pixels and the fit's
    # depth by about a centimetre; a hand fitted with the wrong side turns its palm around.
    assert np.linalg.norm(flipped.joints - mirrored_joints, axis=1).mean() < 0.02

    def palm_normal(j):
        n = np.cross(j[5] - j[0], j[17] - j[0])
        return n / np.linalg.norm(n)
    assert palm_normal(flipped.joints) @ palm_normal(mirrored_joints) > 0.9
    width = frame.shape[1]
    assert np.abs(flipped.keypoints_2d[:, 0] - (width - direct.keypoints_2d[:, 0])).mean() < 3.0


@pytest.fixture(scope="module")
def clip_avatar():
    """The avatar of the clip's own hand: its mesh, albedo and light."""
    return synthetic_clip_avatar(seed=3)


def test_refinement_with_the_avatar_improves_the_track(clip, clip_avatar):
    results = {}
    for refine in (False, True):
        with Tracker(avatar=clip_avatar, max_hands=1, refine=refine, smoothing=None) as tracker:
            results[refine] = [tracker.process(f, clip.camera, t) for f, t in zip(clip.frames, clip.timestamps)]
    errors = {}
    for refine, frames in results.items():
        assert all(len(r.hands) == 1 for r in frames)
        hands = [r.hands[0] for r in frames]
        assert all((h.appearance_agreement is not None) == refine for h in hands)
        assert all((r.timings["refine"] > 0) == refine for r in frames)
        errors[refine] = (np.mean([np.linalg.norm(h.keypoints_2d - k, axis=1).mean() for h, k in zip(hands, clip.keypoints_2d)]),
                          np.mean([np.linalg.norm(h.joints - j, axis=1).mean() for h, j in zip(hands, clip.joints)]))
    # Measured: 2D 3.71 -> 1.60 px, camera space 45 -> 7.4 mm.
    assert errors[True][0] < errors[False][0], errors
    assert errors[True][1] < 0.5 * errors[False][1], errors  # 0.75 with a landmark Jacobian taken once a frame
    assert min(h.appearance_agreement for r in results[True] for h in r.hands) > 0.5


def test_pipelined_stream_gives_the_same_results_as_process(clip, clip_avatar):
    frames = list(zip(clip.frames[:6], [clip.camera] * 6, clip.timestamps[:6]))
    with Tracker(avatar=clip_avatar, max_hands=1) as tracker:
        one_by_one = [tracker.process(*f) for f in frames]
    with Tracker(avatar=clip_avatar, max_hands=1) as tracker:
        streamed = list(tracker.track(iter(frames)))
    assert [r.frame_index for r in streamed] == list(range(6))
    for a, b in zip(one_by_one, streamed):
        assert len(a.hands) == len(b.hands) == 1
        np.testing.assert_allclose(a.hands[0].joints, b.hands[0].joints, atol=1e-6)


def test_landmarks_found_elsewhere_give_the_same_results_as_process(clip, clip_avatar):
    """An engine's own landmarks (here: a second detector like the tracker's) go through the same
    fit, refinement and filter."""
    frames = list(zip(clip.frames[:6], [clip.camera] * 6, clip.timestamps[:6]))
    with Tracker(avatar=clip_avatar, max_hands=1) as tracker:
        own = [tracker.process(*f) for f in frames]
    detector = create_detector("onnx", max_hands=1, flip_average=True)
    with Tracker(avatar=clip_avatar, max_hands=1) as tracker:
        given = [tracker.process_landmarks(f[0], detector.detect(f[0], f[2]), f[1], f[2]) for f in frames]
    detector.close()
    for a, b in zip(own, given):
        assert len(a.hands) == len(b.hands) == 1
        np.testing.assert_allclose(a.hands[0].joints, b.hands[0].joints, atol=1e-6)
        assert b.hands[0].appearance_agreement is not None and b.timings["landmarks"] == 0.0


def test_malformed_landmarks_are_refused(clip, tracker):
    detector = create_detector("onnx", max_hands=1)
    good = detector.detect(clip.frames[0], 0.0)[0]
    detector.close()
    for bad, message in ((dataclasses.replace(good, image_xy=good.image_xy[:20]), "image_xy"),
                         (dataclasses.replace(good, world_xyz=good.world_xyz * np.nan), "world_xyz"),
                         (dataclasses.replace(good, handedness="Left"), "handedness"),
                         (good.image_xy, "HandLandmarks")):
        with pytest.raises(ValueError, match=message):
            tracker.process_landmarks(clip.frames[0], [bad], clip.camera, 0.0)
    with pytest.raises(ValueError, match="a list of HandLandmarks"):
        tracker.process_landmarks(clip.frames[0], good, clip.camera, 0.0)


def test_landmark_backends_by_name():
    """The default averages each crop with its mirror image (steadier landmarks); the others are
    MediaPipe's graph, ported or its own."""
    from harp_track.landmarks.mediapipe_backend import MediaPipeDetector
    from harp_track.landmarks.onnx_backend import OnnxDetector

    with Tracker(max_hands=1) as tracker:
        assert isinstance(tracker._detector, OnnxDetector) and tracker._detector.flip_average
    with Tracker(max_hands=1, landmarks="onnx") as tracker:
        assert isinstance(tracker._detector, OnnxDetector) and not tracker._detector.flip_average
    with Tracker(max_hands=1, landmarks="mediapipe") as tracker:
        assert isinstance(tracker._detector, MediaPipeDetector)
    with pytest.raises(ValueError, match="landmarks"):
        Tracker(landmarks="tflite")


def test_cuda_device_without_cuda_is_refused(clip_avatar):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device"):
        Tracker(avatar=clip_avatar, device="cuda")


@pytest.mark.parametrize("cuda_seen", [False, True])
def test_auto_device_puts_the_refinement_on_cuda_only_with_nvdiffrast(monkeypatch, cuda_seen):
    """"auto" renders on CUDA only with nvdiffrast (the torch renderer is slower there than on the
    CPU at the refinement's crop); an explicit device is honoured."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_seen)
    gpu = torch.device("cuda" if cuda_seen else "cpu")
    assert refinement_device("auto", "torch") == torch.device("cpu")
    assert refinement_device("auto", "nvdiffrast") == gpu
    assert refinement_device("cpu", "nvdiffrast") == torch.device("cpu")
    if cuda_seen:
        assert refinement_device("cuda", "torch") == gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_trackers_agree(clip, clip_avatar):
    """The whole tracker on CUDA (ONNX landmarks there when onnxruntime-gpu is installed) against
    the CPU, over a clip, so warm starts and the filter carry any gap from frame to frame. Float
    sums differ between the devices and depth is the pose's weakest direction, so the runs drift
    apart by millimetres (measured on an H200 over 12 frames: under 0.5 px and 2-5 mm a frame),
    far less than either is from the truth; both must be equally accurate."""
    results = {}
    for device in ("cpu", "cuda"):
        with Tracker(avatar=clip_avatar, max_hands=1, landmarks="onnx", device=device) as tracker:
            results[device] = [tracker.process(f, clip.camera, t) for f, t in zip(clip.frames, clip.timestamps)]
    assert all(len(r.hands) == 1 and r.timings["refine"] > 0 for r in results["cuda"])
    assert all(len(r.hands) == 1 for r in results["cpu"])
    pairs = [(a.hands[0], b.hands[0]) for a, b in zip(results["cpu"], results["cuda"])]
    assert np.mean([np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=1).mean() for a, b in pairs]) < 1.0
    assert np.mean([np.linalg.norm(a.joints - b.joints, axis=1).mean() for a, b in pairs]) < 0.008
    error = {device: np.mean([np.linalg.norm(r.hands[0].joints - j, axis=1).mean() for r, j in zip(rs, clip.joints)])
             for device, rs in results.items()}
    assert error["cuda"] < 1.1 * error["cpu"], error


def test_mirrored_selfie_view_refines_with_the_mirrored_avatar(clip, clip_avatar):
    """The user's right hand in a selfie view looks like a left hand: it is refined with the
    avatar's mirror image, and the result mirrors the unmirrored refined one."""
    frame = clip.frames[0]
    with Tracker(avatar=clip_avatar, max_hands=1, smoothing=None) as plain, \
            Tracker(avatar=clip_avatar, max_hands=1, smoothing=None, mirrored=True) as selfie:
        direct = plain.process(frame, clip.camera, 0.0).hands[0]
        flipped = selfie.process(np.ascontiguousarray(frame[:, ::-1]), clip.camera, 0.0).hands[0]
    assert flipped.handedness == "right" and flipped.appearance_agreement > 0.8
    assert abs(flipped.appearance_agreement - direct.appearance_agreement) < 0.1
    mirrored_joints = direct.joints * np.array([-1.0, 1.0, 1.0], np.float32)
    assert np.linalg.norm(flipped.joints - mirrored_joints, axis=1).mean() < 0.02


def test_avatar_renders_a_selfie_trackers_hand_where_it_tracked_it(clip, clip_avatar):
    """`Avatar.render(..., mirrored=True)` draws a selfie tracker's hand with the model it was
    fitted with, so the render is the tracked mesh's; without it, the other side's model posed
    with those parameters lands elsewhere."""
    frame = np.ascontiguousarray(clip.frames[0][:, ::-1])
    with Tracker(avatar=clip_avatar, max_hands=1, smoothing=None, mirrored=True) as selfie:
        hand = selfie.process(frame, clip.camera, 0.0).hands[0]
    size = frame.shape[:2]
    fitted = clip_avatar.for_side("left")  # the user's right hand, seen mirrored
    with torch.no_grad():
        _, mesh_alpha = fitted.render_vertices(torch.from_numpy(hand.vertices)[None], clip.camera, size,
                                               torch.from_numpy(fitted.light_position)[None])
    tracked = mesh_alpha[0].numpy() > 0.5

    def iou(alpha: np.ndarray) -> float:
        return ((alpha > 0.5) & tracked).sum() / ((alpha > 0.5) | tracked).sum()

    assert iou(clip_avatar.render(hand, clip.camera, size, mirrored=True)[1]) > 0.99
    assert iou(clip_avatar.render(hand, clip.camera, size)[1]) < 0.8
