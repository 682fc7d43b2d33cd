"""Textured OBJ/MTL export, read back by trimesh."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import trimesh

import harp_track as ht
from harp_track.mesh_io import save_obj, save_textured_obj


@pytest.fixture(scope="module")
def right():
    return ht.load_hand_model().data


def textures(h=64, w=48, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]  # red encodes the row, green the column
    albedo = np.stack([rows * 255 // (h - 1), cols * 255 // (w - 1), rng.integers(0, 256, (h, w))], -1)
    return albedo.astype(np.uint8), rng.integers(0, 256, (h // 2, w // 2, 3)).astype(np.uint8)


def test_textured_obj_round_trips_through_trimesh(tmp_path, right):
    albedo, normal = textures()
    path = save_textured_obj(tmp_path / "out" / "hand.obj", right.vertices, right.faces, right.uvs, right.faces_uv,
                             albedo, normal)
    assert path == tmp_path / "out" / "hand.obj"
    assert sorted(p.name for p in path.parent.iterdir()) == ["hand.mtl", "hand.obj", "hand_albedo.png",
                                                             "hand_normal.png"]
    obj_lines = path.read_text().splitlines()
    assert "mtllib hand.mtl" in obj_lines and "usemtl hand" in obj_lines
    mtl = (path.parent / "hand.mtl").read_text().splitlines()
    assert "newmtl hand" in mtl and "map_Kd hand_albedo.png" in mtl
    assert "map_Bump -bm 1.000000 hand_normal.png" in mtl and "norm hand_normal.png" in mtl

    mesh = trimesh.load(path, process=False)
    pairs = np.unique(np.stack([right.faces.ravel(), right.faces_uv.ravel()], 1), axis=0)
    assert len(mesh.vertices) == len(pairs) and len(mesh.faces) == len(right.faces)
    d = np.linalg.norm(np.asarray(mesh.vertices)[:, None] - right.vertices[None].astype(np.float64), axis=-1)
    src = d.argmin(1)
    assert d.min(1).max() < 1e-6  # written with 6 decimals: micrometres
    canon = lambda faces: {tuple(np.roll(f, -int(np.argmin(f)))) for f in faces}  # noqa: E731
    assert canon(src[mesh.faces]) == canon(right.faces)  # same triangles, same winding
    # OBJ's v is bottom-up: each vertex's uv, flipped back, is one of our corner uvs of that vertex.
    uv = np.asarray(mesh.visual.uv, dtype=np.float64)
    found = []
    for s, (u, v) in zip(src, uv):
        candidates = pairs[pairs[:, 0] == s, 1]
        dist = np.abs(right.uvs[candidates] - [u, 1.0 - v]).max(1)
        assert dist.min() < 1e-6
        found.append(candidates[dist.argmin()])
    assert len(set(zip(src.tolist(), found))) == len(pairs)
    # The albedo loaded through the MTL is ours, and trimesh's texel lookup agrees with our
    # convention (v = 0 at the top row): red encodes the row, green the column.
    image = mesh.visual.material.image
    assert np.array_equal(np.asarray(image.convert("RGB")), albedo)
    ours_uv = right.uvs[np.array(found)]
    colors = trimesh.visual.color.uv_to_color(uv, image).astype(np.float64)
    H, W = albedo.shape[:2]
    assert np.abs(colors[:, 0] / 255 * (H - 1) - ours_uv[:, 1] * (H - 1)).max() < 1.5
    assert np.abs(colors[:, 1] / 255 * (W - 1) - ours_uv[:, 0] * (W - 1)).max() < 1.5
    # The normal map is stored in the OpenGL convention (+Y up the image): green inverted.
    stored = cv2.imread(str(path.parent / "hand_normal.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.array_equal(stored[..., [0, 2]], normal[..., [0, 2]])
    assert np.array_equal(stored[..., 1].astype(int), 255 - normal[..., 1].astype(int))


def test_without_normal_map_and_plain_obj(tmp_path, right):
    albedo, _ = textures()
    path = save_textured_obj(tmp_path / "a.obj", right.vertices, right.faces, right.uvs, right.faces_uv, albedo)
    mtl = (tmp_path / "a.mtl").read_text()
    assert "map_Kd a_albedo.png" in mtl and "normal" not in mtl and not (tmp_path / "a_normal.png").exists()
    assert trimesh.load(path, process=False).visual.material.image.size == (albedo.shape[1], albedo.shape[0])
    # The untextured writer is unchanged: no material, plain faces.
    plain = save_obj(tmp_path / "plain.obj", right.vertices, right.faces).read_text()
    assert "mtllib" not in plain and f"f {right.faces[0, 0] + 1} " in plain


def test_invalid_inputs_are_refused(tmp_path, right):
    albedo, normal = textures()
    args = dict(vertices=right.vertices, faces=right.faces, uvs=right.uvs, faces_uv=right.faces_uv, albedo=albedo)
    bad = [
        (dict(path=tmp_path / "my hand.obj"), "whitespace"),
        (dict(albedo=albedo.astype(np.float64)), "uint8"),
        (dict(normal_map=normal[..., 0]), "normal_map"),
        (dict(vertices=right.vertices[:, :2]), "vertices"),
        (dict(vertices=np.where(right.vertices > 0.05, np.nan, right.vertices)), "finite"),
        (dict(faces=right.faces + len(right.vertices)), "faces"),
        (dict(faces_uv=right.faces_uv[:10]), "differ"),
        (dict(faces_uv=right.faces_uv.astype(np.float32)), "integer"),
        (dict(uvs=np.zeros((0, 2))), "uvs"),
    ]
    for override, message in bad:
        kwargs = {"path": tmp_path / "x.obj", **args, **override}
        with pytest.raises(ValueError, match=message):
            save_textured_obj(**kwargs)
    assert not any(tmp_path.iterdir())  # nothing half-written
