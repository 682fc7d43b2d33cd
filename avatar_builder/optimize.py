"""HARP's analysis-by-synthesis: the personalized hand (shape, per-vertex displacements along the
normals of a subdivided mesh, albedo and normal UV maps, per-frame light, shared ambient) and the
per-frame poses, optimized through the differentiable shaded renderer in three stages:

    geometry     silhouette + keypoints + regularizers     shape, displacements, poses
    joint        + photometric                              everything
    appearance   photometric + regularizers                 albedo, normal map, light

Mini-batches of views; per-frame parameters are separate tensors so Adam leaves the frames that
are not in a batch untouched (a shared tensor would keep drifting them on stale momentum).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harp_track import HandModel
from harp_track.avatar import Avatar
from harp_track.render import (Light, RenderMesh, open_rim_faces, render_shaded, select_backend, transform_points,
                               vertex_normals)

from .coarse import CoarseFit, hand_length
from .views import Views, reseeded_masks

log = logging.getLogger(__name__)

STAGES = ("geometry", "joint", "appearance")
POSE_STAGE = "pose"  # a finished avatar fitted to new frames: per-frame pose and light only


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (each term is a per-pixel or per-element mean; lengths in mm;
    `size` per squared percent of hand-length change)."""

    photometric: float = 1.0
    silhouette: float = 1.0
    keypoints: float = 1.0
    size: float = 0.1
    laplacian: float = 0.5
    displacement: float = 0.002
    shape_prior: float = 0.01
    pose_prior: float = 0.01
    albedo_smooth: float = 0.02
    # The normal map otherwise learns the shading it cannot explain (a shadow edge a little off)
    # as wrinkles that look wrong in other poses: on our synthetic subject these weights (30x
    # the first ones) gained 0.5 dB on novel views and poses alike.
    normal_smooth: float = 0.6
    normal_magnitude: float = 0.3


@dataclasses.dataclass(frozen=True)
class OptimizeSettings:
    """How often each view is optimized per stage (geometry, joint, appearance: a view's pose only
    moves when the view is in a batch, so the step count scales with the number of views; `steps`
    sets the counts directly instead), views per step, learning rates (Adam), loss weights and the
    render backend ("torch", or "nvdiffrast" on CUDA: `harp_track.render.select_backend`)."""

    view_updates: tuple[int, int, int] = (60, 80, 20)
    steps: tuple[int, int, int] | None = None
    batch: int = 8
    texture_size: int = 512
    seed: int = 0
    lr_shape: float = 0.01
    lr_displacement: float = 1e-4  # metres
    lr_rotation: float = 0.004  # radians
    lr_transl: float = 5e-4  # metres
    lr_albedo: float = 0.02
    lr_normal: float = 0.02
    lr_light: float = 0.02
    # A texel no view shows more frontally than this (cosine between its normal and the ray to
    # the camera) is filled from its neighbours: at grazing angles a pixel spans many texels and
    # half of it is often background or the mask's error, which Adam's normalized steps would
    # bake into those texels at full strength.
    texel_min_cosine: float = 0.3
    # GrabCut's masks made again after the geometry stage, seeded by the avatar's silhouettes
    # instead of the coarse mesh's: on our synthetic subject's novel views (15 frames, paired
    # builds) 25.81 -> 26.23 dB in the mask, where the true masks would give 26.44.
    reseed_masks: bool = True
    weights: LossWeights = LossWeights()
    render_backend: str = "torch"


@dataclasses.dataclass
class Solution:
    """What the optimization found. shape (K,); displacement (V,) metres along the rest normals of
    the subdivided mesh; albedo and normal_map (S, S, 3) in [0, 1]; texel_seen (S, S) bool, the
    texels some view showed frontally enough (`OptimizeSettings.texel_min_cosine`);
    ambient; light_positions (N, 3); global_orient (N, 3), pose (N, P, 3), transl (N, 3);
    history: per-step loss terms."""

    shape: np.ndarray
    displacement: np.ndarray
    offsets: np.ndarray
    albedo: np.ndarray
    normal_map: np.ndarray
    texel_seen: np.ndarray
    ambient: float
    light_positions: np.ndarray
    global_orient: np.ndarray
    pose: np.ndarray
    transl: np.ndarray
    history: list[dict[str, float]]


class AvatarProblem(torch.nn.Module):
    """All the parameters and the loss. `model` is the side's subdivided base model."""

    def __init__(self, model: HandModel, fit: CoarseFit, views: Views, settings: OptimizeSettings,
                 avatar: Avatar | None = None, device: str | torch.device = "cpu"):
        """With `avatar` (whose hand must be `model`'s), its albedo, normal map and ambient are the
        starting appearance, for fitting poses to new frames with `optimize(..., stages=("pose",))`.
        device: where the parameters, the views and the render live (the problem is built on the
        CPU and moved there)."""
        super().__init__()
        self.settings = settings
        n, size = len(fit.frames), settings.texture_size
        shape0 = torch.from_numpy(fit.shape)[None].float()
        self.register_buffer("shape0", shape0)
        self.register_buffer("pose0", torch.from_numpy(fit.pose).float())
        with torch.no_grad():
            rest_hand = model(shape=shape0)
            rest = rest_hand.vertices
            # The coarse fit's hand length (a ruler's, or MediaPipe's estimate) is all that fixes
            # the size: a smaller hand nearer the camera draws the same pictures.
            self.register_buffer("length0", hand_length(rest_hand.keypoints[0]))
            self.register_buffer("rest_normals", vertex_normals(rest, model.faces)[0])
        self.register_buffer("laplacian", _uniform_laplacian(model.faces, model.num_vertices))
        # Indexed by the rasterizer's triangle id (0: no triangle). Past the model's cut at the
        # wrist the frames show the forearm or the background, never skin that belongs there: the
        # faces at the cut take no colour from the frames, and their texels are filled from the
        # skin around them (measured on the avatar benchmark's subject: the cut's texels had
        # taken the background's teal).
        rim = open_rim_faces(model.faces)
        self.register_buffer("open_rim", torch.cat([rim.new_zeros(1), rim]), persistent=False)
        self.register_buffer("intrinsics", torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in views.cameras]))

        self.shape = torch.nn.Parameter(shape0.clone())
        self.displacement = torch.nn.Parameter(torch.zeros(model.num_vertices))
        per_frame = lambda values: torch.nn.ParameterList(torch.nn.Parameter(v.clone()) for v in values)  # noqa: E731
        self.global_orient = per_frame(torch.from_numpy(fit.global_orient).float())
        self.pose = per_frame(torch.from_numpy(fit.pose).float())
        self.transl = per_frame(torch.from_numpy(fit.transl).float())
        # A light near the camera, a little above: the usual phone or webcam set-up.
        self.light = per_frame(torch.tensor([[0.0, -0.15, 0.0]]).expand(n, 3))
        self.intensity = per_frame(torch.ones(n, 1))
        self.ambient_logit = torch.nn.Parameter(torch.tensor(-0.4))
        masked = views.images[views.masks > 0.5]
        colour = masked.median(0).values if len(masked) else torch.full((3,), 0.6)
        self.albedo = torch.nn.Parameter((colour / 0.7).clamp(0.05, 1.0).expand(1, size, size, 3).contiguous())
        self.normal_xy = torch.nn.Parameter(torch.zeros(1, size, size, 2))
        if avatar is not None:
            with torch.no_grad():
                self.albedo.data = torch.from_numpy(avatar.albedo)[None].float().contiguous()
                n = torch.from_numpy(avatar.normal_map)[None].float() * 2 - 1
                self.normal_xy.data = (n[..., :2] / n[..., 2:].clamp(min=0.2)).contiguous()
                self.ambient_logit.fill_(float(np.log(avatar.ambient / (1 - avatar.ambient))))
                for light in self.light:
                    light.copy_(torch.from_numpy(avatar.light_position))
        self.register_buffer("texel_seen", torch.zeros(size, size, dtype=torch.bool))
        # A model of its own on another device: moving the caller's would move it under them.
        same = model.faces.device.type == torch.device(device).type
        self.model = model if same else HandModel(model.data).to(device)
        self.views = views.to(device)
        self.to(device)
        self.backend = select_backend(settings.render_backend, device)
        self.mesh = RenderMesh.create(self.model.faces, self.model.uvs, self.model.faces_uv, self.backend)

    # ---- the model -------------------------------------------------------------------------
    def offsets(self) -> torch.Tensor:
        """(V, 3) metres: the displacements along the rest normals."""
        return self.displacement[:, None] * self.rest_normals

    def normal_map(self) -> torch.Tensor:
        """(1, S, S, 3) tangent-space normals encoded in [0, 1]."""
        n = F.normalize(torch.cat([self.normal_xy, torch.ones_like(self.normal_xy[..., :1])], -1), dim=-1)
        return n * 0.5 + 0.5

    @property
    def ambient(self) -> torch.Tensor:
        return torch.sigmoid(self.ambient_logit)

    def posed(self, idx: list[int]):
        stack = lambda params: torch.stack([params[i] for i in idx])  # noqa: E731
        return self.model(global_orient=stack(self.global_orient), pose=stack(self.pose),
                          shape=self.shape.expand(len(idx), -1), transl=stack(self.transl),
                          vertex_offsets=self.offsets()[None])

    def render(self, idx: list[int], vertices: torch.Tensor, background: torch.Tensor | None):
        light = Light(torch.stack([self.light[i] for i in idx]),
                      intensity=torch.stack([self.intensity[i] for i in idx])[:, 0])
        return render_shaded(vertices, self.mesh, self.views.projections[idx], (self.views.size,) * 2, light,
                             albedo=self.albedo.clamp(0, 1), normal_map=self.normal_map(), ambient=self.ambient,
                             background=background, backend=self.backend)

    def silhouettes(self, batch: int = 8) -> np.ndarray:
        """(N, S, S) bool: where each view's render at its current pose covers the crop."""
        n, covered = len(self.views.cameras), []
        with torch.no_grad():
            for start in range(0, n, batch):
                idx = list(range(start, min(start + batch, n)))
                covered.append(self.render(idx, self.posed(idx).vertices, None).alpha[..., 0] > 0.5)
        return torch.cat(covered).cpu().numpy()

    # ---- the loss --------------------------------------------------------------------------
    def loss(self, idx: list[int], stage: str) -> tuple[torch.Tensor, dict[str, float]]:
        w, v = self.settings.weights, self.views
        out = self.posed(idx)
        images, masks, valid = v.images[idx], v.masks[idx], v.valid[idx]
        shaded = self.render(idx, out.vertices, images)
        terms: dict[str, torch.Tensor] = {}
        if stage != "appearance":
            terms["silhouette"] = w.silhouette * _multiscale_silhouette(shaded.alpha[..., 0], masks, valid)
            k = self.intrinsics[idx]
            uv = out.keypoints[..., :2] / out.keypoints[..., 2:].clamp(min=1e-3) * k[:, None, :2] + k[:, None, 2:]
            err = (uv - v.landmarks[idx]) / v.size
            terms["keypoints"] = w.keypoints * _charbonnier(err.norm(dim=-1), 0.01).mean()
            terms["pose_prior"] = w.pose_prior * (torch.stack([self.pose[i] for i in idx]) - self.pose0[idx]).square().mean()
        if stage in ("geometry", "joint"):
            # At rest: regressed keypoints' path length changes a little with the pose.
            rest = self.model(shape=self.shape, vertex_offsets=self.offsets()[None])
            change = 100.0 * (hand_length(rest.keypoints[0]) / self.length0 - 1.0)
            terms["size"] = w.size * change.square()
            d_mm = 1000.0 * self.offsets()
            terms["laplacian"] = w.laplacian * (self.laplacian @ d_mm).square().sum(-1).mean()
            terms["displacement"] = w.displacement * d_mm.square().sum(-1).mean()
            terms["shape_prior"] = w.shape_prior * (self.shape - self.shape0).square().mean()
        if stage != "geometry":
            interior = v.interior[idx] * ~self.open_rim[shaded.rast[..., 3].long()]
            error = _charbonnier(shaded.image - images, 0.01).sum(-1) * interior
            terms["photometric"] = w.photometric * error.sum() / interior.sum().clamp(min=1.0)
            a = self.albedo
            terms["albedo_smooth"] = w.albedo_smooth * ((a[:, 1:] - a[:, :-1]).abs().mean() + (a[:, :, 1:] - a[:, :, :-1]).abs().mean())
            nxy = self.normal_xy
            terms["normal_smooth"] = w.normal_smooth * ((nxy[:, 1:] - nxy[:, :-1]).square().mean()
                                                        + (nxy[:, :, 1:] - nxy[:, :, :-1]).square().mean())
            terms["normal_magnitude"] = w.normal_magnitude * nxy.square().mean()
        total = sum(terms.values())
        return total, {k: float(t.detach()) for k, t in terms.items()}

    def groups(self, stage: str) -> list[dict]:
        s = self.settings
        geometry = [
            dict(params=[self.shape], lr=s.lr_shape),
            dict(params=[self.displacement], lr=s.lr_displacement),
            dict(params=list(self.global_orient) + list(self.pose), lr=s.lr_rotation),
            dict(params=list(self.transl), lr=s.lr_transl),
        ]
        appearance = [
            dict(params=[self.albedo], lr=s.lr_albedo),
            dict(params=[self.normal_xy], lr=s.lr_normal),
            dict(params=list(self.light) + list(self.intensity) + [self.ambient_logit], lr=s.lr_light),
        ]
        pose = [geometry[2], geometry[3], dict(params=list(self.light) + list(self.intensity), lr=s.lr_light)]
        return {"geometry": geometry, "joint": geometry + appearance, "appearance": appearance, POSE_STAGE: pose}[stage]

    def texel_view_cosine(self, batch: int = 8) -> torch.Tensor:
        """(S, S) for each albedo texel, its most frontal view: the largest cosine between the
        surface normal and the ray to the camera over the views' hand-interior pixels showing it
        (0 where none does). Nearest texel per pixel, then a 3x3 maximum to close the gaps
        between pixels where the texture is magnified."""
        size, v = self.albedo.shape[1], self.views
        best = torch.zeros(size * size, device=self.albedo.device)
        faces = self.mesh.faces
        with torch.no_grad():
            for start in range(0, len(v.cameras), batch):
                idx = list(range(start, min(start + batch, len(v.cameras))))
                vertices = self.posed(idx).vertices
                rast, _ = self.backend.rasterize(transform_points(vertices, v.projections[idx]), faces, (v.size,) * 2,
                                                 grad_db=False)
                geo, _ = self.backend.interpolate(torch.cat([vertices, vertex_normals(vertices, faces)], -1), rast, faces)
                uvs = self.mesh.uvs.to(vertices).expand(len(idx), -1, -1)  # as render_shaded samples them
                uv, _ = self.backend.interpolate(uvs, rast, self.mesh.faces_uv)
                cosine = -(F.normalize(geo[..., 3:], dim=-1) * F.normalize(geo[..., :3], dim=-1)).sum(-1)
                keep = (rast[..., 3] > 0) & (v.interior[idx] > 0.5) & ~self.open_rim[rast[..., 3].long()]
                texel = (uv[..., 1] * size).long().clamp(0, size - 1) * size + (uv[..., 0] * size).long().clamp(0, size - 1)
                best.scatter_reduce_(0, texel[keep], cosine[keep].clamp(min=0), reduce="amax")
        return F.max_pool2d(best.view(1, 1, size, size), 3, stride=1, padding=1)[0, 0]

    def solution(self, history: list[dict[str, float]]) -> Solution:
        seen = self.texel_seen & (self.texel_view_cosine() >= self.settings.texel_min_cosine)
        with torch.no_grad():
            stack = lambda params: torch.stack(list(params)).cpu().numpy()  # noqa: E731
            numpy = lambda t: t.cpu().numpy().copy()  # noqa: E731
            return Solution(
                shape=numpy(self.shape[0]), displacement=numpy(self.displacement),
                offsets=numpy(self.offsets()), albedo=numpy(self.albedo[0].clamp(0, 1)),
                normal_map=numpy(self.normal_map()[0]), texel_seen=numpy(seen),
                ambient=float(self.ambient), light_positions=stack(self.light),
                global_orient=stack(self.global_orient), pose=stack(self.pose), transl=stack(self.transl),
                history=list(history))


def _multiscale_silhouette(alpha: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Squared silhouette difference at full, 1/2, 1/4 and 1/8 resolution, summed. Silhouette
    gradients only exist at the render's edges; comparing averaged blocks lets an edge feel a
    part of the mask a few pixels away, so a finger that misses its mask is pulled onto it."""
    a, m, v = alpha[:, None], mask[:, None] * valid[:, None], valid[:, None]
    total = alpha.new_zeros(())
    for level in range(levels):
        if level:
            a, m, v = (F.avg_pool2d(x, 2) for x in (a, m, v))
        total = total + ((a - m).square() * v).mean()
    return total


def _charbonnier(x: torch.Tensor, eps: float) -> torch.Tensor:
    """A robust L1: sqrt(x² + eps²) - eps."""
    return (x.square() + eps * eps).sqrt() - eps


def _uniform_laplacian(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """(V, V) sparse I - D⁻¹A over the mesh edges."""
    f = faces.long()
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    degree = torch.bincount(edges[:, 0], minlength=num_vertices).float().clamp(min=1)
    values = -1.0 / degree[edges[:, 0]]
    index = torch.cat([edges.T, torch.arange(num_vertices).expand(2, -1)], 1)
    return torch.sparse_coo_tensor(index, torch.cat([values, torch.ones(num_vertices)]),
                                   (num_vertices, num_vertices), check_invariants=True).coalesce()


def optimize(problem: AvatarProblem, checkpoint: Path | None = None, progress: bool = True,
             on_step: Callable[[str, int, dict], None] | None = None,
             stages: tuple[str, ...] = STAGES, steps: tuple[int, ...] | None = None) -> Solution:
    """Run the stages (HARP's three by default; `steps` per stage defaults to the settings'). With
    `checkpoint`, the state is saved there every 25 steps and on Ctrl-C, and a run finds its place
    again from it (same seed, same result as uninterrupted)."""
    s = problem.settings
    views = len(problem.views.cameras)
    steps_per_stage = steps or s.steps or tuple(-(-views * u // s.batch) for u in s.view_updates)
    state = {"stage": 0, "step": 0, "history": []}
    optimizer = None
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False, map_location=problem.shape.device)
        problem.load_state_dict(saved["problem"])
        state = saved["state"]
        if "masks" in state:  # (checkpoints of earlier versions lack them)
            device = problem.views.masks.device
            problem.views = dataclasses.replace(problem.views, masks=state.pop("masks").float().to(device),
                                                interior=state.pop("interior").float().to(device))
        log.info("resuming from %s at stage %d step %d", checkpoint, state["stage"], state["step"])
    for stage_index in range(state["stage"], len(stages)):
        stage, steps = stages[stage_index], steps_per_stage[stage_index]
        optimizer = torch.optim.Adam(problem.groups(stage))
        # Cosine decay to a tenth: large steps find the basin, small ones settle in it.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: 0.1 + 0.45 * (1 + np.cos(np.pi * min(k / max(steps, 1), 1.0))))
        if state["stage"] == stage_index and "optimizer" in state:
            optimizer.load_state_dict(state.pop("optimizer"))
            schedule.load_state_dict(state.pop("schedule"))
        generator = np.random.default_rng([s.seed, stage_index])
        order = [generator.choice(len(problem.views.cameras), size=min(s.batch, len(problem.views.cameras)),
                                  replace=False) for _ in range(steps)]
        done = state["step"] if state["stage"] == stage_index else 0  # steps whose update is complete
        bar = tqdm(range(done, steps), desc=f"avatar: {stage}", unit="step", disable=not progress)
        try:
            for step in bar:
                optimizer.zero_grad(set_to_none=True)
                total, terms = problem.loss(order[step].tolist(), stage)
                total.backward()
                if problem.albedo.grad is not None:
                    problem.texel_seen |= problem.albedo.grad[0].abs().sum(-1) > 0
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    problem.displacement.clamp_(-0.005, 0.005)
                    for light in problem.light:  # keep point lights off the hand and in front of the camera
                        light[2].clamp_(max=0.3)
                terms["stage"] = stage_index
                state["history"].append(terms)
                done = step + 1
                bar.set_postfix(loss=f"{float(total.detach()):.4f}")
                if on_step is not None:
                    on_step(stage, step, terms)
                if checkpoint is not None and (step + 1) % 25 == 0:
                    _save(checkpoint, problem, (optimizer, schedule), stage_index, step + 1, state["history"])
        except KeyboardInterrupt:
            if checkpoint is not None:
                _save(checkpoint, problem, (optimizer, schedule), stage_index, done, state["history"])
                log.warning("interrupted: progress saved to %s; run again to resume", checkpoint)
            raise
        state = {"stage": stage_index + 1, "step": 0, "history": state["history"]}
        if stage == "geometry" and s.reseed_masks:
            problem.views = reseeded_masks(problem.views, problem.silhouettes())
        if checkpoint is not None:
            _save(checkpoint, problem, None, stage_index + 1, 0, state["history"])
    return problem.solution(state["history"])


def _save(path: Path, problem: AvatarProblem, optimizers: tuple | None, stage: int, step: int, history: list) -> None:
    # The masks too: after the geometry stage they are no longer the ones `crop_views` makes.
    state = {"stage": stage, "step": step, "history": history,
             "masks": problem.views.masks.cpu() > 0.5, "interior": problem.views.interior.cpu() > 0.5}
    if optimizers is not None:
        state["optimizer"], state["schedule"] = (o.state_dict() for o in optimizers)
    tmp = path.with_suffix(".tmp")
    torch.save({"problem": problem.state_dict(), "state": state}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a broken checkpoint
