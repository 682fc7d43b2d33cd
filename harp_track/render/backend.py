"""Backend selection: the torch backend (default, CPU or CUDA) or nvdiffrast (optional, CUDA only).

nvdiffrast is under the NVIDIA Source Code License (non-commercial use only), so it is never picked
implicitly: ask for it with `select_backend("nvdiffrast")`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import torch

from . import ops

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderBackend:
    """The four primitives bound to one implementation and device; same signatures as `ops`."""

    name: str
    device: torch.device
    _dr: object = field(default=None, repr=False)
    _ctx: object = field(default=None, repr=False)

    def rasterize(self, pos: torch.Tensor, tri: torch.Tensor, resolution: Sequence[int],
                  grad_db: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """See `ops.rasterize`."""
        if self._dr is None:
            return ops.rasterize(pos, tri, resolution, grad_db=grad_db)
        return self._dr.rasterize(self._ctx, pos.float().contiguous(), tri.int().contiguous(),
                                  [int(r) for r in resolution], grad_db=grad_db)

    def interpolate(self, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                    rast_db: torch.Tensor | None = None,
                    diff_attrs: Sequence[int] | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """See `ops.interpolate`."""
        if self._dr is None:
            return ops.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)
        if rast_db is None or diff_attrs is None:
            return self._dr.interpolate(attr.float().contiguous(), rast, tri.int().contiguous())
        return self._dr.interpolate(attr.float().contiguous(), rast, tri.int().contiguous(),
                                    rast_db=rast_db, diff_attrs=diff_attrs)

    def texture(self, tex: torch.Tensor | None, uv: torch.Tensor, uv_da: torch.Tensor | None = None,
                filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: int | None = None,
                mip: ops.MipPyramid | None = None) -> torch.Tensor:
        """See `ops.texture`; nvdiffrast builds its own pyramid from level 0 of `mip`."""
        if self._dr is None:
            return ops.texture(tex, uv, uv_da, filter_mode, boundary_mode, max_mip_level, mip)
        if tex is None:
            h, w = mip.heights[0], mip.widths[0]
            tex = mip.flat[:, : h * w].reshape(mip.flat.shape[0], h, w, -1)
        if filter_mode == "auto":
            filter_mode = "linear-mipmap-linear" if uv_da is not None else "linear"
        return self._dr.texture(tex.float().contiguous(), uv.float().contiguous(), uv_da, filter_mode=filter_mode,
                                boundary_mode=boundary_mode, max_mip_level=max_mip_level)

    def antialias_topology(self, tri: torch.Tensor) -> object:
        """Per-mesh data for `antialias` (an nvdiffrast topology hash on that backend)."""
        if self._dr is None:
            return ops.antialias_topology(tri)
        return self._dr.antialias_construct_topology_hash(tri.int().contiguous())

    def antialias(self, color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
                  topology: object = None) -> torch.Tensor:
        """See `ops.antialias`."""
        if self._dr is None:
            return ops.antialias(color, rast, pos, tri, topology)
        return self._dr.antialias(color.contiguous(), rast, pos.float().contiguous(), tri.int().contiguous(),
                                  topology_hash=topology)


def select_backend(name: str = "torch", device: str | torch.device = "auto") -> RenderBackend:
    """Pick the rendering backend.

    name: 'torch' (default; CPU, or CUDA unchanged) or 'nvdiffrast' (CUDA only, non-commercial
    licence, `pip install diffrp-nvdiffrast`, JIT-compiled with nvcc on first use). device: 'auto'
    takes CUDA when available, else CPU; tensors passed to the primitives must live on it. The choice
    is logged at INFO level.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if name == "torch":
        kernels = "numba kernels" if device.type == "cpu" and ops.HAS_NUMBA else "vectorized torch"
        logger.info("harp_track.render: torch backend on %s (%s)", device, kernels)
        return RenderBackend("torch", device)
    if name == "nvdiffrast":
        if device.type != "cuda":
            raise ValueError("the nvdiffrast backend needs a CUDA device")
        try:
            import nvdiffrast.torch as dr
        except ImportError as exc:
            raise ImportError("nvdiffrast is not installed (pip install diffrp-nvdiffrast; needs nvcc)") from exc
        _find_nvdiffrast_plugin()
        logger.info("harp_track.render: nvdiffrast backend on %s (non-commercial licence)", device)
        return RenderBackend("nvdiffrast", device, dr, dr.RasterizeCudaContext(device=device))
    raise ValueError(f"unknown render backend {name!r} (expected 'torch' or 'nvdiffrast')")


def _find_nvdiffrast_plugin() -> None:
    """nvdiffrast 0.3 imports its JIT-built plugin by module name, but torch's extension loader no
    longer registers that name (seen with torch 2.11), so the import fails after a successful
    build. Its build directory on sys.path lets the import find it."""
    import sys

    import nvdiffrast
    import torch.utils.cpp_extension
    from nvdiffrast.torch import ops as dr_ops

    name = dr_ops.sanitize_name(f"nvdiffrast_plugin_{nvdiffrast.__version__}_torch{torch.__version__}")
    build = torch.utils.cpp_extension._get_build_directory(name, False)
    if build not in sys.path:
        sys.path.append(build)
