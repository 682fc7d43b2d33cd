"""Run every benchmark and write docs/benchmarks.md.

    python -m benchmarks [--out docs/benchmarks.md] [--only hand_model,render]

Each section that runs replaces its own in the report; the others stay (with --only, all but the
named ones; without a GPU, the GPU section of the last run that had one).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
from pathlib import Path

from benchmarks.timing import machine_description

# (module, title): each module has run() -> markdown, or None where it has nothing to measure on
# this machine (the GPU benchmark without CUDA); the report then keeps that section's last run.
BENCHMARKS = [
    ("hand_model", "Hand model (LBS layer)"),
    ("render", "Renderer (full shaded hand render)"),
    ("landmarks", "Hand landmarks"),
    ("tracking", "Tracking: accuracy on real frames, jitter, speed"),
    ("avatar", "Avatars: reconstruction quality and build time"),
    ("refinement", "Tracking with an avatar: the appearance refinement"),
    ("gpu", "GPU path: tracking on CUDA, and CPU/GPU agreement"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write a markdown report.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--only", default="", help="comma-separated benchmark names; the report's other "
                                                   "sections are kept as they are")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only.split(",")]
    machine = machine_description()
    kept = _sections(args.out.read_text()) if args.out.is_file() else {}
    today = datetime.date.today().isoformat()
    for name, title in chosen:
        print(f"== {title}", flush=True)
        table = importlib.import_module(f"benchmarks.{name}").run()
        print(table or "nothing to measure on this machine; the report keeps its last run", flush=True)
        if table is None:
            continue
        kept[title] = f"## {title}\n\n`python -m benchmarks.{name}`, run {today} on {machine}\n\n{table}\n"
    header = (f"# Benchmarks\n\nWritten by `python -m benchmarks`; each section says when and where it ran "
              f"(last written {today}).\n")
    sections = [header] + [kept[title] for _, title in BENCHMARKS if title in kept]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))
    print(f"wrote {args.out}")


def _sections(report: str) -> dict[str, str]:
    """The '## title' sections of an earlier report, by title."""
    parts = report.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: "## " + part.rstrip("\n") + "\n" for part in parts}


if __name__ == "__main__":
    main()
