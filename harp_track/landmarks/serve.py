"""The child side of `worker.DetectorProcess`: a landmark detector serving frames over two pipes.

    python -m harp_track.landmarks.serve READ_FD WRITE_FD OPTIONS_JSON

Receives (image, timestamp) pairs and answers each with its list of `HandLandmarks` (or the
exception it raised); None ends it.
"""

from __future__ import annotations

import json
import sys
from multiprocessing.connection import Connection

from . import create_detector


def serve(receive: Connection, send: Connection, options: dict) -> None:
    """Detect the frames `receive` brings until None; answer each on `send`."""
    try:
        detector = create_detector(**options)
    except Exception as exc:  # reported to the caller on its first result
        send.send(exc)
        return
    try:
        while True:
            item = receive.recv()
            if item is None:
                break
            try:
                send.send(detector.detect(*item))
            except Exception as exc:
                send.send(exc)
    except EOFError:  # the parent went away
        pass
    finally:
        detector.close()


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
           json.loads(sys.argv[3]))
