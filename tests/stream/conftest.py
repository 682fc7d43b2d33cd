"""Known TrackingResults for the pose stream tests (sizes of the open Anny hand: 1609 vertices,
20 posed joints, 10 shape components)."""

from __future__ import annotations

import numpy as np
import pytest

from harp_track.camera import Camera
from harp_track.result import TrackedHand, TrackingResult

NUM_VERTICES = 1609
NUM_POSE = 20
NUM_SHAPE = 10


def make_hand(rng: np.random.Generator, handedness: str = "right", track_id: int = 1,
              num_vertices: int = NUM_VERTICES) -> TrackedHand:
    """A hand at ~0.5 m with full-HD pixel coordinates, float32 like the tracker's output."""
    f32 = np.float32
    return TrackedHand(
        handedness=handedness,
        joints=(rng.normal(0, 0.06, (21, 3)) + [0.05, -0.03, 0.5]).astype(f32),
        keypoints_2d=rng.uniform(-20, 1940, (21, 2)).astype(f32),
        vertices=(rng.normal(0, 0.05, (num_vertices, 3)) + [0.05, -0.03, 0.5]).astype(f32),
        confidence=float(rng.uniform(0.5, 1)),
        global_orient=rng.uniform(-3, 3, 3).astype(f32),
        pose=rng.uniform(-1.5, 1.5, (NUM_POSE, 3)).astype(f32),
        shape=rng.normal(0, 1.5, NUM_SHAPE).astype(f32),
        transl=(rng.normal(0, 0.1, 3) + [0, 0, 0.5]).astype(f32),
        track_id=track_id,
    )


def make_result(num_hands: int = 1, frame_index: int = 7, seed: int = 0) -> TrackingResult:
    rng = np.random.default_rng(seed)
    hands = [make_hand(rng, "right" if i % 2 == 0 else "left", track_id=10 + i)
             for i in range(num_hands)]
    return TrackingResult(
        hands=hands,
        camera=Camera(1401.2345678, 1399.87654, 960.5, 540.25, assumed=False),
        timestamp=1234.5678901,
        frame_index=frame_index,
        image_size=(1080, 1920),
        timings={"detect": 2.34567, "fit": 11.0001, "total": 14.9},
    )


def assert_frame_matches(message: dict, result: TrackingResult, with_vertices: bool = False) -> None:
    """The decoded frame carries `result`'s values, each within half its rounding step."""
    assert message["type"] == "frame"
    assert message["frame_index"] == result.frame_index
    assert message["image_size"] == list(result.image_size)
    assert message["timestamp"] == pytest.approx(result.timestamp, abs=0.6e-6)
    cam = message["camera"]
    for k in ("fx", "fy", "cx", "cy"):
        assert cam[k] == pytest.approx(getattr(result.camera, k), abs=0.6e-3)
    assert cam["assumed"] is result.camera.assumed
    assert message["units"] == "m" and message["axes"] == "opencv"
    assert set(message["timings"]) == set(result.timings)
    for k, v in result.timings.items():
        assert message["timings"][k] == pytest.approx(v, abs=0.6e-3)
    assert len(message["hands"]) == len(result.hands)
    for got, want in zip(message["hands"], result.hands):
        assert got["track_id"] == want.track_id
        assert got["handedness"] == want.handedness
        assert got["confidence"] == pytest.approx(want.confidence, abs=0.6e-4)
        tolerance = {"joints": 0.6e-4, "keypoints_2d": 0.6e-2, "global_orient": 0.6e-4,
                     "pose": 0.6e-4, "shape": 0.6e-4, "transl": 0.6e-4}
        if with_vertices:
            tolerance["vertices"] = 0.6e-4
        else:
            assert "vertices" not in got
        for name, tol in tolerance.items():
            value = np.asarray(got[name], np.float64)
            expected = np.asarray(getattr(want, name), np.float64)
            assert value.shape == expected.shape, name
            np.testing.assert_allclose(value, expected, rtol=0, atol=tol, err_msg=name)


@pytest.fixture
def result() -> TrackingResult:
    return make_result()


# Fixtures rather than imports: tests/render has a conftest.py too, so "import conftest" is ambiguous.
@pytest.fixture
def make_result_fn():
    return make_result


@pytest.fixture
def check_frame():
    return assert_frame_matches
