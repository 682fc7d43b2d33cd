"""glTF export: read back by trimesh and by a small spec-following reader, skinned as the spec says
and compared with our `HandModel`."""

from __future__ import annotations

import dataclasses
import json
import logging
import struct

import cv2
import numpy as np
import pytest
import torch
import trimesh

import harp_track as ht
from harp_track.avatar.gltf import (_gltf_tangents, axis_angle_to_quaternion, export_glb, node_rotations,
                                    split_uv_seams, truncate_weights)
from harp_track.hand.rotations import axis_angle_to_matrix
from harp_track.render import vertex_normals, vertex_tangents

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


# ---------------------------------------------------------------- a minimal GLB reader (spec 2.0)

def read_glb(path):
    """(json dict, binary chunk bytes), checking the container layout on the way."""
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", raw, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(raw))
    json_len, json_type = struct.unpack_from("<II", raw, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    gltf = json.loads(raw[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", raw, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    binary = raw[28 + json_len:28 + json_len + bin_len]
    assert 28 + json_len + bin_len == len(raw)
    assert gltf["buffers"][0]["byteLength"] <= bin_len
    return gltf, binary


def accessor(gltf, binary, index):
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_COMPONENTS[acc["componentType"]]).newbyteorder("<")
    width = _WIDTH[acc["type"]]
    offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    assert offset % dtype.itemsize == 0, "accessor data must be aligned to its component size"
    assert "byteStride" not in view  # our writer packs tightly
    end = offset + acc["count"] * width * dtype.itemsize
    assert end <= view.get("byteOffset", 0) + view["byteLength"] <= len(binary)
    out = np.frombuffer(binary, dtype, acc["count"] * width, offset).reshape(acc["count"], width)
    if acc["type"] == "MAT4":
        out = out.reshape(-1, 4, 4).transpose(0, 2, 1)  # stored column-major
    return out


def image(gltf, binary, index):
    img = gltf["images"][index]
    view = gltf["bufferViews"][img["bufferView"]]
    assert img["mimeType"] == "image/png"
    png = np.frombuffer(binary, np.uint8, view["byteLength"], view.get("byteOffset", 0))
    return cv2.imdecode(png, cv2.IMREAD_UNCHANGED)[..., ::-1]


def quaternion_matrix(q):
    """(..., 4) x y z w -> (..., 3, 3)."""
    x, y, z, w = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(*x.shape, 3, 3)


def local_matrix(node, rotation=None, translation=None):
    """The node's TRS (or matrix) as 4x4, with the rotation/translation optionally overridden."""
    m = np.eye(4)
    if "matrix" in node:
        m = np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    t = np.asarray(translation if translation is not None else node.get("translation", [0, 0, 0]), dtype=np.float64)
    r = quaternion_matrix(rotation if rotation is not None else node.get("rotation", [0, 0, 0, 1]))
    s = np.diag(node.get("scale", [1, 1, 1]))
    if "matrix" not in node or rotation is not None:
        m[:3, :3], m[:3, 3] = r @ s, t
    return m


def gltf_skin(gltf, binary, rotations=None, root_translation=None):
    """Skinned POSITION as glTF's spec defines it: jointMatrix = global(joint node) @ IBM,
    v' = sum_k w_k jointMatrix_k v; the skinned mesh node's own transform is ignored.
    rotations: {node index: quaternion} overriding node rotations."""
    rotations = rotations or {}
    nodes = gltf["nodes"]
    parent = {c: p for p, node in enumerate(nodes) for c in node.get("children", [])}
    glob: dict = {}

    def world(i):
        if i not in glob:
            trans = root_translation if (root_translation is not None and i not in parent
                                         and "mesh" not in nodes[i]) else None
            local = local_matrix(nodes[i], rotations.get(i), trans)
            glob[i] = (world(parent[i]) @ local) if i in parent else local
        return glob[i]

    mesh_node = next(n for n in nodes if "mesh" in n)
    skin = gltf["skins"][mesh_node["skin"]]
    prim = gltf["meshes"][mesh_node["mesh"]]["primitives"][0]
    ibm = accessor(gltf, binary, skin["inverseBindMatrices"]).astype(np.float64)
    joint_mats = np.stack([world(j) for j in skin["joints"]]) @ ibm
    pos = accessor(gltf, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    joints = accessor(gltf, binary, prim["attributes"]["JOINTS_0"]).astype(np.int64)
    weights = accessor(gltf, binary, prim["attributes"]["WEIGHTS_0"]).astype(np.float64)
    blended = np.einsum("nk,nkab->nab", weights, joint_mats[joints])
    return np.einsum("nab,nb->na", blended[:, :3, :3], pos) + blended[:, :3, 3]


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def right():
    return ht.load_hand_model().data


def textures(h=64, w=48, seed=0):
    rng = np.random.default_rng(seed)
    # Albedo: red encodes the row, green the column, so a flipped or transposed lookup shows.
    rows, cols = np.mgrid[0:h, 0:w]
    albedo = np.stack([rows * 255 // (h - 1), cols * 255 // (w - 1), rng.integers(0, 256, (h, w))], -1)
    normal = rng.integers(0, 256, (h // 2, w // 2, 3))
    return albedo.astype(np.uint8), normal.astype(np.uint8)


def match_vertices(positions, vertices):
    """Index into `vertices` of each glTF position (nearest; asserts it is the same point)."""
    d = np.linalg.norm(positions[:, None, :] - vertices[None, :, :], axis=-1)
    idx = d.argmin(1)
    assert d[np.arange(len(idx)), idx].max() < 1e-6
    return idx


def random_pose(data, batch, seed):
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    pose = 0.4 * torch.randn(batch, data.num_joints - 1, 3, generator=g, dtype=torch.float64)
    transl = 0.1 * torch.randn(batch, 3, generator=g, dtype=torch.float64)
    return go, pose, transl


def truncated_lbs(data, world, weights_idx, weights, verts):
    """Our skinning formula G_c B_c (v - h_c) + w_c with the glTF's 4 weights, in float64 numpy."""
    skin_rot = world[:, :3, :3] @ data.bind_rotations.astype(np.float64)
    skin_t = world[:, :3, 3] - np.einsum("jab,jb->ja", skin_rot, data.bind_joints.astype(np.float64))
    per_joint = np.einsum("jab,nb->nja", skin_rot, verts) + skin_t[None]
    return np.einsum("nk,nka->na", weights, np.take_along_axis(per_joint, weights_idx[..., None], 1))


# ---------------------------------------------------------------- tests

def test_trimesh_reads_mesh_uvs_and_textures(tmp_path, right):
    albedo, normal = textures()
    path = export_glb(tmp_path / "hand.glb", right, albedo, normal)
    mesh = trimesh.load(path, force="mesh", process=False)
    pairs = np.unique(np.stack([right.faces.ravel(), right.faces_uv.ravel()], 1), axis=0)
    assert len(mesh.vertices) == len(pairs) == 1817  # 1609 vertices, split at the UV seams
    assert len(mesh.faces) == len(right.faces)
    src = match_vertices(np.asarray(mesh.vertices), right.vertices.astype(np.float64))
    # Every triangle is one of ours with the same winding (compared up to a cyclic rotation).
    canon = lambda faces: {tuple(np.roll(f, -int(np.argmin(f)))) for f in faces}  # noqa: E731
    assert canon(src[mesh.faces]) == canon(right.faces)
    # UVs: trimesh hands back OBJ-style v (bottom-up), so the glTF's top-down v reads as 1 - v.
    # Each trimesh vertex must be one of our (vertex, uv) corner pairs, each pair exactly once.
    uv = np.asarray(mesh.visual.uv, dtype=np.float64)
    back = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)
    found = []
    for s, b in zip(src, back):
        candidates = pairs[pairs[:, 0] == s, 1]
        dist = np.abs(right.uvs[candidates] - b).max(1)
        assert dist.min() < 1e-6
        found.append(candidates[dist.argmin()])
    assert len({(int(s), int(t)) for s, t in zip(src, found)}) == len(pairs)
    vid, uid, _ = split_uv_seams(right.faces, right.faces_uv)  # the documented vertex order
    assert np.array_equal(src, vid) and np.array_equal(found, uid)
    ours_uv = right.uvs[np.array(found)]
    # Textures round-trip exactly (PNG is lossless); the normal map with green inverted into
    # glTF's +Y-up convention.
    material = mesh.visual.material
    assert np.array_equal(np.asarray(material.baseColorTexture.convert("RGB")), albedo)
    flipped = normal.copy()
    flipped[..., 1] = 255 - flipped[..., 1]
    assert np.array_equal(np.asarray(material.normalTexture.convert("RGB")), flipped)
    assert material.roughnessFactor == 1.0 and material.metallicFactor == 0.0
    # Texture semantics, not just bookkeeping: trimesh's own lookup must land on the texel that our
    # convention (v = 0 at the top row) names. Red encodes the row and green the column; a
    # flipped v would be off by up to the whole image.
    H, W = albedo.shape[:2]
    colors = trimesh.visual.color.uv_to_color(uv, material.baseColorTexture).astype(np.float64)
    assert np.abs(colors[:, 0] / 255 * (H - 1) - ours_uv[:, 1] * (H - 1)).max() < 1.5
    assert np.abs(colors[:, 1] / 255 * (W - 1) - ours_uv[:, 0] * (W - 1)).max() < 1.5


def posed_gltf(gltf, binary, data, go, pose, transl):
    """(B, N, 3) glTF-skinned positions for a batch of our pose parameters (float64 torch)."""
    quats = node_rotations(data, go.numpy(), pose.numpy())
    rest_root = np.asarray(gltf["nodes"][0]["translation"], dtype=np.float64)
    return np.stack([gltf_skin(gltf, binary, dict(enumerate(q)), rest_root + t) for q, t in zip(quats, transl.numpy())])


@pytest.mark.parametrize("side", ["right", "left"])
def test_gltf_skinning_reproduces_hand_model(tmp_path, right, side):
    data = right if side == "right" else right.mirrored()
    albedo, _ = textures()
    gltf, binary = read_glb(export_glb(tmp_path / "hand.glb", data, albedo))
    prim = gltf["meshes"][0]["primitives"][0]
    positions = accessor(gltf, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    src = match_vertices(positions, data.vertices.astype(np.float64))
    model = ht.hand.HandModel(data).double()
    go, pose, transl = random_pose(data, 6, seed=1 if side == "right" else 2)
    with torch.no_grad():
        out = model(global_orient=go, pose=pose, transl=transl)
    ref = out.vertices.numpy()[:, src]
    skinned = posed_gltf(gltf, binary, data, go, pose, transl)

    # Exactly our LBS with the same 4 renormalized weights: only float32 storage differs.
    idx, w = truncate_weights(data.skin_weights[src])
    exact = np.stack([truncated_lbs(data, world, idx, w, data.vertices[src].astype(np.float64))
                      for world in out.joint_transforms.numpy()])
    assert np.abs(skinned - exact).max() < 2e-6
    # Against the full model: vertices with at most 4 influences (94% of Anny's) are exact, so a
    # wrong node or bind transform fails here; the rest differ by the dropped weights only.
    err = np.linalg.norm(skinned - ref, axis=-1)
    few = (data.skin_weights[src] > 0).sum(1) <= 4
    assert few.mean() > 0.9 and err[:, few].max() < 2e-6
    print(f"{side}: 4-weight truncation error on {(~few).sum()} of {len(few)} glTF vertices: max "
          f"{err.max() * 1e3:.2f} mm, mean over all {err.mean() * 1e3:.3f} mm")
    assert err.max() < 0.015 and err.mean() < 1e-4
    # The rest pose (no node overrides) is the model's zero pose.
    with torch.no_grad():
        zero = model().vertices.double().numpy()[0, src]
    assert np.linalg.norm(gltf_skin(gltf, binary) - zero, axis=-1).max() < 1e-3


def test_baked_shape_matches_hand_model(tmp_path, right):
    shape = np.random.default_rng(3).normal(size=right.num_shape) * 1.5
    gltf, binary = read_glb(export_glb(tmp_path / "hand.glb", right, textures()[0], shape=shape))
    model = ht.hand.HandModel(right).double()
    go, pose, transl = random_pose(right, 2, seed=4)
    with torch.no_grad():
        out = model(global_orient=go, pose=pose, transl=transl, shape=torch.as_tensor(shape)[None].expand(2, -1))
    prim = gltf["meshes"][0]["primitives"][0]
    shaped = right.vertices + np.einsum("k,kva->va", shape, right.vertex_shape_basis)
    src = match_vertices(accessor(gltf, binary, prim["attributes"]["POSITION"]).astype(np.float64), shaped)
    few = (right.skin_weights[src] > 0).sum(1) <= 4
    skinned = posed_gltf(gltf, binary, right, go, pose, transl)
    assert np.abs(skinned[:, few] - out.vertices.numpy()[:, src][:, few]).max() < 2e-6


def test_glb_structure(tmp_path, right):
    albedo, normal = textures()
    gltf, binary = read_glb(export_glb(tmp_path / "hand.glb", right, albedo, normal, name="alice"))
    J = right.num_joints
    nodes, skin = gltf["nodes"], gltf["skins"][0]
    assert gltf["asset"]["version"] == "2.0"
    assert skin["joints"] == list(range(J)) and [n["name"] for n in nodes[:J]] == list(right.joint_names)
    parent = {c: p for p, n in enumerate(nodes) for c in n.get("children", [])}
    assert [parent.get(c, -1) for c in range(J)] == right.parents.tolist()
    np.testing.assert_allclose([n["translation"] for n in nodes[:J]], right.joint_offsets, atol=1e-7)
    assert all("rotation" not in n for n in nodes[:J])  # rest = zero pose: identity rotations
    assert nodes[J] == {"name": "alice", "mesh": 0, "skin": 0} and gltf["scenes"][0]["nodes"] == [0, J]
    prim = gltf["meshes"][0]["primitives"][0]
    attr = {k: accessor(gltf, binary, i) for k, i in prim["attributes"].items()}
    pos = attr["POSITION"]
    acc = gltf["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_array_equal(acc["min"], pos.min(0))
    np.testing.assert_array_equal(acc["max"], pos.max(0))
    faces = accessor(gltf, binary, prim["indices"]).reshape(-1, 3)
    assert faces.max() < len(pos) and len(faces) == len(right.faces)
    np.testing.assert_allclose(attr["WEIGHTS_0"].sum(1), 1.0, atol=1e-6)
    assert attr["JOINTS_0"].max() < J and attr["JOINTS_0"].dtype == np.uint8
    w, j = attr["WEIGHTS_0"], attr["JOINTS_0"].astype(np.int64)
    assert all(len(set(jj[ww > 0])) == (ww > 0).sum() for jj, ww in zip(j, w))  # no joint twice
    np.testing.assert_allclose(np.linalg.norm(attr["NORMAL"], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(attr["TANGENT"][:, :3], axis=1), 1.0, atol=1e-6)
    assert set(np.unique(attr["TANGENT"][:, 3])) <= {-1.0, 1.0}
    assert np.abs((attr["NORMAL"] * attr["TANGENT"][:, :3]).sum(1)).max() < 1e-5
    ibm = accessor(gltf, binary, skin["inverseBindMatrices"])
    np.testing.assert_allclose(ibm[:, :3, :3], right.bind_rotations, atol=1e-7)
    np.testing.assert_allclose(ibm[:, :3, 3], -np.einsum("jab,jb->ja", right.bind_rotations, right.bind_joints),
                               atol=1e-7)
    np.testing.assert_array_equal(ibm[:, 3], np.tile([0, 0, 0, 1], (J, 1)))
    material = gltf["materials"][0]
    assert material["pbrMetallicRoughness"]["roughnessFactor"] == 1.0
    assert material["pbrMetallicRoughness"]["metallicFactor"] == 0.0
    assert np.array_equal(image(gltf, binary, 0), albedo)
    # Normals point out of the mesh (front faces are counter-clockwise in glTF): the hand's
    # surface normals point away from its centre on average.
    centre = pos.mean(0)
    assert ((pos - centre) * attr["NORMAL"]).sum(1).mean() > 0
    # Without a normal map there is no normalTexture and one image.
    gltf2, _ = read_glb(export_glb(tmp_path / "plain.glb", right, albedo))
    assert "normalTexture" not in gltf2["materials"][0] and len(gltf2["images"]) == 1


def test_node_rotations_are_the_model_rotations(right):
    rng = np.random.default_rng(5)
    go, pose = rng.normal(size=(3, 3)), rng.normal(size=(3, right.num_joints - 1, 3))
    q = node_rotations(right, go, pose)
    assert q.shape == (3, right.num_joints, 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    expected = axis_angle_to_matrix(torch.as_tensor(np.concatenate([go[:, None], pose], 1))).numpy()
    np.testing.assert_allclose(quaternion_matrix(q), expected, atol=1e-12)
    np.testing.assert_allclose(node_rotations(right)[..., 3], 1.0)  # defaults: identity
    np.testing.assert_allclose(axis_angle_to_quaternion(np.array([1e-9, 0, 0])), [5e-10, 0, 0, 1], atol=1e-15)
    with pytest.raises(ValueError, match="pose"):
        node_rotations(right, go, pose[:, :3])


def test_normal_mapping_matches_our_renderer(tmp_path, right):
    """The normal a glTF viewer derives (NORMAL, TANGENT, embedded texels, glTF's bitangent rule)
    equals the one `render_shaded` derives from our textures and tangents."""
    albedo, normal = textures()
    gltf, binary = read_glb(export_glb(tmp_path / "hand.glb", right, albedo, normal))
    prim = gltf["meshes"][0]["primitives"][0]
    n_g = accessor(gltf, binary, prim["attributes"]["NORMAL"]).astype(np.float64)
    t_g = accessor(gltf, binary, prim["attributes"]["TANGENT"]).astype(np.float64)
    texels_g = image(gltf, binary, gltf["textures"][gltf["materials"][0]["normalTexture"]["index"]]["source"])
    vid, uid, _ = split_uv_seams(right.faces, right.faces_uv)
    verts = torch.as_tensor(right.vertices, dtype=torch.float64)[None]
    n_ours = vertex_normals(verts, torch.as_tensor(right.faces))[0].numpy()[vid]
    t_ours = vertex_tangents(verts, torch.as_tensor(right.faces), torch.as_tensor(right.uvs, dtype=torch.float64),
                             torch.as_tensor(right.faces_uv))[0].numpy()[uid]
    np.testing.assert_allclose(n_g, n_ours, atol=1e-6)
    # One random texel per vertex, read from each side's own image.
    rng = np.random.default_rng(6)
    rows, cols = rng.integers(0, normal.shape[0], len(vid)), rng.integers(0, normal.shape[1], len(vid))
    m_ours = normal[rows, cols] / 255.0 * 2.0 - 1.0
    m_g = texels_g[rows, cols] / 255.0 * 2.0 - 1.0
    # Ours (shading._shade_torch): tangent orthogonalized, bitangent = sign * (n x t).
    t = t_ours[:, :3] - (t_ours[:, :3] * n_ours).sum(1, keepdims=True) * n_ours
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    b = np.cross(n_ours, t) * np.where(t_ours[:, 3:] < 0, -1.0, 1.0)
    ours = m_ours[:, :1] * t + m_ours[:, 1:2] * b + m_ours[:, 2:] * n_ours
    # glTF 2.0 spec: bitangent = cross(normal, tangent.xyz) * tangent.w.
    b_g = np.cross(n_g, t_g[:, :3]) * t_g[:, 3:]
    theirs = m_g[:, :1] * t_g[:, :3] + m_g[:, 1:2] * b_g + m_g[:, 2:] * n_g
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_tangent_handedness_follows_the_gltf_spec():
    """A quad facing +z with its image shown upright (u along +x, the top row at +y, so v = 1 - y):
    glTF's +Y (green) is up the image, so bitangent = cross(N, T) * w must be +y."""
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    normals = np.tile([0.0, 0.0, 1.0], (4, 1))
    for u_sign in (1, -1):  # -1: the image mirrored left-right, which flips the handedness
        uvs = np.stack([verts[:, 0] if u_sign > 0 else 1 - verts[:, 0], 1 - verts[:, 1]], 1)
        t = _gltf_tangents(verts, faces, uvs, faces, np.arange(4), normals)
        np.testing.assert_allclose(t[:, :3], np.tile([u_sign, 0.0, 0.0], (4, 1)), atol=1e-12)
        bitangent = np.cross(normals, t[:, :3]) * t[:, 3:]
        np.testing.assert_allclose(bitangent, np.tile([0.0, 1.0, 0.0], (4, 1)), atol=1e-12)


def test_invalid_inputs_are_refused(tmp_path, right):
    albedo, normal = textures()
    bad = [
        (dict(albedo=albedo.astype(np.float32)), "uint8"),
        (dict(albedo=albedo[..., :2]), r"\(H, W, 3\)"),
        (dict(albedo=albedo[0]), r"\(H, W, 3\)"),
        (dict(albedo=albedo.tolist()), "numpy array"),
        (dict(albedo=albedo, normal_map=normal.astype(np.int16)), "normal_map must be uint8"),
        (dict(albedo=albedo, normal_map=normal[..., :1]), "normal_map"),
        (dict(albedo=albedo, shape=np.zeros(3)), "shape"),
        (dict(albedo=albedo, shape=np.full(right.num_shape, np.nan)), "NaN"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            export_glb(tmp_path / "x.glb", right, **kwargs)
    no_uv = dataclasses.replace(right, uvs=np.zeros((0, 2), np.float32), faces_uv=np.zeros((0, 3), np.int64))
    with pytest.raises(ValueError, match="no UVs"):
        export_glb(tmp_path / "x.glb", no_uv, albedo)
    assert not (tmp_path / "x.glb").exists()


def test_pose_correctives_are_dropped_with_a_warning(tmp_path, right, caplog):
    basis = np.random.default_rng(7).normal(scale=1e-3, size=(9 * (right.num_joints - 1), right.num_vertices, 3))
    with_correctives = dataclasses.replace(right, pose_basis=basis.astype(np.float32))
    with caplog.at_level(logging.WARNING, logger="harp_track.avatar.gltf"):
        path = export_glb(tmp_path / "mano_like.glb", with_correctives, textures()[0])
    assert "pose correctives" in caplog.text
    # The exported mesh is the same as without correctives.
    assert read_glb(path)[1] == read_glb(export_glb(tmp_path / "plain.glb", right, textures()[0]))[1]


def test_split_and_truncate_helpers():
    vid, uid, faces = split_uv_seams(np.array([[0, 1, 2], [2, 1, 3]]), np.array([[0, 1, 2], [4, 1, 3]]))
    assert list(zip(vid, uid)) == [(0, 0), (1, 1), (2, 2), (2, 4), (3, 3)]
    assert faces.tolist() == [[0, 1, 2], [3, 1, 4]]
    idx, w = truncate_weights(np.array([[0.1, 0.05, 0.3, 0.2, 0.35], [0.0, 1.0, 0.0, 0.0, 0.0]]))
    assert idx.tolist() == [[4, 2, 3, 0], [1, 0, 0, 0]]
    np.testing.assert_allclose(w, [[0.35 / 0.95, 0.3 / 0.95, 0.2 / 0.95, 0.1 / 0.95], [1, 0, 0, 0]])
