"""The `harp` command line: the outer layer over harp_track (and, later, avatar_builder)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from demos.hand_poses import GESTURES, render_gestures

    start = time.perf_counter()
    picture = render_gestures(Path(args.out), size=args.size, side=args.side)
    print(f"posed the open hand model ({', '.join(GESTURES)}) in {time.perf_counter() - start:.1f} s")
    print(f"wrote {picture} and one OBJ a gesture in {picture.parent}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harp", description="harp_track: personalized hand tracking")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the SDK chooses (device, backend)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="pose and render the open hand model (no camera, no downloads)")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--size", type=int, default=320, help="panel size in pixels")
    demo.add_argument("--side", choices=("right", "left"), default="right")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
