"""Shared timing and reporting helpers for the benchmark scripts."""

from __future__ import annotations

import platform
import time
from typing import Callable

import torch


def median_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 5,
              device: torch.device | str = "cpu") -> float:
    """Median wall time of `fn()` in milliseconds; CUDA work is synchronized around each call."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def machine_description() -> str:
    """One line naming the CPU, its cores, the GPU if any, and the torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{gpu}, Python {platform.python_version()}")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats with two decimals."""
    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
