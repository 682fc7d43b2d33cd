"""Publishers of the pose stream: one JSON message per tracked frame, over UDP or WebSocket.

Both take a TrackingResult in `publish(result)`, return at once (they never wait on a subscriber),
close with `close()` and work as context managers. Both use loopback addresses unless given
allow_remote=True.

    with WebSocketPublisher(port=8765) as ws, UdpPublisher(port=9877) as udp:
        for result in tracker:
            ws.publish(result)
            udp.publish(result)
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Iterable

from . import message as msg
from ._net import DEFAULT_HOST, DEFAULT_UDP_PORT, DEFAULT_WS_PORT, check_host, resolve_udp

if TYPE_CHECKING:
    from ..result import TrackingResult

log = logging.getLogger(__name__)

# Default ceiling of one UDP datagram. A one-hand frame is ~2 KB and two hands ~4 KB; 8 KB stays
# clear of the 9 KB default UDP buffers of some systems (macOS). At most 65507 (IPv4's limit).
MAX_DATAGRAM_BYTES = 8192
UDP_LIMIT = 65507


class UdpPublisher:
    """Sends each frame as one datagram to one or more subscriber addresses (fire and forget).

    host, port: the first subscriber address; `targets` adds more (host, port) pairs, as does
    `add_target`. Non-loopback addresses need allow_remote=True.

    Vertices are never sent over UDP: a hand's mesh alone is ~40 KB of JSON, over what a datagram
    should carry, so include_vertices=True raises ValueError (use WebSocketPublisher for meshes).
    A frame whose JSON exceeds max_datagram_bytes (many hands) is dropped with a warning and
    counted in stats["oversize"]. A "hello" message is sent before the first frame and then every
    hello_interval seconds, so subscribers that start late still get the keypoint names.
    Send errors (no one listening, full buffers) never raise; they are counted in
    stats["send_errors"].
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_UDP_PORT, *,
                 targets: Iterable[tuple[str, int]] = (), allow_remote: bool = False,
                 max_datagram_bytes: int = MAX_DATAGRAM_BYTES, hello_interval: float | None = 1.0,
                 include_vertices: bool = False):
        if include_vertices:
            raise ValueError(
                "UdpPublisher never sends vertices: one hand's mesh is ~40 KB of JSON, far over a "
                "safe datagram. Use WebSocketPublisher(include_vertices=True) for meshes, or pose "
                "the mesh on the receiving side from global_orient/pose/shape/transl.")
        if not 0 < max_datagram_bytes <= UDP_LIMIT:
            raise ValueError(f"max_datagram_bytes must be in 1..{UDP_LIMIT}, got {max_datagram_bytes}")
        self.allow_remote = allow_remote
        self.max_datagram_bytes = int(max_datagram_bytes)
        self.hello_interval = hello_interval
        self.stats = {"frames": 0, "datagrams": 0, "oversize": 0, "send_errors": 0}
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        self._targets: list[tuple[int, tuple]] = []
        self._hello = msg.dumps(msg.hello())
        self._last_hello: float | None = None
        self._warned_oversize = False
        self._closed = False
        try:
            self.add_target(host, port)
            for target_host, target_port in targets:
                self.add_target(target_host, target_port)
        except BaseException:
            self.close()
            raise

    @property
    def targets(self) -> list[tuple]:
        """The resolved (host, port[, ...]) socket addresses frames are sent to."""
        with self._lock:
            return [sockaddr for _, sockaddr in self._targets]

    def add_target(self, host: str, port: int) -> None:
        """Also send to (host, port) from the next frame on."""
        check_host(host, self.allow_remote, "UdpPublisher")
        if not 0 < int(port) < 65536:
            raise ValueError(f"UdpPublisher: target port must be in 1..65535, got {port}")
        family, sockaddr = resolve_udp(host, port)
        with self._lock:
            if self._closed:
                raise RuntimeError("UdpPublisher is closed")
            if family not in self._sockets:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)  # a full send buffer drops the datagram, never waits
                self._sockets[family] = sock
            if (family, sockaddr) not in self._targets:
                self._targets.append((family, sockaddr))

    def remove_target(self, host: str, port: int) -> None:
        family, sockaddr = resolve_udp(host, port)
        with self._lock:
            if (family, sockaddr) in self._targets:
                self._targets.remove((family, sockaddr))

    def _send(self, data: bytes) -> None:
        for family, sockaddr in self._targets:
            try:
                self._sockets[family].sendto(data, sockaddr)
                self.stats["datagrams"] += 1
            except OSError:  # ECONNREFUSED from an earlier datagram, EAGAIN, unreachable...
                self.stats["send_errors"] += 1

    def publish(self, result: "TrackingResult") -> bool:
        """Send one frame to every target; False when it was dropped for being too large."""
        data = msg.to_json(result, include_vertices=False)
        with self._lock:
            if self._closed:
                raise RuntimeError("UdpPublisher is closed")
            self.stats["frames"] += 1
            now = time.monotonic()
            if self.hello_interval is not None and (
                    self._last_hello is None or now - self._last_hello >= self.hello_interval):
                self._last_hello = now
                self._send(self._hello)
            if len(data) > self.max_datagram_bytes:
                self.stats["oversize"] += 1
                if not self._warned_oversize:
                    self._warned_oversize = True
                    warnings.warn(
                        f"UdpPublisher: frame {result.frame_index} is {len(data)} bytes of JSON, "
                        f"over max_datagram_bytes={self.max_datagram_bytes} ({len(result.hands)} "
                        "hands); such frames are dropped (counted in stats['oversize']). Raise "
                        "max_datagram_bytes (<= 65507) or use WebSocketPublisher.",
                        RuntimeWarning, stacklevel=2)
                return False
            self._send(data)
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()

    def __enter__(self) -> "UdpPublisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Client:
    """One WebSocket connection: the newest max_pending messages not yet written, sent by its own
    task so that a slow reader only ever delays (and drops frames for) itself."""

    def __init__(self, connection: Any, max_pending: int, first: str):
        self.connection = connection
        self.first = first
        self.pending: collections.deque[str] = collections.deque(maxlen=max_pending)
        self.ready = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    def push(self, text: str) -> None:
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self.pending.append(text)
        self.ready.set()

    async def run(self) -> None:
        await self.connection.send(self.first)
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.pending:
                await self.connection.send(self.pending.popleft())  # waits only on this client
                self.sent += 1


class WebSocketPublisher:
    """A WebSocket server broadcasting each frame (a JSON text message) to every connected client.

    The asyncio server runs in a background thread. `publish` only validates and snapshots the
    frame (~0.3 ms per hand) and returns; JSON text is made in the server's thread, newest frame
    first: when frames come faster than they can be encoded, older unencoded ones are skipped
    (counted in `frames_skipped`). Each client has its own send task and keeps at most max_pending
    unsent frames: when a client reads too slowly its oldest unsent frames are dropped (counted
    per client in `client_stats()`), so memory stays bounded and other clients are unaffected. A
    client that stops reading altogether is disconnected by the keepalive ping (~40 s). Clients
    get a "hello" message first; what they send is ignored. Nothing is encoded while no client is
    connected.

    host: the address to bind (loopback unless allow_remote=True; "0.0.0.0" binds all
    interfaces). port 0 picks a free port (see `.port`, `.url`). include_vertices adds each hand's
    mesh (~40 KB and ~4 ms of encoding per hand, off the caller's thread). origins: accepted
    browser Origin headers (None accepts all, including any web page open in a local browser;
    pass e.g. [None, "http://localhost:8080"] to accept only non-browser clients and that page).
    compression: permessage-deflate (about 3x smaller, more CPU per client; off by default).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_WS_PORT, *,
                 allow_remote: bool = False, include_vertices: bool = False, max_pending: int = 2,
                 origins: Iterable[str | None] | None = None, compression: bool = False,
                 start_timeout: float = 10.0):
        try:
            from websockets.asyncio.server import serve
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("WebSocketPublisher needs the 'websockets' package (pip install "
                              "'websockets>=15')") from e
        check_host(host, allow_remote, "WebSocketPublisher")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.host = host
        self.include_vertices = include_vertices
        self.max_pending = int(max_pending)
        self._hello = msg.dumps(msg.hello()).decode("utf-8")
        self._clients: set[_Client] = set()
        self._closed = False
        self._close_lock = threading.Lock()
        self._frames = 0
        self._skipped = 0
        self._encode_errors = 0
        self._slot_lock = threading.Lock()
        self._latest: tuple[dict, list | None] | None = None
        self._wake: asyncio.Event | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._encoder: asyncio.Task | None = None
        started: concurrent.futures.Future = concurrent.futures.Future()

        async def start() -> None:
            self._wake = asyncio.Event()
            self._server = await serve(
                self._handle, host, port, origins=list(origins) if origins is not None else None,
                compression="deflate" if compression else None, max_size=2 ** 16,
                write_limit=2 ** 16, close_timeout=1.0)
            self._encoder = asyncio.ensure_future(self._encode_loop())

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(start())
            except BaseException as e:
                started.set_exception(e)
                self._loop.close()
                return
            started.set_result(None)
            try:
                self._loop.run_forever()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="harp-pose-ws", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=start_timeout)
        except BaseException:
            self._closed = True
            if self._loop.is_running():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=start_timeout)
            raise
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def frames_published(self) -> int:
        """Calls to publish()."""
        return self._frames

    @property
    def frames_skipped(self) -> int:
        """Frames replaced by a newer one before the server thread got to encode them."""
        return self._skipped

    def client_stats(self) -> list[dict[str, int]]:
        """Per connected client: frames sent, frames dropped, frames waiting."""
        return [{"sent": c.sent, "dropped": c.dropped, "pending": len(c.pending)}
                for c in list(self._clients)]

    # ---------------------------------------------------------------- server thread
    async def _handle(self, connection: Any) -> None:
        client = _Client(connection, self.max_pending, first=self._hello)
        self._clients.add(client)
        sender = asyncio.ensure_future(client.run())
        reader = asyncio.ensure_future(self._drain(connection))
        try:
            # Ends when the connection closes (reader) or a send fails (sender).
            await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._clients.discard(client)
            for task in (sender, reader):
                task.cancel()
            await asyncio.gather(sender, reader, return_exceptions=True)

    def wait_for_clients(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least `count` clients are connected; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.num_clients < count:
            if self._closed or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(0.005)
        return True

    @staticmethod
    async def _drain(connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for _ in connection:  # ignore what clients send; notices the close
                pass
        except ConnectionClosed:
            pass

    @staticmethod
    def _finish(frame: dict, vertices: list | None) -> str:
        return msg.frame_json(frame, vertices).decode("utf-8")

    async def _encode_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._slot_lock:
                item, self._latest = self._latest, None
            if item is None or not self._clients:
                continue
            frame, vertices = item
            try:
                if vertices is None:
                    text = self._finish(frame, None)
                else:  # ~4 ms per hand: keep the event loop free to send meanwhile
                    if self._executor is None:
                        self._executor = concurrent.futures.ThreadPoolExecutor(
                            1, thread_name_prefix="harp-pose-encode")
                    text = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._finish, frame, vertices)
            except Exception:  # cannot happen for validated frames; never kill the server
                self._encode_errors += 1
                log.exception("WebSocketPublisher: could not encode frame %s",
                              frame.get("frame_index"))
                continue
            for client in self._clients:
                client.push(text)

    # ---------------------------------------------------------------- caller's thread
    def publish(self, result: "TrackingResult") -> None:
        """Hand one frame to the server thread for every connected client and return at once.
        Raises ValueError (in the caller) for results the schema cannot carry (NaN, bad shapes)."""
        if self._closed:
            raise RuntimeError("WebSocketPublisher is closed")
        self._frames += 1
        if not self._clients:
            return
        frame = msg.encode(result, include_vertices=False)  # validates; copies into lists
        vertices = ([msg.vertices_array(h.vertices) for h in result.hands]
                    if self.include_vertices else None)
        with self._slot_lock:
            if self._latest is not None:
                self._skipped += 1
            self._latest = (frame, vertices)
        try:
            self._loop.call_soon_threadsafe(self._wake.set)  # type: ignore[union-attr]
        except RuntimeError:  # the loop stopped under us (closing)
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection (code 1001, going away), stop the server and its thread."""
        with self._close_lock:
            if self._closed and not self._thread.is_alive():
                return
            self._closed = True

        async def shutdown() -> None:
            if self._encoder is not None:
                self._encoder.cancel()
            self._server.close(close_connections=True)
            await self._server.wait_closed()

        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            try:
                future.result(timeout=timeout)
            except (concurrent.futures.TimeoutError, RuntimeError) as e:
                log.warning("WebSocketPublisher: shutdown did not finish cleanly: %r", e)
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass
        self._thread.join(timeout=timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "WebSocketPublisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
