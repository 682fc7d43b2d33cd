"""The avatar asset: a personalized hand model (shape and displacements baked into a subdivided
mesh, posed by the same skeleton as the generic model), albedo and normal UV maps and the light
it was captured under.

On disk an avatar is a folder:

    avatar.json      version, side, base model, shape coefficients, ambient ratio, light
    hand_model.npz   the personalized `HandModelData` (no shape parameters; pose as the base model)
    albedo.png       albedo UV map, 8-bit RGB (the values the shading multiplies), v = 0 at the top row
    normal.png       tangent-space normal UV map, (n + 1) / 2 in 8-bit RGB
    avatar.glb       glTF 2.0 with skin and textures (three.js, Unity, Blender)
    avatar.obj/.mtl  the rest mesh with UVs and the two maps
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ..camera import Camera
from ..hand import HandModel, HandModelData, HandModelError
from ..hand.data import other_side
from ..render import Light, RenderBackend, RenderMesh, ShadedRender, ShadowSettings, material_mip, projection_from_intrinsics, render_shaded, select_backend
from ..mesh_io import save_textured_obj
from ..result import TrackedHand
from .gltf import export_glb

AVATAR_VERSION = 1
_FILES = ("avatar.json", "hand_model.npz", "albedo.png", "normal.png")


class AvatarError(ValueError):
    """An avatar folder that is missing, incomplete, corrupt or of another version."""


@dataclasses.dataclass
class Avatar:
    """A personalized hand.

    hand: the personalized model (`num_shape` 0: the user's shape and displacements are baked in);
    its pose parameters mean the same as the base model's. albedo (S, S, 3) float32 in [0, 1];
    normal_map (S, S, 3) float32 tangent-space normals encoded as (n + 1) / 2. ambient: the
    ambient ratio of the shading; light_position (3,) metres in camera space of a typical capture
    frame (a point light). shape (K,): the base model's shape coefficients this avatar was built
    with; base_model: that model's name.
    """

    hand: HandModelData
    albedo: np.ndarray
    normal_map: np.ndarray
    ambient: float = 0.4
    light_position: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, np.float32))
    shape: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    base_model: str = ""
    version: int = AVATAR_VERSION
    # Derived once per avatar (model, mirrored twin, render mesh, texture pyramid): `render` is
    # called per frame. `dataclasses.replace` starts a new cache.
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def side(self) -> str:
        return self.hand.side

    def hand_model(self, device: str | torch.device = "cpu") -> HandModel:
        """The avatar's own `HandModel` (pose it with the base model's pose parameters)."""
        key = ("model", str(device))
        if key not in self._cache:
            self._cache[key] = HandModel(self.hand).to(device)
        return self._cache[key]

    def mirrored(self) -> "Avatar":
        """The same person's other hand: mirrored mesh and skeleton. Both maps are shared as they
        are: the mesh keeps its UVs, and the tangent frame mirrors with the re-wound faces (its
        handedness flips), which mirrors the normal map's detail."""
        light = self.light_position * np.array([-1.0, 1.0, 1.0], np.float32)
        return dataclasses.replace(self, hand=self.hand.mirrored(), light_position=light)

    def for_side(self, side: str) -> "Avatar":
        """This avatar, mirrored when `side` is the other hand."""
        if side == self.side:
            return self
        other_side(side)  # a side that is neither names itself here, not as a silent mirror image
        if "mirrored" not in self._cache:
            self._cache["mirrored"] = self.mirrored()
        return self._cache["mirrored"]

    # ---- rendering ------------------------------------------------------------------------
    def render(self, hand: TrackedHand, camera: Camera, image_size: Sequence[int],
               light_position: np.ndarray | None = None, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The avatar posed as a tracked hand: rgb (H, W, 3) float32 in [0, 1] over black and
        alpha (H, W) float32. The hand's pose and translation are used (its shape is the
        avatar's own); the light defaults to the capture light. mirrored: the tracker's own
        setting. A selfie tracker (`Tracker(mirrored=True)`) reports each hand as the user sees
        it but fits it with the other side's model (its image is that hand's mirror image), and
        its pose parameters are that model's."""
        avatar = self.for_side(other_side(hand.handedness) if mirrored else hand.handedness)
        model = avatar.hand_model()
        with torch.no_grad():
            verts = model(global_orient=torch.as_tensor(hand.global_orient, dtype=torch.float32)[None],
                          pose=torch.as_tensor(hand.pose, dtype=torch.float32)[None],
                          transl=torch.as_tensor(hand.transl, dtype=torch.float32)[None]).vertices
            light = avatar.light_position if light_position is None else np.asarray(light_position, np.float32)
            rgb, alpha = avatar.render_vertices(verts, camera, image_size, torch.as_tensor(light)[None])
        return rgb[0].numpy(), alpha[0].numpy()

    def render_vertices(self, vertices: torch.Tensor, camera: Camera, image_size: Sequence[int],
                        light_position: torch.Tensor, intensity: float | torch.Tensor = 1.0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Render posed avatar vertices (B, V, 3) metres camera space with a point light (B, 3)
        of `intensity` (scalar or (B,)): (B, H, W, 3) rgb over black and (B, H, W) alpha."""
        out = self.shade(vertices, camera, image_size, light_position, intensity)
        return out.image, out.alpha[..., 0]

    def shade(self, vertices: torch.Tensor, camera: Camera, image_size: Sequence[int],
              light_position: torch.Tensor, intensity: float | torch.Tensor = 1.0,
              shadow: ShadowSettings | None = ShadowSettings(), backend: RenderBackend | None = None
              ) -> ShadedRender:
        """As `render_vertices`, with everything `render_shaded` returns (the rasterizer output
        gives each pixel's triangle and barycentrics); shadow=None skips self-shadowing. backend:
        a `select_backend` result on the vertices' device (default: the torch backend)."""
        key = ("render", backend.name if backend else "torch", str(vertices.device), vertices.dtype)
        if key not in self._cache:
            backend = backend or select_backend(device=vertices.device)
            mesh = RenderMesh.create(torch.as_tensor(self.hand.faces), torch.as_tensor(self.hand.uvs),
                                     torch.as_tensor(self.hand.faces_uv), backend)
            mip = material_mip(torch.as_tensor(self.albedo)[None].to(vertices),
                               torch.as_tensor(self.normal_map)[None].to(vertices))
            self._cache[key] = backend, mesh, mip
        backend, mesh, mip = self._cache[key]
        projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, image_size,
                                                dtype=vertices.dtype, device=vertices.device)
        return render_shaded(vertices, mesh, projection, image_size, Light(light_position.to(vertices), intensity=intensity),
                             mip=mip, ambient=self.ambient, shadow=shadow, backend=backend)

    # ---- files ------------------------------------------------------------------------------
    def save(self, folder: str | Path, export: bool = True) -> Path:
        """Write the avatar folder (see the module docstring); `export` also writes avatar.glb and
        avatar.obj/.mtl. Returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.hand.save(folder / "hand_model.npz")
        _write_png(folder / "albedo.png", self.albedo)
        _write_png(folder / "normal.png", self.normal_map)
        meta = dict(format="harp_track.avatar", version=self.version, side=self.side, base_model=self.base_model,
                    shape=[float(s) for s in self.shape], ambient=float(self.ambient),
                    light_position=[float(x) for x in self.light_position],
                    texture_size=int(self.albedo.shape[0]), vertices=self.hand.num_vertices)
        (folder / "avatar.json").write_text(json.dumps(meta, indent=2) + "\n")
        if export:
            self.export(folder)
        return folder

    def export(self, folder: str | Path) -> dict[str, Path]:
        """Write avatar.glb (skinned, textured glTF 2.0) and avatar.obj/.mtl (rest mesh) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        albedo, normal = _to_uint8(self.albedo), _to_uint8(self.normal_map)
        glb = export_glb(folder / "avatar.glb", self.hand, albedo, normal, name="hand")
        obj = save_textured_obj(folder / "avatar.obj", self.hand.vertices, self.hand.faces, self.hand.uvs,
                                self.hand.faces_uv, albedo, normal)
        return {"glb": glb, "obj": obj}

    @classmethod
    def load(cls, folder: str | Path) -> "Avatar":
        """Read an avatar folder written by `save`; refuses a missing, incomplete, corrupt or
        foreign one with an `AvatarError` that says what is wrong."""
        folder = Path(folder)
        if not folder.is_dir():
            raise AvatarError(f"avatar folder not found: {folder}")
        missing = [name for name in _FILES if not (folder / name).is_file()]
        if missing:
            raise AvatarError(f"{folder} is not a complete avatar: missing {', '.join(missing)}")
        try:
            meta = json.loads((folder / "avatar.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AvatarError(f"{folder / 'avatar.json'} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != "harp_track.avatar":
            raise AvatarError(f"{folder / 'avatar.json'} is not a harp_track avatar description")
        if meta.get("version") != AVATAR_VERSION:
            raise AvatarError(f"{folder}: avatar version {meta.get('version')}, this SDK reads {AVATAR_VERSION}")
        try:
            hand = HandModelData.load(folder / "hand_model.npz")
        except HandModelError as exc:
            raise AvatarError(str(exc)) from None
        lacking = [key for key in _META_KEYS if key not in meta]
        if lacking:
            raise AvatarError(f"{folder / 'avatar.json'} lacks {', '.join(lacking)}")
        try:
            avatar = cls(hand=hand, albedo=_read_png(folder / "albedo.png"), normal_map=_read_png(folder / "normal.png"),
                         ambient=float(meta["ambient"]), light_position=np.asarray(meta["light_position"], np.float32),
                         shape=np.asarray(meta["shape"], np.float32), base_model=str(meta["base_model"]),
                         version=int(meta["version"]))
        except (TypeError, ValueError) as exc:
            raise AvatarError(f"{folder}: {exc}") from None
        # The description must describe these files (a mix of two avatars' files would load otherwise).
        for key, found in (("side", avatar.side), ("vertices", hand.num_vertices),
                           ("texture_size", avatar.albedo.shape[0])):
            if meta[key] != found:
                raise AvatarError(f"{folder}: avatar.json says {key} {meta[key]!r}, the files hold {found!r}")
        return avatar


_META_KEYS = ("side", "vertices", "texture_size", "ambient", "light_position", "shape", "base_model")


def _validate(a: Avatar) -> None:
    if a.hand.num_shape != 0:
        raise AvatarError("an avatar's hand model has its shape baked in (num_shape must be 0)")
    for name in ("albedo", "normal_map"):
        tex = getattr(a, name)
        if not isinstance(tex, np.ndarray) or tex.ndim != 3 or tex.shape[2] != 3 or tex.shape[0] < 2 \
                or tex.shape[0] != tex.shape[1]:
            raise AvatarError(f"{name} must be an (S, S, 3) array, got {getattr(tex, 'shape', type(tex).__name__)}")
        if not np.isfinite(tex).all() or tex.min() < 0 or tex.max() > 1:
            raise AvatarError(f"{name} must hold finite values in [0, 1]")
    if a.albedo.shape != a.normal_map.shape:
        raise AvatarError(f"albedo {a.albedo.shape} and normal_map {a.normal_map.shape} differ in size")
    if not a.hand.uvs.size:
        raise AvatarError("an avatar's hand model needs texture coordinates")
    if not (0.0 <= a.ambient <= 1.0):
        raise AvatarError(f"ambient must be in [0, 1], got {a.ambient}")
    if np.shape(a.light_position) != (3,) or not np.isfinite(a.light_position).all():
        raise AvatarError("light_position must be 3 finite numbers (metres)")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(_to_uint8(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AvatarError(f"{path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
