"""Where torch work runs: the one reading of the "auto" | "cpu" | "cuda" arguments."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """"cpu", "cuda" (refused with a ValueError where torch sees no CUDA device) or "auto" (CUDA
    when torch sees it, else the CPU)."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
