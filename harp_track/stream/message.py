"""The versioned JSON messages of the pose stream (schema "harp_track.pose"; see docs/pose_stream.md).

Every message is one UTF-8 JSON object with an envelope {"schema", "version", "type"}:

* "frame": one TrackingResult (made by `encode` / `to_json`), sent once per tracked frame.
* "hello": what never changes during a session (keypoint names and skeleton, units, axes), sent to
  each WebSocket client when it connects and periodically over UDP (made by `hello`).

`version` is the integer major version. Additions that old readers can ignore (new fields, new
message types) keep it; anything else bumps it, and `decode` refuses versions it does not know with a
`StreamVersionError`. Readers must ignore unknown fields and unknown message types.

Floats are rounded before they are written (see PRECISION) so a one-hand frame without vertices is
about 2 KB of JSON; `to_result` turns a decoded frame back into a TrackingResult.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..keypoints import KEYPOINT_NAMES, KEYPOINT_PARENTS, NUM_KEYPOINTS

if TYPE_CHECKING:  # the decoding side needs neither torch nor the tracker
    from ..result import TrackedHand, TrackingResult

SCHEMA = "harp_track.pose"
VERSION = 1
SUPPORTED_VERSIONS = frozenset({VERSION})
FRAME = "frame"
HELLO = "hello"
UNITS = "m"
AXES = "opencv"
HANDEDNESS = ("left", "right")

# Decimal places kept per field: 0.1 mm for positions, 0.01 px for pixels, 1e-4 rad for rotations.
PRECISION: dict[str, int] = {
    "joints": 4, "transl": 4, "vertices": 4,  # metres
    "keypoints_2d": 2,  # pixels
    "global_orient": 4, "pose": 4,  # radians (axis-angle)
    "shape": 4, "confidence": 4,
    "camera": 3,  # pixels
    "timestamp": 6,  # seconds
    "timings": 3,  # milliseconds
}


class StreamMessageError(ValueError):
    """A message that is not a valid harp_track.pose message."""


class StreamVersionError(StreamMessageError):
    """A harp_track.pose message of a major version this reader does not understand."""


# --------------------------------------------------------------------------------------- encoding
def _floats(values: Any, decimals: int, name: str) -> Any:
    """Nested lists of rounded Python floats. float64 first so float32 noise does not reappear in the
    JSON text (0.1234 rather than 0.12340000271797180)."""
    a = np.asarray(values, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"pose stream: {name} has non-finite values (NaN or inf), which JSON cannot "
                         "carry")
    return (np.round(a, decimals) + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0


def _float(value: float, decimals: int, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"pose stream: {name} is not finite ({value})")
    return round(value, decimals) + 0.0


def _shaped(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != len(shape) or any(s not in (-1, n) for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"pose stream: {name} must have shape {want}, got {a.shape}")
    return a


def encode_hand(hand: "TrackedHand", include_vertices: bool = False) -> dict[str, Any]:
    """One TrackedHand as the JSON-ready dict of a frame's `hands` list."""
    if hand.handedness not in HANDEDNESS:
        raise ValueError(f"pose stream: handedness must be 'left' or 'right', got {hand.handedness!r}")
    p = PRECISION
    out: dict[str, Any] = {
        "track_id": int(hand.track_id),
        "handedness": hand.handedness,
        "confidence": _float(hand.confidence, p["confidence"], "confidence"),
        "joints": _floats(_shaped(hand.joints, (NUM_KEYPOINTS, 3), "joints"), p["joints"], "joints"),
        "keypoints_2d": _floats(_shaped(hand.keypoints_2d, (NUM_KEYPOINTS, 2), "keypoints_2d"),
                                p["keypoints_2d"], "keypoints_2d"),
        "global_orient": _floats(np.reshape(_shaped(hand.global_orient, (-1,), "global_orient"), 3),
                                 p["global_orient"], "global_orient"),
        "pose": _floats(np.reshape(hand.pose, (-1, 3)), p["pose"], "pose"),
        "shape": _floats(np.reshape(hand.shape, (-1,)), p["shape"], "shape"),
        "transl": _floats(np.reshape(_shaped(hand.transl, (-1,), "transl"), 3), p["transl"], "transl"),
    }
    if include_vertices:
        out["vertices"] = encode_vertices(hand.vertices)
    return out


def vertices_array(vertices: Any) -> np.ndarray:
    """A validated float32 copy of a hand's (V, 3) vertices (for encoding later, elsewhere)."""
    a = np.array(_shaped(vertices, (-1, 3), "vertices"), dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("pose stream: vertices has non-finite values (NaN or inf)")
    return a


def encode_vertices(vertices: Any) -> list[list[float]]:
    """(V, 3) vertices as rounded nested lists (about 4 ms for 1609 vertices with the JSON)."""
    return _floats(_shaped(vertices, (-1, 3), "vertices"), PRECISION["vertices"], "vertices")


def encode(result: "TrackingResult", include_vertices: bool = False) -> dict[str, Any]:
    """A TrackingResult as a "frame" message (a JSON-ready dict). Vertices are left out unless
    asked for: they are ~20x the rest of a hand and an AR engine usually poses its own mesh."""
    p = PRECISION
    cam = result.camera
    height, width = (int(v) for v in result.image_size)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "type": FRAME,
        "frame_index": int(result.frame_index),
        "timestamp": _float(result.timestamp, p["timestamp"], "timestamp"),
        "image_size": [height, width],
        "camera": {
            "fx": _float(cam.fx, p["camera"], "camera.fx"),
            "fy": _float(cam.fy, p["camera"], "camera.fy"),
            "cx": _float(cam.cx, p["camera"], "camera.cx"),
            "cy": _float(cam.cy, p["camera"], "camera.cy"),
            "assumed": bool(cam.assumed),
        },
        "units": UNITS,
        "axes": AXES,
        "hands": [encode_hand(h, include_vertices) for h in result.hands],
        "timings": {str(k): _float(v, p["timings"], f"timings[{k!r}]")
                    for k, v in result.timings.items()},
    }


def hello(**extra: Any) -> dict[str, Any]:
    """The "hello" message: the constants of the stream (keypoint names in MediaPipe order, the
    skeleton's parent indices, units and axes). `extra` fields are added as they are."""
    from .. import __version__

    return {
        "schema": SCHEMA,
        "version": VERSION,
        "type": HELLO,
        "keypoint_names": list(KEYPOINT_NAMES),
        "keypoint_parents": list(KEYPOINT_PARENTS),
        "units": UNITS,
        "axes": AXES,
        "producer": f"harp_track {__version__}",
        **extra,
    }


def dumps(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a message dict (no spaces, NaN refused)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False).encode("utf-8")


def vertices_json(vertices: Any, chunk_rows: int = 256) -> str:
    """JSON text of (V, 3) rounded vertices, made a few hundred rows at a time: one json.dumps of
    a whole mesh holds the GIL for milliseconds and would stall the tracker's thread."""
    a = _shaped(vertices, (-1, 3), "vertices")
    parts = [json.dumps(_floats(a[s:s + chunk_rows], PRECISION["vertices"], "vertices"),
                        separators=(",", ":"))[1:-1] for s in range(0, len(a), chunk_rows)]
    return "[" + ",".join(parts) + "]"


def frame_json(frame: dict[str, Any], vertices: list[Any] | None = None) -> bytes:
    """Compact JSON of a frame dict made by encode(..., include_vertices=False), with each hand's
    (V, 3) `vertices` spliced in (in the same order as frame["hands"]) when given."""
    if vertices is None:
        return dumps(frame)
    hands = frame["hands"]
    if len(vertices) != len(hands):
        raise ValueError(f"pose stream: {len(vertices)} vertex arrays for {len(hands)} hands")
    texts = [dumps({k: v for k, v in hand.items() if k != "vertices"}).decode("utf-8")[:-1]
             + ',"vertices":' + vertices_json(v) + "}" for hand, v in zip(hands, vertices)]
    head = dumps({**frame, "hands": []}).decode("utf-8")
    # "hands" is a top-level key written before any user text (timings), so the first match is it.
    text = head.replace('"hands":[]', '"hands":[' + ",".join(texts) + "]", 1)
    return text.encode("utf-8")


def to_json(result: "TrackingResult", include_vertices: bool = False) -> bytes:
    """`encode` then compact UTF-8 JSON: what the publishers send."""
    frame = encode(result, include_vertices=False)
    if not include_vertices:
        return dumps(frame)
    return frame_json(frame, [vertices_array(h.vertices) for h in result.hands])


# --------------------------------------------------------------------------------------- decoding
def _fail(path: str, what: str) -> StreamMessageError:
    return StreamMessageError(f"invalid {SCHEMA} message: {path} {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_number(v: Any, path: str) -> None:
    if not _is_number(v):
        raise _fail(path, f"must be a finite number, got {v!r}")


def _check_vector(v: Any, length: int | None, path: str) -> None:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        raise _fail(path, f"must be a list of {length if length is not None else 'N'} numbers")
    if not all(_is_number(x) for x in v):
        raise _fail(path, "must contain only finite numbers")


def _check_matrix(v: Any, rows: int | None, cols: int, path: str) -> None:
    if not isinstance(v, list) or (rows is not None and len(v) != rows):
        raise _fail(path, f"must be a list of {rows if rows is not None else 'N'} [{cols} numbers]")
    for i, row in enumerate(v):
        _check_vector(row, cols, f"{path}[{i}]")


def _check_frame(m: dict[str, Any]) -> None:
    if not _is_int(m.get("frame_index")):
        raise _fail("frame_index", "must be an integer")
    _check_number(m.get("timestamp"), "timestamp")
    size = m.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) and s >= 0 for s in size)):
        raise _fail("image_size", f"must be [height, width] integers, got {size!r}")
    cam = m.get("camera")
    if not isinstance(cam, dict):
        raise _fail("camera", "must be an object")
    for k in ("fx", "fy", "cx", "cy"):
        _check_number(cam.get(k), f"camera.{k}")
    if not isinstance(cam.get("assumed"), bool):
        raise _fail("camera.assumed", "must be true or false")
    if m.get("units") != UNITS or m.get("axes") != AXES:
        raise _fail("units/axes", f"must be {UNITS!r}/{AXES!r}, got {m.get('units')!r}/"
                    f"{m.get('axes')!r}")
    hands = m.get("hands")
    if not isinstance(hands, list):
        raise _fail("hands", "must be a list")
    for i, h in enumerate(hands):
        path = f"hands[{i}]"
        if not isinstance(h, dict):
            raise _fail(path, "must be an object")
        if not _is_int(h.get("track_id")):
            raise _fail(f"{path}.track_id", "must be an integer")
        if h.get("handedness") not in HANDEDNESS:
            raise _fail(f"{path}.handedness", f"must be 'left' or 'right', got {h.get('handedness')!r}")
        _check_number(h.get("confidence"), f"{path}.confidence")
        _check_matrix(h.get("joints"), NUM_KEYPOINTS, 3, f"{path}.joints")
        _check_matrix(h.get("keypoints_2d"), NUM_KEYPOINTS, 2, f"{path}.keypoints_2d")
        _check_vector(h.get("global_orient"), 3, f"{path}.global_orient")
        _check_matrix(h.get("pose"), None, 3, f"{path}.pose")
        _check_vector(h.get("shape"), None, f"{path}.shape")
        _check_vector(h.get("transl"), 3, f"{path}.transl")
        if "vertices" in h:
            _check_matrix(h["vertices"], None, 3, f"{path}.vertices")
    timings = m.get("timings")
    if not isinstance(timings, dict):
        raise _fail("timings", "must be an object")
    for k, v in timings.items():
        _check_number(v, f"timings[{k!r}]")


def _check_hello(m: dict[str, Any]) -> None:
    names = m.get("keypoint_names")
    if not (isinstance(names, list) and len(names) == NUM_KEYPOINTS
            and all(isinstance(n, str) for n in names)):
        raise _fail("keypoint_names", f"must be a list of {NUM_KEYPOINTS} strings")


def decode(data: bytes | bytearray | memoryview | str | dict) -> dict[str, Any]:
    """Parse and validate one message; returns the message dict (lists, not arrays).

    Raises StreamVersionError for another schema version (e.g. a newer harp_track publishing
    version 2) and StreamMessageError for anything else that is not a valid message. Messages of
    an unknown `type` pass with only their envelope checked, so readers can skip them."""
    if isinstance(data, dict):
        message = data
    else:
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError as e:
                raise StreamMessageError(f"invalid {SCHEMA} message: not UTF-8 ({e})") from None
        try:
            message = json.loads(data)
        except json.JSONDecodeError as e:
            raise StreamMessageError(f"invalid {SCHEMA} message: not JSON ({e})") from None
    if not isinstance(message, dict):
        raise StreamMessageError(f"invalid {SCHEMA} message: not a JSON object")
    if message.get("schema") != SCHEMA:
        raise StreamMessageError(f"not a {SCHEMA} message (schema={message.get('schema')!r})")
    version = message.get("version")
    if not _is_int(version):
        raise StreamMessageError(f"invalid {SCHEMA} message: version must be an integer, "
                                 f"got {version!r}")
    if version not in SUPPORTED_VERSIONS:
        newer = "a newer" if version > VERSION else "an older"
        raise StreamVersionError(
            f"{SCHEMA} version {version} is not supported by this reader (it reads version(s) "
            f"{sorted(SUPPORTED_VERSIONS)}); the publisher runs {newer} harp_track - use the same "
            "major stream version on both sides")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise _fail("type", "must be a string")
    if kind == FRAME:
        _check_frame(message)
    elif kind == HELLO:
        _check_hello(message)
    return message


def to_result(message: dict[str, Any]) -> "TrackingResult":
    """A decoded "frame" message back as a TrackingResult of float32 arrays (vertices (0, 3) when
    the frame carried none)."""
    from ..camera import Camera
    from ..result import TrackedHand, TrackingResult

    if message.get("type") != FRAME:
        raise StreamMessageError(f"to_result needs a {FRAME!r} message, got {message.get('type')!r}")
    f32 = np.float32
    hands = [
        TrackedHand(
            handedness=h["handedness"],
            joints=np.asarray(h["joints"], f32).reshape(NUM_KEYPOINTS, 3),
            keypoints_2d=np.asarray(h["keypoints_2d"], f32).reshape(NUM_KEYPOINTS, 2),
            vertices=np.asarray(h.get("vertices", []), f32).reshape(-1, 3),
            confidence=float(h["confidence"]),
            global_orient=np.asarray(h["global_orient"], f32).reshape(3),
            pose=np.asarray(h["pose"], f32).reshape(-1, 3),
            shape=np.asarray(h["shape"], f32).reshape(-1),
            transl=np.asarray(h["transl"], f32).reshape(3),
            track_id=int(h["track_id"]),
        )
        for h in message["hands"]
    ]
    c = message["camera"]
    return TrackingResult(
        hands=hands,
        camera=Camera(c["fx"], c["fy"], c["cx"], c["cy"], assumed=c["assumed"]),
        timestamp=float(message["timestamp"]),
        frame_index=int(message["frame_index"]),
        image_size=(int(message["image_size"][0]), int(message["image_size"][1])),
        timings={k: float(v) for k, v in message["timings"].items()},
    )
