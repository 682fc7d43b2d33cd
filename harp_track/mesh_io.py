"""Small, dependency-free mesh writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
             faces_uv: np.ndarray | None = None, material: str | None = None) -> Path:
    """Write a Wavefront OBJ. vertices (V, 3) metres; faces (F, 3) 0-based; uvs (T, 2) with v = 0 at
    the texture's top row (our convention), flipped to OBJ's bottom-up v; faces_uv (F, 3).
    `material` names an MTL file written beside it by the caller."""
    path = Path(path)
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices and (F, 3) faces, got {vertices.shape} and {faces.shape}")
    lines = [f"# harp_track mesh: {len(vertices)} vertices, {len(faces)} faces, metres"]
    if material:
        lines += [f"mtllib {material}.mtl", f"usemtl {material}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    with_uv = uvs is not None and faces_uv is not None and len(uvs)
    if with_uv:
        lines += [f"vt {u:.6f} {1.0 - v:.6f}" for u, v in np.asarray(uvs)]
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}"
                  for (a, b, c), (ta, tb, tc) in zip(faces, np.asarray(faces_uv, dtype=np.int64))]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
