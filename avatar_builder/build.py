"""`build_avatar`: a video (or a folder of frames) of one hand in, a personalized avatar out."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from harp_track import Camera, HandModel, load_hand_model
from harp_track.avatar import Avatar
from harp_track.device import resolve_device
from harp_track.hand.derive import personalized, subdivided

from .coarse import MIN_FRAMES, coarse_fit, palm_directions, select_views
from .errors import EnrollmentError
from .frames import drop_blurred_and_duplicates, read_frames
from .optimize import AvatarProblem, OptimizeSettings, Solution, optimize
from .report import write_report
from .texture_fill import fill_texture, uv_island_mask
from .views import crop_views

log = logging.getLogger(__name__)


HAND_LENGTH_RANGE = (0.08, 0.30)  # metres: a small child's hand to well past the largest adult's


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """max_views: frames used (picked to cover many views); crop_size: pixels a side of the crop
    around the hand each view is optimized at; subdivisions: of the base mesh (each x4 faces);
    side: "left" | "right" or None to take MediaPipe's majority label; mirrored: the video is a
    selfie view (flips MediaPipe's handedness); hand_length: the user's hand length in metres,
    wrist crease to the tip of the middle finger (a ruler fixes the avatar's true size; a single
    camera cannot tell a big far hand from a small near one), None takes MediaPipe's estimate;
    landmarks: the landmark detector of the coarse fit ("mediapipe", or "onnx": the same models on
    ONNX Runtime); optimize: the staged optimization's settings."""

    max_views: int = 50
    crop_size: int = 256
    subdivisions: int = 1
    side: str | None = None
    mirrored: bool = False
    hand_length: float | None = None
    landmarks: str = "mediapipe"
    optimize: OptimizeSettings = OptimizeSettings()

    def __post_init__(self) -> None:
        # A length in centimetres, or a sign slip, would silently build a giant or a tiny hand.
        low, high = HAND_LENGTH_RANGE
        if self.hand_length is not None and not low <= self.hand_length <= high:
            raise ValueError(f"hand_length is in metres, wrist crease to the tip of the middle finger (e.g. 0.19); "
                             f"{self.hand_length:g} is outside {low:g}-{high:g}")


def build_avatar(source: str | Path, out_dir: str | Path, camera: Camera | Sequence[Camera] | None = None,
                 device: str = "auto", masks: str | Path | None = None, settings: BuildSettings | None = None,
                 hand_model: HandModel | None = None, progress: bool = True, resume: bool = True) -> Avatar:
    """Reconstruct the hand in `source` (a video file or a folder of images) and save the avatar
    to `out_dir` (see `harp_track.Avatar`), with `report.png` and `build.json` beside it.

    camera: one Camera for every frame or one per frame (cropped input needs that); None assumes
    a 60-degree horizontal field of view. masks: a folder of hand masks named as the frames.
    device: where the optimization runs, "cpu", "cuda" or "auto" (CUDA when torch sees it).
    hand_model: the right-hand base model (default: the open model). With
    `resume`, an interrupted build continues from `out_dir/checkpoint.pt`. Raises EnrollmentError
    with what to record instead when the clip has too few usable views.
    """
    settings = settings or BuildSettings()
    out_dir = Path(out_dir)
    device = resolve_device(device)
    started = time.perf_counter()
    torch.manual_seed(settings.optimize.seed)

    frames = drop_blurred_and_duplicates(read_frames(source, camera, masks))
    if len(frames) < MIN_FRAMES:
        raise EnrollmentError(f"{source}: only {len(frames)} sharp, distinct frames (need {MIN_FRAMES}); record "
                              "5-15 s of your hand turning slowly in good light")
    base = hand_model or load_hand_model()
    fit = coarse_fit(frames, base, side=settings.side, mirrored=settings.mirrored, length=settings.hand_length,
                     landmarks=settings.landmarks, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the input is usable: a refused clip leaves nothing behind
    model = HandModel(subdivided(base.data, settings.subdivisions))
    if fit.side == "left":
        model = model.mirrored()
    fit = fit.subset(select_views(palm_directions(fit, model), settings.max_views))
    log.info("building from %d views of a %s hand on %s", len(fit.frames), fit.side, device)
    views = crop_views(fit, model, settings.crop_size)

    checkpoint = out_dir / "checkpoint.pt"
    if not resume and checkpoint.exists():
        checkpoint.unlink()
    problem = AvatarProblem(model, fit, views, settings.optimize, device=device)
    solution = optimize(problem, checkpoint=checkpoint, progress=progress)

    avatar = _assemble(model, base, solution)
    avatar.save(out_dir)
    write_report(out_dir / "report.png", problem, solution)
    seconds = time.perf_counter() - started
    info = dict(source=str(source), frames_read=len(frames), views=len(fit.frames),
                view_frame_indices=[int(i) for i in views.frame_index], side=fit.side, seconds=round(seconds, 1),
                settings=json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
                final_losses=solution.history[-1] if solution.history else {})
    (out_dir / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    checkpoint.unlink(missing_ok=True)
    log.info("avatar written to %s in %.0f s", out_dir, seconds)
    return avatar


def _assemble(model: HandModel, base: HandModel, solution: Solution) -> Avatar:
    """The avatar asset from the solution: shape and displacements baked into the mesh, and the
    texels no view saw filled in from their neighbours (`texture_fill`)."""
    hand = personalized(model.data, solution.shape, solution.offsets, name=f"{base.name}-avatar")
    island = uv_island_mask(hand.uvs, hand.faces_uv, solution.albedo.shape[0])
    albedo = fill_texture(solution.albedo, solution.texel_seen, island)
    normal = fill_texture(solution.normal_map, solution.texel_seen, island)
    return Avatar(hand=hand, albedo=albedo, normal_map=normal, ambient=solution.ambient,
                  light_position=np.median(solution.light_positions, axis=0).astype(np.float32),
                  shape=solution.shape.astype(np.float32), base_model=base.name)
