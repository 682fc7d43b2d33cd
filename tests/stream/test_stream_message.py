"""The harp_track.pose JSON messages: round trip within the rounding, size, validation, versions."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harp_track.keypoints import KEYPOINT_NAMES, KEYPOINT_PARENTS
from harp_track.stream import (
    SCHEMA,
    VERSION,
    StreamMessageError,
    StreamVersionError,
    UdpPublisher,
    WebSocketPublisher,
    PoseSubscriber,
    decode,
    encode,
    hello,
    to_json,
    to_result,
)

UDP_BUDGET = 8192  # what the issue allows one datagram


def test_round_trip_within_rounding(result, check_frame):
    data = to_json(result)
    assert isinstance(data, bytes)
    message = decode(data)
    assert message["schema"] == SCHEMA and message["version"] == VERSION == 1
    check_frame(message, result)
    # str input and an already-parsed dict decode the same
    assert decode(data.decode("utf-8")) == message
    assert decode(json.loads(data)) == message


def test_round_trip_with_vertices(result, check_frame):
    message = decode(to_json(result, include_vertices=True))
    check_frame(message, result, with_vertices=True)
    assert len(message["hands"][0]["vertices"]) == result.hands[0].vertices.shape[0]


def test_to_result_rebuilds_arrays(result):
    back = to_result(decode(to_json(result, include_vertices=True)))
    assert back.frame_index == result.frame_index and back.image_size == result.image_size
    assert back.camera.fx == pytest.approx(result.camera.fx, abs=1e-3)
    h, want = back.hands[0], result.hands[0]
    assert h.joints.dtype == np.float32 and h.joints.shape == (21, 3)
    np.testing.assert_allclose(h.joints, want.joints, atol=0.6e-4)
    np.testing.assert_allclose(h.vertices, want.vertices, atol=0.6e-4)
    np.testing.assert_allclose(h.pose, want.pose, atol=0.6e-4)
    assert h.track_id == want.track_id and h.handedness == want.handedness
    assert to_result(decode(to_json(result))).hands[0].vertices.shape == (0, 3)


def test_numbers_are_rounded_not_float32_noise(result):
    text = to_json(result).decode("utf-8")
    hands_text = text[text.index('"hands"'):text.index('"timings"')]
    decimals = [len(m) for m in re.findall(r"\.(\d+)", hands_text)]
    assert decimals and max(decimals) <= 4  # 0.1 mm, 1e-4 rad, 0.01 px
    assert " " not in text  # compact separators
    assert "-0.0," not in text and "-0.0]" not in text


def test_message_sizes(make_result_fn):
    one = len(to_json(make_result_fn(1)))
    two = len(to_json(make_result_fn(2)))
    with_vertices = len(to_json(make_result_fn(1), include_vertices=True))
    print(f"\npose stream message sizes: 1 hand {one} B, 2 hands {two} B, "
          f"1 hand with vertices {with_vertices} B")
    assert one < UDP_BUDGET / 3  # ~1.9 KB: well under a datagram
    assert two < UDP_BUDGET / 2
    assert with_vertices > UDP_BUDGET  # why vertices never go over UDP


def test_empty_frame(make_result_fn, check_frame):
    result = make_result_fn(0)
    message = decode(to_json(result))
    assert message["hands"] == []
    check_frame(message, result)


def test_hello_carries_keypoint_names():
    message = decode(json.dumps(hello()))
    assert message["type"] == "hello"
    assert message["keypoint_names"] == list(KEYPOINT_NAMES)
    assert message["keypoint_parents"] == list(KEYPOINT_PARENTS)
    assert message["units"] == "m" and message["axes"] == "opencv"


@pytest.mark.parametrize("version", [2, 0, 17])
def test_unknown_major_version_is_refused(result, version):
    message = encode(result)
    message["version"] = version
    with pytest.raises(StreamVersionError, match=rf"version {version} is not supported"):
        decode(json.dumps(message))


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_non_integer_version_is_invalid(result, version):
    message = encode(result)
    message["version"] = version
    with pytest.raises(StreamMessageError) as info:
        decode(json.dumps(message))
    assert not isinstance(info.value, StreamVersionError)


def test_forward_compatible_additions_are_accepted(result):
    message = encode(result)
    message["new_field"] = {"x": 1}
    message["hands"][0]["new_hand_field"] = [1, 2]
    assert decode(json.dumps(message))["new_field"] == {"x": 1}
    other = {"schema": SCHEMA, "version": VERSION, "type": "calibration", "anything": 1}
    assert decode(json.dumps(other))["type"] == "calibration"


def _broken(result, edit):
    message = encode(result)
    edit(message)
    return json.dumps(message)


@pytest.mark.parametrize("edit, where", [
    (lambda m: m.update(schema="other.pose"), "schema"),
    (lambda m: m.pop("type"), "type"),
    (lambda m: m.pop("frame_index"), "frame_index"),
    (lambda m: m.update(image_size=[1080]), "image_size"),
    (lambda m: m["camera"].pop("fx"), "camera.fx"),
    (lambda m: m.update(units="mm"), "units"),
    (lambda m: m["hands"][0]["joints"].pop(), "hands[0].joints"),
    (lambda m: m["hands"][0]["joints"][3].append(0.0), "hands[0].joints[3]"),
    (lambda m: m["hands"][0]["keypoints_2d"][0].__setitem__(0, "x"), "hands[0].keypoints_2d[0]"),
    (lambda m: m["hands"][0].update(handedness="both"), "hands[0].handedness"),
    (lambda m: m["hands"][0].update(track_id=1.5), "hands[0].track_id"),
    (lambda m: m["hands"][0].update(transl=[0, 0]), "hands[0].transl"),
    (lambda m: m["hands"][0].update(vertices=[[0, 0]]), "hands[0].vertices[0]"),
    (lambda m: m.update(timings=[1]), "timings"),
])
def test_invalid_frames_are_refused(result, edit, where):
    with pytest.raises(StreamMessageError, match=re.escape(where)):
        decode(_broken(result, edit))


@pytest.mark.parametrize("data", [b"\xff\xfe", b"{not json", b"[1, 2]", "42"])
def test_garbage_is_refused(data):
    with pytest.raises(StreamMessageError):
        decode(data)


def test_encode_refuses_what_json_cannot_carry(result):
    result.hands[0].joints[5, 1] = np.nan
    with pytest.raises(ValueError, match="joints"):
        to_json(result)
    result.hands[0].joints[5, 1] = 0.1
    result.hands[0].keypoints_2d = np.zeros((20, 2), np.float32)
    with pytest.raises(ValueError, match="keypoints_2d"):
        to_json(result)


def test_loopback_unless_explicit():
    for make in (lambda **kw: UdpPublisher("192.0.2.1", 9, **kw),
                 lambda **kw: WebSocketPublisher("0.0.0.0", 0, **kw),
                 lambda **kw: PoseSubscriber("0.0.0.0", 0, **kw)):
        with pytest.raises(ValueError, match="allow_remote=True"):
            make()
        make(allow_remote=True).close()  # an explicit choice works
    UdpPublisher("localhost", 9).close()


def test_udp_never_carries_vertices():
    with pytest.raises(ValueError, match="never sends vertices"):
        UdpPublisher(port=9, include_vertices=True)
