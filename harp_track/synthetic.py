"""Synthetic hand clips with exact ground truth, rendered by our own renderer from our own model.

They serve as the demo's embedded default clip (no camera, no downloads), as test data and as
benchmark data: every frame comes with the true joints, keypoints and model parameters.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .avatar import Avatar
from .camera import Camera
from .hand import HandModel, load_hand_model
from .hand.derive import personalized
from .hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle, palm_to_camera
from .keypoints import FINGER_KEYPOINTS
from .render import (Light, RenderMesh, material_mip, projection_from_intrinsics, render_shaded, select_backend,
                     vertex_normals)
from .visualize import to_uint8

# make_clip's fixed point light, metres camera space, and the renderer's default ambient.
CLIP_LIGHT = (-0.25, -0.35, 0.05)
CLIP_AMBIENT = 0.4
# The gestures a clip moves through, in order (looping back to the first).
GESTURE_CYCLE = ("flat", "spread", "fist", "point", "pinch")
SKIN_TONES = {"light": (0.86, 0.67, 0.57), "medium": (0.76, 0.55, 0.42), "dark": (0.45, 0.30, 0.22)}


@dataclasses.dataclass
class SyntheticClip:
    """frames (N, H, W, 3) uint8 RGB; timestamps (N,) seconds; the camera; ground truth per frame:
    joints (N, 21, 3) metres camera space (MediaPipe order), keypoints_2d (N, 21, 2) pixels,
    vertices (N, V, 3), and the model inputs global_orient (N, 3), pose (N, P, 3), transl (N, 3)."""

    frames: np.ndarray
    timestamps: np.ndarray
    camera: Camera
    side: str
    joints: np.ndarray
    keypoints_2d: np.ndarray
    vertices: np.ndarray
    global_orient: np.ndarray
    pose: np.ndarray
    transl: np.ndarray


def skin_texture(size: int = 256, tone: str = "medium", seed: int = 0) -> torch.Tensor:
    """(1, size, size, 3) albedo in [0, 1]: a skin tone with soft blotches, so the surface has
    texture to track without any pattern a detector could mistake for something else."""
    if tone not in SKIN_TONES:
        raise ValueError(f"tone must be one of {sorted(SKIN_TONES)}, got {tone!r}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, size // 16, size // 16, generator=g)
    noise = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0, 0]
    base = torch.tensor(SKIN_TONES[tone])
    return (base * (0.92 + 0.16 * noise[..., None])).clamp(0, 1)[None]


def pose_sequence(model: HandModel, num_frames: int, fps: float = 30.0, seed: int = 0,
                  depth: float = 0.45) -> dict[str, torch.Tensor]:
    """Smooth model inputs (N, ...) moving through GESTURE_CYCLE while the hand turns and drifts."""
    g = torch.Generator().manual_seed(seed)
    gestures = torch.cat([model.anatomy.gesture(name) for name in GESTURE_CYCLE + GESTURE_CYCLE[:1]])
    seconds_per_gesture = 1.2
    t = torch.arange(num_frames, dtype=torch.float32) / fps
    phase = (t / seconds_per_gesture) % (len(GESTURE_CYCLE))
    k = phase.floor().long()
    s = phase - k
    s = 0.5 - 0.5 * torch.cos(math.pi * s.clamp(0, 1))  # ease in and out
    angles = gestures[k] * (1 - s)[:, None, None] + gestures[k + 1] * s[:, None, None]
    jitter = 0.1 * torch.rand(3, generator=g)
    yaw = 0.6 * torch.sin(2 * math.pi * (0.23 + jitter[0]) * t)
    pitch = 0.35 * torch.sin(2 * math.pi * (0.17 + jitter[1]) * t + 1.0)
    roll = 0.3 * torch.sin(2 * math.pi * (0.11 + jitter[2]) * t + 2.0)
    turn = axis_angle_to_matrix(torch.stack([pitch, yaw, roll], 1))
    orient = matrix_to_axis_angle(turn @ palm_to_camera())
    transl = torch.stack([0.03 * torch.sin(2 * math.pi * 0.13 * t), 0.06 + 0.02 * torch.sin(2 * math.pi * 0.19 * t),
                          depth + 0.05 * torch.sin(2 * math.pi * 0.07 * t)], 1)
    return dict(global_orient=orient, pose=model.anatomy.to_pose(angles), transl=transl)


def make_clip(num_frames: int = 90, image_size: tuple[int, int] = (360, 640), fps: float = 30.0,
              side: str = "right", tone: str = "medium", seed: int = 0, model: HandModel | None = None,
              progress: bool = False, shape: np.ndarray | torch.Tensor | None = None,
              albedo: torch.Tensor | None = None, lighting: str = "fixed", occluder: bool = False) -> SyntheticClip:
    """Render a clip of the hand model moving through gestures, with its ground truth.

    image_size: (H, W) pixels. The camera has a 60-degree horizontal field of view; self-shadowing
    is on. shape: (K,) shape coefficients (default the mean hand); albedo: (1, S, S, 3) in [0, 1]
    (default `skin_texture(tone=tone)`). lighting: "fixed", one point light above-left of the
    camera, or "changing", the light swinging from one side of the hand to the other while the
    exposure drifts by +-25%. occluder: a dark bar (a pen, a phone's edge) sweeps across the
    frame in front of the hand during the middle third of the clip; the ground truth is the hand
    behind it. progress: show a progress bar.
    """
    if lighting not in ("fixed", "changing"):
        raise ValueError(f"lighting must be 'fixed' or 'changing', got {lighting!r}")
    model = model or load_hand_model(side=side)
    height, width = image_size
    camera = Camera.from_fov(width, height)
    camera = dataclasses.replace(camera, assumed=False)
    backend = select_backend(device="cpu")
    mesh = RenderMesh.create(model.faces, model.uvs, model.faces_uv, backend)
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, image_size)
    albedo = skin_texture(tone=tone, seed=seed) if albedo is None else albedo
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    background = torch.stack([0.30 + 0.25 * xx, 0.33 + 0.15 * yy, 0.38 - 0.1 * xx], -1)[None]
    inputs = pose_sequence(model, num_frames, fps, seed)
    if shape is not None:
        inputs["shape"] = torch.as_tensor(np.asarray(shape), dtype=torch.float32).reshape(1, -1).expand(num_frames, -1)
    frames, vertices, joints = [], [], []
    with torch.no_grad():
        for i in tqdm(range(num_frames), desc="rendering the clip", unit="frame", disable=not progress):
            out = model(**{k: v[i:i + 1] for k, v in inputs.items()})
            phase = i / max(num_frames - 1, 1)
            light, exposure = Light(torch.tensor([CLIP_LIGHT])), 1.0
            if lighting == "changing":
                swing = math.sin(2 * math.pi * phase)
                light = Light(torch.tensor([[0.3 * swing, -0.3, 0.2 - 0.15 * abs(swing)]]))
                exposure = 1.0 + 0.25 * math.sin(2 * math.pi * 1.5 * phase + 0.5)
            shaded = render_shaded(out.vertices, mesh, projection, image_size, light, albedo=albedo, ambient=CLIP_AMBIENT,
                                   background=background, backend=backend)
            image = shaded.image[0] * exposure
            if occluder and 1 / 3 <= phase <= 2 / 3:
                image = _draw_occluder(image, (3 * phase - 1), camera.project(out.keypoints[0]))
            frames.append(to_uint8(image))
            vertices.append(out.vertices[0])
            joints.append(out.keypoints[0])
    joints_t = torch.stack(joints)
    return SyntheticClip(
        frames=np.stack(frames), timestamps=np.arange(num_frames) / fps, camera=camera, side=side,
        joints=joints_t.numpy(), keypoints_2d=camera.project(joints_t).numpy(),
        vertices=torch.stack(vertices).numpy(), global_orient=inputs["global_orient"].numpy(),
        pose=inputs["pose"].numpy(), transl=inputs["transl"].numpy())


def clip_avatar(model: HandModel | None = None, shape: np.ndarray | None = None, albedo: torch.Tensor | None = None,
                tone: str = "medium", seed: int = 0) -> Avatar:
    """The avatar of the hand `make_clip` renders with the same model, shape, albedo, tone and seed:
    what a perfect enrollment would give (its mesh at `shape`, its albedo, a flat normal map, the
    clip's fixed light)."""
    model = model or load_hand_model()
    shape = np.zeros(model.num_shape, np.float32) if shape is None else np.asarray(shape, np.float32)
    albedo = skin_texture(tone=tone, seed=seed) if albedo is None else albedo
    flat = np.zeros((*albedo.shape[1:3], 3), np.float32)
    flat[..., :2], flat[..., 2] = 0.5, 1.0
    return Avatar(hand=personalized(model.data, shape, name="clip-hand"), albedo=albedo[0].numpy(), normal_map=flat,
                  ambient=CLIP_AMBIENT, light_position=np.array(CLIP_LIGHT, np.float32), shape=shape,
                  base_model=model.name)


def _draw_occluder(image: torch.Tensor, progress: float, keypoints_2d: torch.Tensor) -> torch.Tensor:
    """A dark, slightly tilted bar, a third of the hand's width wide, crossing the hand's box
    from left to right as `progress` goes from 0 to 1."""
    height, width = image.shape[:2]
    lo, hi = keypoints_2d.min(0).values, keypoints_2d.max(0).values
    half = 0.17 * float(hi[0] - lo[0]) + 4.0
    centre = float(lo[0]) - half + progress * (float(hi[0] - lo[0]) + 2 * half)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                            torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    distance = (xx - centre - 0.15 * (yy - float(hi[1] + lo[1]) / 2)).abs()
    cover = (half + 0.5 - distance).clamp(0, 1)[..., None]  # a one-pixel antialiased edge
    return image * (1 - cover) + torch.tensor([0.12, 0.13, 0.16]) * cover


# Enrollment subject: a distinctive appearance (tattoo, nails) and shape, so an avatar that merely
# learns the average skin colour or the mean hand cannot score well against the ground truth.
TATTOO_INK = (0.10, 0.08, 0.13)
# Nails: the skin under them, darker and pinker (less green, a little more blue), for any tone.
NAIL_TINT = (0.92, 0.76, 1.05)
# Shape coefficients in population standard deviations: a larger-than-average hand with
# non-mean proportions (all within +-2 std, so still a plausible adult hand).
ENROLLMENT_SHAPE = (1.2, -0.8, 0.6, -0.4, 0.3, -0.3, 0.2, -0.2, 0.1, -0.1)
ENROLLMENT_POSES = ("turning", "novel")
ENROLLMENT_AMBIENT = 0.35
# The hand's largest extent over a clip, as a fraction of the smaller image side: a close-up that
# still leaves a margin for the antialiased silhouette and for the landmark detector's crop.
FILL = 0.75


@dataclasses.dataclass
class EnrollmentClip:
    """A rendered enrollment (or evaluation) clip of one subject with its exact ground truth.

    frames (N, H, W, 3) uint8 RGB; masks (N, H, W) bool, the hand's pixels (render alpha > 0.5);
    camera: intrinsics in pixels (60-degree horizontal field of view); model inputs per frame:
    global_orient (N, 3) axis-angle, pose (N, P, 3) axis-angle, transl (N, 3) metres; shape (K,) in
    population standard deviations (the same every frame); vertices (N, V, 3) and joints
    (N, 21, 3, MediaPipe order) metres in camera space; keypoints_2d (N, 21, 2) pixels; faces
    (F, 3) int64; albedo (1, S, S, 3) float32 in [0, 1] in the model's UV layout (v = 0 at row 0);
    light_positions (N, 3) metres in camera space (one point light per frame); ambient: the ratio
    used by `render_shaded`; background (H, W, 3) float32 in [0, 1], the same every frame.
    """

    frames: np.ndarray
    masks: np.ndarray
    camera: Camera
    side: str
    global_orient: np.ndarray
    pose: np.ndarray
    transl: np.ndarray
    shape: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    keypoints_2d: np.ndarray
    faces: np.ndarray
    albedo: np.ndarray
    light_positions: np.ndarray
    ambient: float
    background: np.ndarray


def _dorsal_masks(model: HandModel, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) float masks in UV space of the back of the hand (palm region only, not the
    fingers) and of the nails, found from the model's own rest geometry so they hold for any
    model with UVs and for either side."""
    with torch.no_grad():
        out = model()
    verts = out.vertices[0].double().numpy()
    kp = out.keypoints[0].double().numpy()
    normals = vertex_normals(out.vertices, model.faces)[0].double().numpy()
    side = 1.0 if model.side == "right" else -1.0
    # The same palm normal as the anatomical pose space; the back of the hand faces the other way.
    back = -np.cross(kp[5] - kp[0], kp[17] - kp[0]) * side
    back /= np.linalg.norm(back)

    # Palm region: between the wrist and the knuckles along the middle finger, between the index
    # and little finger knuckles across.
    along = kp[9] - kp[0]
    length = np.linalg.norm(along)
    along /= length
    across = kp[5] - kp[17]
    across -= (across @ along) * along
    across /= np.linalg.norm(across)
    rel = verts - kp[0]
    s, w = rel @ along, rel @ across
    w_lo, w_hi = sorted(((kp[17] - kp[0]) @ across, (kp[5] - kp[0]) @ across))
    back_of_hand = (normals @ back > 0.4) & (s > 0.0) & (s < 0.95 * length) & (w > w_lo) & (w < w_hi)

    # Nails: near each fingertip, on the side opposite to where the last joint flexes.
    anatomy = model.anatomy
    axes = anatomy.axes.double().numpy()
    nails = np.zeros(len(verts), dtype=bool)
    for finger, keypoints in enumerate(FINGER_KEYPOINTS):
        j = next(j for j, (role, f) in enumerate(zip(anatomy.roles, anatomy.fingers))
                 if f == finger and role in ("dip", "thumb_ip"))
        flex, _, bone = axes[j]
        dorsal = -np.cross(flex, bone)  # flexion moves the bone towards cross(flex, bone)
        tip = kp[keypoints[3]]
        segment = np.linalg.norm(tip - kp[keypoints[2]])
        rel = verts - tip
        nails |= ((rel @ bone > -0.75 * segment) & (normals @ dorsal > 0.45) & (rel @ dorsal > 0)
                  & (np.linalg.norm(rel - np.outer(rel @ bone, bone), axis=1) < 0.015))
    return _uv_region(model, back_of_hand, size), _uv_region(model, nails, size)


def _uv_region(model: HandModel, selected: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 mask of the UV triangles whose three vertices are all `selected`."""
    faces = model.faces.numpy()
    corners = model.uvs.numpy()[model.faces_uv.numpy()[selected[faces].all(1)]]  # (F', 3, 2)
    mask = np.zeros((size, size), dtype=np.uint8)
    # Texel (row, col) covers uv in [col, col + 1) / size x [row, row + 1) / size; 4 fractional bits.
    cv2.fillPoly(mask, list(np.round(corners * size * 16 - 8).astype(np.int32)), 1, cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def _draw_tattoo(region: np.ndarray) -> np.ndarray:
    """(S, S) float32 ink coverage in [0, 1]: a ring, a star and a wave, laid out on the region's
    extent and kept inside it (shrunk a little so ink never bleeds across a UV seam)."""
    size = region.shape[0]
    ys, xs = np.nonzero(region)
    centre = np.array([xs.mean(), ys.mean()])
    extent = min(np.ptp(xs), np.ptp(ys))
    canvas = np.zeros((size, size), dtype=np.uint8)
    thick = max(2, size // 100)
    cv2.circle(canvas, tuple(np.round(centre + [-0.18 * extent, 0.0]).astype(int)),
               int(0.16 * extent), 255, thick, cv2.LINE_AA)
    star_centre = centre + [0.18 * extent, -0.12 * extent]
    angles = -math.pi / 2 + np.arange(5) * 4 * math.pi / 5  # every second vertex of a pentagon
    star = star_centre + 0.18 * extent * np.stack([np.cos(angles), np.sin(angles)], 1)
    cv2.polylines(canvas, [np.round(star).astype(np.int32)], True, 255, thick, cv2.LINE_AA)
    x = np.linspace(-0.35, 0.35, 60) * extent
    wave = centre + np.stack([x, 0.28 * extent + 0.06 * extent * np.sin(x / extent * 4 * math.pi)], 1)
    cv2.polylines(canvas, [np.round(wave).astype(np.int32)], False, 255, thick, cv2.LINE_AA)
    inside = cv2.erode(region, np.ones((5, 5), np.uint8))
    return canvas.astype(np.float32) / 255.0 * inside


def tattoo_texture(size: int = 512, tone: str = "medium", model: HandModel | None = None,
                   seed: int = 0) -> torch.Tensor:
    """(1, size, size, 3) float32 albedo in [0, 1] in `model`'s UV layout (v = 0 at texture row 0).

    The skin of `skin_texture` plus a high-contrast tattoo (a ring, a star and a wave in dark ink)
    on the back of the hand and darker, pinker nails: appearance detail that an avatar must
    reconstruct to score well, at known places. model: the right-hand default when None (the UV
    layout is the same for either side). seed: the skin's blotches.
    """
    model = model or load_hand_model()
    back, nails = _dorsal_masks(model, size)
    albedo = skin_texture(size, tone, seed)[0].numpy()
    nails = cv2.GaussianBlur(nails, (0, 0), size / 512)[..., None]  # a soft cuticle edge
    albedo = albedo * (1 + nails * (np.array(NAIL_TINT) - 1))
    ink = _draw_tattoo(back)[..., None]
    albedo = albedo * (1 - ink) + ink * np.array(TATTOO_INK)
    return torch.from_numpy(np.clip(albedo, 0, 1).astype(np.float32))[None]


def _ease(x: torch.Tensor) -> torch.Tensor:
    """0 -> 1 -> 0 over x in [0, 1] along a cosine, so motions start and end at rest."""
    return 0.5 - 0.5 * torch.cos(2 * math.pi * x)


def _rotation(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) camera-space rotations: yaw about the camera's y (turns the palm away), then
    pitch about x (tilts the fingers towards or away from the camera), then roll about z."""
    zero = torch.zeros_like(yaw)
    r = [axis_angle_to_matrix(torch.stack(v, 1)) for v in
         ((zero, yaw, zero), (pitch, zero, zero), (zero, zero, roll))]
    return r[2] @ r[1] @ r[0] @ palm_to_camera()


def _enrollment_poses(model: HandModel, num_frames: int, poses: str,
                      phase: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Orientations (N, 3, 3) in camera space and anatomical angles (N, P, 3) of a clip.

    'turning': palm to the camera, turning about the vertical to the back and back again, tilted
    a little, fingers spreading and closing with mild flexion. 'novel': fist, point and pinch at
    tilts and in-image rotations the turning clip never shows. phase: a fraction of a cycle that
    shifts the finger motion (the seed's variation).
    """
    x = torch.arange(num_frames, dtype=torch.float32) / num_frames
    flat, spread, fist = (model.anatomy.gesture(name) for name in ("flat", "spread", "fist"))
    if poses == "turning":
        rot = _rotation(0.12 * torch.sin(4 * math.pi * x), math.pi * _ease(x), torch.zeros_like(x))
        spreading = _ease(1.5 * x + phase)[:, None, None]
        flexing = _ease(x + phase)[:, None, None]
        angles = flat + spreading * (spread - flat) + 0.25 * flexing * (fist - flat)
        return rot, angles
    # Fist -> point -> pinch -> fist, each change eased, while the view sweeps tilted and rolled.
    gestures = torch.cat([model.anatomy.gesture(name) for name in ("fist", "point", "pinch", "fist")])
    stage = 3 * x
    k = stage.floor().long().clamp(max=2)
    s = (0.5 - 0.5 * torch.cos(math.pi * (stage - k))).clamp(0, 1)[:, None, None]
    angles = gestures[k] * (1 - s) + gestures[k + 1] * s
    rot = _rotation(0.5 * torch.cos(2 * math.pi * (x + phase)), 0.8 + 0.8 * torch.sin(4 * math.pi * x),
                    0.6 * torch.sin(2 * math.pi * (x + phase)))
    return rot, angles


def _background(height: int, width: int, seed: int) -> torch.Tensor:
    """(H, W, 3) a blue-grey gradient with mild, smooth noise: plain like a wall, yet far from
    any skin tone, so the hand's silhouette is unambiguous."""
    g = torch.Generator().manual_seed(seed + 1)  # not the skin's stream: its blotches would repeat here
    noise = torch.rand(1, 3, max(2, height // 32), max(2, width // 32), generator=g)
    noise = torch.nn.functional.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)[0]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    gradient = torch.stack([0.22 + 0.18 * xx, 0.30 + 0.12 * yy, 0.42 - 0.08 * xx], -1)
    return (gradient + 0.04 * (noise.permute(1, 2, 0) - 0.5)).clamp(0, 1)


def make_enrollment_clip(num_frames: int = 100, image_size: tuple[int, int] = (256, 256), side: str = "right",
                         shape: np.ndarray | torch.Tensor | None = None, seed: int = 0, light_motion: bool = True,
                         poses: str = "turning", progress: bool = False, tone: str = "medium",
                         albedo: torch.Tensor | None = None) -> EnrollmentClip:
    """Render a synthetic enrollment subject with exact ground truth for avatar quality.

    poses: 'turning', the clip a user records to enroll (palm to the camera, turning to the back
    and back again, fingers spreading and closing), or 'novel', fist / point / pinch in views the
    turning clip lacks, for held-out evaluation. image_size: (H, W) pixels; the camera has a
    60-degree horizontal field of view and the hand is centred, its largest extent over the clip
    about 75-80% of the smaller image side. shape: (K,) coefficients in population standard
    deviations (default `ENROLLMENT_SHAPE`, a larger-than-average hand). albedo: (1, S, S, 3) in
    [0, 1] (default `tattoo_texture(512, tone)`); one point light moves around the hand over the
    clip (fixed, above-left, when light_motion is False); ambient 0.35; self-shadowing on. seed:
    background noise and the phase of the finger and light motion, another take of the same
    subject (shape and albedo stay, so a held-out clip scores the avatar built from this one).
    Deterministic for equal inputs.
    """
    if poses not in ENROLLMENT_POSES:
        raise ValueError(f"poses must be one of {ENROLLMENT_POSES}, got {poses!r}")
    model = load_hand_model(side=side)
    height, width = image_size
    camera = dataclasses.replace(Camera.from_fov(width, height), assumed=False)
    if shape is None:
        shape = np.zeros(model.num_shape, dtype=np.float32)
        n = min(model.num_shape, len(ENROLLMENT_SHAPE))
        shape[:n] = ENROLLMENT_SHAPE[:n]
    shape_t = torch.as_tensor(np.asarray(shape), dtype=torch.float32).reshape(1, -1).expand(num_frames, -1)
    phase = float(np.random.default_rng(seed).uniform(0, 0.25))
    rot, angles = _enrollment_poses(model, num_frames, poses, phase)
    if side == "left":
        # The left model is the right one mirrored in x; mirroring the views too (x in the model,
        # x in the image) makes the left clip the mirror image of the right one, palm first.
        mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
        rot = mirror @ rot @ mirror
    pose = model.anatomy.to_pose(angles)

    with torch.no_grad():
        # The root rotation turns the hand about the root joint j0: a point p of the unrotated hand
        # lands at R (p - j0) + j0 + transl. Pick transl so the hand's bounding box is centred on
        # the optical axis at a depth where the largest extent over the clip fills the frame.
        rest = model(pose=pose, shape=shape_t)
        j0 = rest.joints[:, 0]
        turned = (rest.vertices - j0[:, None]) @ rot.transpose(1, 2)
        box_centre = 0.5 * (turned.amax(1) + turned.amin(1))
        extent = (turned.amax(1) - turned.amin(1))[:, :2].max()
        depth = float(camera.fx * extent / (FILL * min(height, width)))
        transl = torch.tensor([0.0, 0.0, depth]) - box_centre - j0
        orient = matrix_to_axis_angle(rot)
        out = model(global_orient=orient, pose=pose, shape=shape_t, transl=transl)

    centre = torch.tensor([0.0, 0.0, depth])
    if light_motion:
        # Around the hand on the camera's side: left to right once, up and down twice.
        t = 2 * math.pi * (torch.arange(num_frames, dtype=torch.float32) / num_frames + phase)
        direction = torch.stack([0.8 * torch.sin(t), -0.3 - 0.3 * torch.cos(2 * t), -torch.ones_like(t)], 1)
    else:
        direction = torch.tensor([[-0.5, -0.6, -1.0]]).expand(num_frames, 3)
    light_positions = centre + 0.4 * torch.nn.functional.normalize(direction, dim=1)

    backend = select_backend(device="cpu")
    mesh = RenderMesh.create(model.faces, model.uvs, model.faces_uv, backend)
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, image_size)
    albedo = tattoo_texture(512, tone, model) if albedo is None else albedo
    mip = material_mip(albedo)  # built once: the texture is the same in every frame
    background = _background(height, width, seed)
    frames, masks = [], []
    with torch.no_grad():
        for i in tqdm(range(num_frames), desc="rendering the enrollment clip", unit="frame", disable=not progress):
            shaded = render_shaded(out.vertices[i:i + 1], mesh, projection, image_size, Light(light_positions[i:i + 1]),
                                   mip=mip, ambient=ENROLLMENT_AMBIENT, background=background[None], backend=backend)
            frames.append(to_uint8(shaded.image[0]))
            masks.append(shaded.alpha[0, ..., 0].numpy() > 0.5)
    return EnrollmentClip(
        frames=np.stack(frames), masks=np.stack(masks), camera=camera, side=side,
        global_orient=orient.numpy(), pose=pose.numpy(), transl=transl.numpy(), shape=shape_t[0].numpy().copy(),
        vertices=out.vertices.numpy(), joints=out.keypoints.numpy(), keypoints_2d=camera.project(out.keypoints).numpy(),
        faces=model.faces.numpy().copy(), albedo=albedo.numpy(), light_positions=light_positions.numpy(),
        ambient=ENROLLMENT_AMBIENT, background=background.numpy())
