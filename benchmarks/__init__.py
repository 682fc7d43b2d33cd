"""Benchmarks: scripts that print tables (`python -m benchmarks` runs them all)."""

import os
from pathlib import Path

# Real test data lives beside the repository (`../shared/data`, see its README); never in it.
SHARED_DATA = Path(os.environ.get("HARP_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
