"""Small mesh writers: Wavefront OBJ, and OBJ + MTL with PNG texture maps (numpy; OpenCV for PNGs)."""

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


def save_textured_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray,
                      faces_uv: np.ndarray, albedo: np.ndarray, normal_map: np.ndarray | None = None) -> Path:
    """Write a textured Wavefront OBJ with its MTL and PNG maps beside it; returns the .obj path.

    vertices (V, 3) metres; faces (F, 3) 0-based; uvs (T, 2) with v = 0 at the texture's top row
    (our convention; written bottom-up as OBJ wants); faces_uv (F, 3). albedo: (H, W, 3) uint8 RGB,
    written as `<stem>_albedo.png` (map_Kd). normal_map: optional (H', W', 3) uint8 tangent-space
    normals in our renderer's convention (+Y along increasing v, down the image), written as
    `<stem>_normal.png` in the OpenGL convention Blender and glTF use (+Y up the image: green
    inverted) and referenced as `map_Bump -bm 1` (Blender's importer makes it a Normal Map node)
    and `norm` (the PBR extension other readers know). Files: `<stem>.obj`, `<stem>.mtl`, PNGs.
    """
    path = Path(path)
    stem = path.stem
    if not stem or any(ch.isspace() for ch in stem):
        raise ValueError(f"the OBJ file name must be non-empty without whitespace (MTL references break), got {stem!r}")
    vertices, faces = np.asarray(vertices), np.asarray(faces)
    uvs, faces_uv = np.asarray(uvs), np.asarray(faces_uv)
    check_rgb8("albedo", albedo)
    if normal_map is not None:
        check_rgb8("normal_map", normal_map)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
        raise ValueError(f"vertices must be finite (V, 3), got shape {vertices.shape}")
    if uvs.ndim != 2 or uvs.shape[1] != 2 or not len(uvs) or not np.isfinite(uvs).all():
        raise ValueError(f"uvs must be finite (T, 2) with T > 0, got shape {uvs.shape}")
    for name, idx, count in (("faces", faces, len(vertices)), ("faces_uv", faces_uv, len(uvs))):
        if idx.ndim != 2 or idx.shape[1] != 3 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= count:
            raise ValueError(f"{name} must be (F, 3) integer indices below {count}, got {idx.shape} {idx.dtype}")
    if faces.shape != faces_uv.shape:
        raise ValueError(f"faces {faces.shape} and faces_uv {faces_uv.shape} differ")

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# harp_track material for {stem}.obj", f"newmtl {stem}", "Ka 1.000000 1.000000 1.000000",
             "Kd 1.000000 1.000000 1.000000", "Ks 0.000000 0.000000 0.000000", "d 1.000000",
             "illum 1",  # diffuse only: the albedo already holds the appearance
             "Pr 1.000000", "Pm 0.000000",  # PBR extension (Blender reads it): matte skin, as in the glTF
             f"map_Kd {stem}_albedo.png"]
    (path.parent / f"{stem}_albedo.png").write_bytes(encode_png(albedo))
    if normal_map is not None:
        (path.parent / f"{stem}_normal.png").write_bytes(encode_png(normal_map_to_opengl(normal_map)))
        lines += [f"map_Bump -bm 1.000000 {stem}_normal.png", f"norm {stem}_normal.png"]
    (path.parent / f"{stem}.mtl").write_text("\n".join(lines) + "\n")
    return save_obj(path, vertices, faces, uvs, faces_uv, material=stem)


def check_rgb8(label: str, image: np.ndarray) -> None:
    """Raise ValueError unless `image` is an (H, W, 3) uint8 numpy array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{label} must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{label} must be an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{label} must be uint8, got {image.dtype}")


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    import cv2  # imported here so the plain OBJ writer stays importable without OpenCV

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def normal_map_to_opengl(normal_map: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 normal map from our renderer's convention (+Y = green along increasing v,
    i.e. down the image) to the OpenGL / glTF / Blender one (+Y up the image): green inverted.
    255 - g maps the decoded value 2g/255 - 1 to exactly its negative."""
    out = np.array(normal_map, copy=True)
    out[..., 1] = 255 - out[..., 1]
    return out
