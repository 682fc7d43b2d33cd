"""Pose stream: the tracker's per-frame results as versioned JSON messages over UDP or WebSocket,
for AR engines in other processes and languages. Schema and transport notes: docs/pose_stream.md.

Publishing (tracker side; loopback unless allow_remote=True):

    from harp_track.stream import WebSocketPublisher, UdpPublisher
    with WebSocketPublisher(port=8765) as ws, UdpPublisher("127.0.0.1", 9877) as udp:
        for result in tracker:            # harp_track.result.TrackingResult
            ws.publish(result)            # never blocks on slow clients
            udp.publish(result)           # one datagram, no vertices

Subscribing (Python side):

    from harp_track.stream import subscribe
    for frame in subscribe("ws://127.0.0.1:8765"):      # or "udp://127.0.0.1:9877"
        ...

WebSocket parts need the `websockets` package (>= 15); UDP and message encoding need only the
standard library and numpy.
"""

from ._net import DEFAULT_HOST, DEFAULT_UDP_PORT, DEFAULT_WS_PORT
from .client import PoseSubscriber, StreamClosed, WebSocketSubscriber, open_subscriber, subscribe
from .message import (
    PRECISION,
    SCHEMA,
    VERSION,
    StreamMessageError,
    StreamVersionError,
    decode,
    dumps,
    encode,
    hello,
    to_json,
    to_result,
)
from .publisher import MAX_DATAGRAM_BYTES, UdpPublisher, WebSocketPublisher

__all__ = [
    "DEFAULT_HOST", "DEFAULT_UDP_PORT", "DEFAULT_WS_PORT", "MAX_DATAGRAM_BYTES", "PRECISION",
    "SCHEMA", "VERSION",
    "PoseSubscriber", "WebSocketSubscriber", "StreamClosed", "open_subscriber", "subscribe",
    "StreamMessageError", "StreamVersionError", "decode", "dumps", "encode", "hello", "to_json",
    "to_result", "UdpPublisher", "WebSocketPublisher",
]
