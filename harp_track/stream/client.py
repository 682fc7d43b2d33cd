"""Python subscribers of the pose stream, for UDP and WebSocket, with an iterator and a callback API.

    from harp_track.stream import subscribe
    for frame in subscribe("ws://127.0.0.1:8765"):        # or "udp://127.0.0.1:9877"
        print(frame["frame_index"], [h["joints"][8] for h in frame["hands"]])

Messages are yielded as validated dicts (see message.decode; `message.to_result` turns one back
into a TrackingResult). Only "frame" messages are yielded; the latest "hello" is kept in `.hello`.
A message of another major schema version raises StreamVersionError; other invalid messages
(e.g. stray datagrams on the port) are skipped with a warning and counted in stats["invalid"].
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import warnings
from typing import Any, Callable, Iterator

from . import message as msg
from ._net import DEFAULT_HOST, DEFAULT_UDP_PORT, DEFAULT_WS_PORT, check_host

_SLICE = 0.1  # seconds a blocking receive waits before checking whether it was closed


class StreamClosed(ConnectionError):
    """The subscriber was closed, or the server closed the connection."""


class _Subscriber:
    """Shared decoding, iteration and callback thread; subclasses provide _recv_raw/_close_raw."""

    def __init__(self) -> None:
        self.hello: dict[str, Any] | None = None
        self.stats = {"frames": 0, "invalid": 0, "other": 0}
        self._closed = False
        self._thread: threading.Thread | None = None
        self._warned_invalid = False

    def _recv_raw(self, timeout: float | None) -> bytes | str | None:  # pragma: no cover
        raise NotImplementedError

    def _close_raw(self) -> None:  # pragma: no cover
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self._closed

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next "frame" message, or None when none came within `timeout` seconds (None waits
        as long as it takes). Raises StreamClosed once closed or disconnected."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise StreamClosed("subscriber is closed")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            raw = self._recv_raw(left)
            if raw is None:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            try:
                message = msg.decode(raw)
            except msg.StreamVersionError:
                raise
            except msg.StreamMessageError as e:
                self.stats["invalid"] += 1
                if not self._warned_invalid:
                    self._warned_invalid = True
                    warnings.warn(f"{type(self).__name__}: skipping invalid message ({e})",
                                  RuntimeWarning, stacklevel=2)
                continue
            kind = message["type"]
            if kind == msg.FRAME:
                self.stats["frames"] += 1
                return message
            if kind == msg.HELLO:
                self.hello = message
            else:
                self.stats["other"] += 1  # a newer message type of the same version: ignored

    def messages(self, idle_timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield frames until closed, disconnected, or `idle_timeout` seconds pass without one."""
        while True:
            try:
                message = self.recv(idle_timeout)
            except StreamClosed:
                return
            if message is None:
                return
            yield message

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.messages()

    def start(self, callback: Callable[[dict[str, Any]], Any],
              on_error: Callable[[BaseException], Any] | None = None) -> "_Subscriber":
        """Call `callback(frame)` for each frame from a background thread until `close()`. An
        exception (from the stream or the callback) stops the thread and goes to `on_error`
        (default: re-raised in the thread, i.e. printed by threading.excepthook)."""
        if self._thread is not None:
            raise RuntimeError("start() was already called")

        def run() -> None:
            try:
                for frame in self.messages():
                    callback(frame)
            except BaseException as e:
                if self._closed:
                    return
                if on_error is None:
                    raise
                on_error(e)

        self._thread = threading.Thread(target=run, name=f"harp-pose-{type(self).__name__}",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop receiving (and the callback thread, if any)."""
        self._closed = True
        self._close_raw()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def __enter__(self) -> "_Subscriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PoseSubscriber(_Subscriber):
    """Receives UDP frames on (host, port) where a UdpPublisher sends them. port 0 picks a free
    port (see `.port`, then point the publisher's target at it). Binding a non-loopback address
    (e.g. "0.0.0.0" to hear another machine) needs allow_remote=True.

    UDP may drop or (off loopback) reorder datagrams: compare frame_index to notice."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_UDP_PORT, *,
                 allow_remote: bool = False, receive_buffer_bytes: int = 1 << 20):
        super().__init__()
        check_host(host, allow_remote, "PoseSubscriber")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
            self._sock.bind((host, port))
        except OSError as e:
            self._sock.close()
            raise OSError(e.errno, f"cannot listen for poses on udp {host}:{port}: {e.strerror or e} (another "
                                   "subscriber there? port 0 picks a free one)") from e
        except BaseException:
            self._sock.close()
            raise
        self.host = host
        self.port: int = self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"

    def _recv_raw(self, timeout: float | None) -> bytes | None:
        # Waits in short slices so close() from another thread ends a blocked receive.
        wait = _SLICE if timeout is None else min(timeout, _SLICE)
        try:
            self._sock.settimeout(wait)
            data, _ = self._sock.recvfrom(65536)
        except (socket.timeout, BlockingIOError):
            return None
        except OSError as e:
            if self._closed:
                raise StreamClosed("subscriber is closed") from None
            raise StreamClosed(f"UDP socket error: {e}") from e
        return data

    def _close_raw(self) -> None:
        self._sock.close()


class WebSocketSubscriber(_Subscriber):
    """Connects to a WebSocketPublisher at `url` (e.g. "ws://127.0.0.1:8765"). Iteration ends when
    the server closes the connection; reconnecting is up to the caller."""

    def __init__(self, url: str = f"ws://{DEFAULT_HOST}:{DEFAULT_WS_PORT}", *,
                 open_timeout: float = 10.0, max_size: int = 1 << 24):
        super().__init__()
        try:
            from websockets.sync.client import connect
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("WebSocketSubscriber needs the 'websockets' package (pip install "
                              "'websockets>=15')") from e
        self.url = url
        try:
            connection = connect(url, open_timeout=open_timeout, max_size=max_size,
                                 compression=None, proxy=None, close_timeout=1.0)
        except OSError as e:  # refused, unreachable, a host that does not resolve
            raise ConnectionError(f"no pose publisher at {url} ({e.strerror or e}): is the tracker running with a "
                                  "WebSocketPublisher on that address?") from e
        # websockets >= 17.1 wants the connection used as a context manager; closed in close().
        self._connection = connection.__enter__()

    def _recv_raw(self, timeout: float | None) -> str | bytes | None:
        from websockets.exceptions import ConnectionClosed

        wait = _SLICE if timeout is None else min(timeout, _SLICE)
        try:
            return self._connection.recv(timeout=wait)
        except TimeoutError:
            return None
        except ConnectionClosed as e:
            self._closed = True
            raise StreamClosed(f"connection to {self.url} closed ({e})") from None

    def _close_raw(self) -> None:
        self._connection.close()


def open_subscriber(url: str, **options: Any) -> PoseSubscriber | WebSocketSubscriber:
    """A subscriber for "ws://host:port[/path]", "wss://..." or "udp://host:port" (the local
    address to listen on). `options` go to the subscriber's constructor."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return WebSocketSubscriber(url, **options)
    if parts.scheme == "udp":
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"udp URL needs a host and a port, e.g. udp://127.0.0.1:9877; got {url!r}")
        return PoseSubscriber(parts.hostname, parts.port, **options)
    raise ValueError(f"unsupported pose stream URL {url!r} (use ws://, wss:// or udp://)")


def subscribe(url: str = f"ws://{DEFAULT_HOST}:{DEFAULT_WS_PORT}", *,
              idle_timeout: float | None = None, **options: Any) -> Iterator[dict[str, Any]]:
    """Yield decoded frames from a pose stream URL until the connection ends, or `idle_timeout`
    seconds pass without a frame. Leaving the loop closes the subscriber."""
    with open_subscriber(url, **options) as subscriber:
        yield from subscriber.messages(idle_timeout)
