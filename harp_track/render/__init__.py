"""Differentiable rendering for HARP avatar building and analysis-by-synthesis tracking.

Conventions
    Units are metres. Camera space is OpenCV's (x right, y down, z forward). Pixel (i, j) covers
    [j, j+1) x [i, i+1) with its centre at (j + 0.5, i + 0.5); intrinsics are fx, fy, cx, cy.
    `projection_from_intrinsics` maps camera space to nvdiffrast-style clip space with y_ndc = -1 at
    the top row, so row 0 of every rendered tensor is the top row of the OpenCV image and renders
    overlay camera frames without flipping. Textures follow nvdiffrast: uv in [0, 1], v = 0 at
    texture row 0 (flip OBJ-style v when loading). Tensors are batch-first, float32 by default, and
    outputs take their device and dtype from the inputs.

Primitives (nvdiffrast's torch-op contract, so callers can switch backends)
    rasterize(pos_clip, tri, (H, W)) -> (rast (B,H,W,4) = u, v, z_ndc, triangle id + 1; rast_db)
    interpolate(attr, rast, tri, rast_db=None, diff_attrs=None) -> (attr image, screen derivatives)
    texture(tex, uv, uv_da=None, ...) -> bilinear, trilinear-mipmapped when uv_da is given
    antialias(color, rast, pos_clip, tri, topology) -> analytic silhouette antialiasing
    Gradients flow to vertex positions through the barycentrics (interior) and through antialias
    (silhouettes), and to attributes and textures.

Backends (`select_backend`)
    'torch' (default) runs on the CPU and, unchanged, on CUDA tensors. Visibility is a z-buffer
    that is not differentiable; everything after it is. On the CPU, when numba is importable
    (optional; `HAS_NUMBA` says), each primitive and the shading are custom autograd functions over
    single-threaded numba kernels with analytic backward passes (`_kernels.py`; compiled on first
    use and cached next to the sources). Without numba, and on CUDA, the same maths runs as
    vectorized torch with autograd; tests check that both paths agree in values and gradients.
    Triangles with a vertex at w <= 0 (behind the camera) are dropped, not clipped.
    'nvdiffrast' (optional, CUDA only) wraps nvdiffrast.torch, installable as `diffrp-nvdiffrast`
    (JIT-compiled with nvcc on first use). Its NVIDIA Source Code License forbids commercial use, so
    it is never selected by default and must be asked for by name.
    `select_backend(device="auto")` takes CUDA when present; the choice is logged (INFO).

Shading (`render_shaded`)
    HARP's model: albedo UV map x (ambient + (1 - ambient) x diffuse), a tangent-space normal map
    perturbing the interpolated vertex normal, one point or directional light per frame, and
    self-shadowing by a shadow map (depth rendered from the light with a frustum fitted to the mesh,
    slope-scaled bias, percentage-closer filtering). Returns the antialiased image and alpha, the
    shading normals and the light visibility. Shading runs on covered pixels only. Gradients reach
    vertices, textures, light and ambient; the shadow test and the normal map's tangent frame are
    treated as constant. On the CPU with numba (single texture, constant uvs) the whole render is one
    autograd node chaining the same kernels in numpy (`shading._RenderNumba`): the shadow map is a
    depth-only rasterization, interpolation and texturing touch covered pixels only, and the
    antialiasing backward replays the silhouette pairs recorded by its forward pass.

Mesh (`subdivide`, `vertex_normals`, `vertex_tangents`, `open_rim_faces`)
    Midpoint subdivision keeping UV seams; area-weighted normals; per-UV-vertex tangents; the
    faces at an open mesh's boundary (a hand model's cut at the wrist).
"""

from .backend import RenderBackend, select_backend
from .camera import look_at, orthographic_projection, projection_from_intrinsics, transform_points
from .mesh import face_normals, open_rim_faces, subdivide, vertex_normals, vertex_tangents
from .ops import HAS_NUMBA, MipPyramid, antialias, antialias_topology, interpolate, rasterize, texture, texture_mip
from .shading import Light, RenderMesh, ShadedRender, ShadowSettings, material_mip, render_shaded

__all__ = [
    "HAS_NUMBA", "Light", "MipPyramid", "RenderBackend", "RenderMesh", "ShadedRender", "ShadowSettings",
    "antialias", "antialias_topology", "face_normals", "interpolate", "look_at", "material_mip",
    "open_rim_faces", "orthographic_projection", "projection_from_intrinsics", "rasterize", "render_shaded",
    "select_backend", "subdivide", "texture", "texture_mip", "transform_points", "vertex_normals",
    "vertex_tangents",
]
