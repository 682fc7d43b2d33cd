"""A landmark detector in its own process, so landmarks of the next frame run beside the fit and
the refinement of this one.

A thread would not do: MediaPipe's Python binding holds the GIL while its graph runs (measured:
with the detector in a worker thread, the fit of the same frame took 14 ms instead of 4). One
MediaPipe graph uses about one core, so on two cores a process gives the tracker the other.

The child is a fresh interpreter (`python -m harp_track.landmarks.serve`) talking over two pipes,
not a `multiprocessing` child: those re-import the caller's main module, so every script that
calls `Tracker.track` would need an `if __name__ == "__main__"` guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from multiprocessing.connection import Connection

import numpy as np

from .base import HandLandmarks


class DetectorProcess:
    """`create_detector(**options)` run in a child process. `submit` queues a frame, `result`
    returns the detections of the oldest queued one (frames are detected in order, as the
    detector's tracking between frames needs). A failure in the child is raised by `result`."""

    def __init__(self, **options):
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harp_track.landmarks.serve", str(from_parent), str(to_parent), json.dumps(options)],
            pass_fds=(from_parent, to_parent))
        os.close(from_parent)
        os.close(to_parent)
        self._send = Connection(to_child, readable=False)
        self._receive = Connection(from_child, writable=False)
        self._pending = 0

    def submit(self, image: np.ndarray, timestamp: float) -> None:
        self._send.send((image, timestamp))
        self._pending += 1

    def result(self) -> list[HandLandmarks]:
        if not self._pending:
            raise RuntimeError("no frame was submitted")
        try:
            out = self._receive.recv()
        except EOFError:
            raise RuntimeError(f"the landmark process exited (code {self._process.poll()})") from None
        self._pending -= 1
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        try:
            self._send.send(None)
        except OSError:
            pass
        self._send.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._receive.close()

    def __enter__(self) -> "DetectorProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
