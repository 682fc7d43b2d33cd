"""The staged avatar optimization on a small synthetic subject: the geometry stage fits the
silhouettes, GrabCut's masks are seeded again after it, and an interrupted run resumes to the
same result as an uninterrupted one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from avatar_builder.coarse import hand_length
from avatar_builder.optimize import AvatarProblem, OptimizeSettings, optimize
from avatar_builder.views import crop_views

from .subject import N, coarse_from

SETTINGS = OptimizeSettings(batch=2, texture_size=64)
STAGES = ("geometry", "joint", "appearance")
STEPS = (6, 6, 6)
ALL = list(range(N))


@pytest.fixture(scope="module")
def views(clip, model):
    return crop_views(coarse_from(clip), model, 64)


def silhouette_iou(problem):
    """(N,) IoU of the problem's rendered silhouettes with the views' masks."""
    with torch.no_grad():
        alpha = problem.render(ALL, problem.posed(ALL).vertices, None).alpha[..., 0] > 0.5
    masks = problem.views.masks > 0.5
    return ((alpha & masks).sum((1, 2)).float() / (alpha | masks).sum((1, 2)).float()).numpy()


def full_loss(problem, stage):
    with torch.no_grad():
        return float(problem.loss(ALL, stage)[0])


def parameters(problem):
    return {name: p.detach().clone() for name, p in problem.named_parameters()}


# ---------------------------------------------------------------- the geometry stage

@pytest.fixture(scope="module")
def geometry_run(clip, model, views):
    """15 geometry steps from poses turned by 0.1 rad about each axis-angle component."""
    problem = AvatarProblem(model, coarse_from(clip, orient_offset=0.1), views, SETTINGS)
    before = dict(loss=full_loss(problem, "geometry"), iou=silhouette_iou(problem))
    solution = optimize(problem, progress=False, stages=("geometry",), steps=(15,))
    after = dict(loss=full_loss(problem, "geometry"), iou=silhouette_iou(problem))
    truth = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    return dict(before=before, after=after, solution=solution, truth_iou=silhouette_iou(truth))


def test_geometry_stage_lowers_the_loss(geometry_run):
    before, after = geometry_run["before"]["loss"], geometry_run["after"]["loss"]
    assert np.isfinite(after) and after < 0.7 * before
    history = geometry_run["solution"].history
    assert len(history) == 15 and all(h["stage"] == 0 for h in history)
    assert {"silhouette", "keypoints", "laplacian", "displacement", "shape_prior", "pose_prior"} <= history[0].keys()
    assert "photometric" not in history[0]  # the geometry stage does not see colours


def test_geometry_stage_recovers_the_silhouettes(geometry_run):
    truth, before, after = geometry_run["truth_iou"], geometry_run["before"]["iou"], geometry_run["after"]["iou"]
    assert truth.min() > 0.95  # the ground-truth pose does explain the masks
    assert before.mean() < 0.8  # the perturbation is visible
    assert after.mean() > before.mean() + 0.05
    assert (after > before).all()


def test_geometry_stage_changes_geometry_not_appearance(geometry_run, clip):
    s = geometry_run["solution"]
    assert not np.allclose(s.global_orient, clip.global_orient + 0.1)
    assert np.abs(s.displacement).max() <= 0.005 + 1e-7  # the clamp
    assert not s.texel_seen.any()  # no colour gradient reached the albedo
    assert s.albedo.shape == (64, 64, 3) and s.normal_map.shape == (64, 64, 3)


def test_the_size_term_holds_the_coarse_hand_length(clip, model, views):
    """Zero at the coarse shape whatever the poses, and 0.1 per squared percent of hand length
    for another shape: no image tells a larger far hand from a smaller near one, so only this
    term fixes the size."""
    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    with torch.no_grad():
        assert problem.loss([0, 1], "geometry")[1]["size"] < 1e-6
        assert problem.loss([2, 3], "geometry")[1]["size"] < 1e-6
        length0 = float(hand_length(model.keypoints(shape=problem.shape)[0]))
        problem.shape[0, 0] += 1.0
        length = float(hand_length(model.keypoints(shape=problem.shape)[0]))
        size = problem.loss([0, 1], "geometry")[1]["size"]
    percent = 100 * (length / length0 - 1)
    assert abs(percent) > 1
    assert size == pytest.approx(0.1 * percent ** 2, rel=0.02)


def test_texel_view_cosine_marks_the_texels_the_views_show(clip, model, views):
    """Paint the texels the views show frontally red, the others blue, and render: the interior
    pixels that face the camera (their own normal against the pixel's ray) come out red. A
    flipped v convention paints them blue."""
    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    cosine = problem.texel_view_cosine()
    assert cosine.shape == (64, 64) and 0 <= float(cosine.min()) and float(cosine.max()) <= 1
    frontal = cosine > 0.3
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])

    def red_fraction(painted):
        with torch.no_grad():
            problem.albedo.copy_(torch.where(painted[..., None], red, blue)[None])
            shaded = problem.render(ALL, problem.posed(ALL).vertices, None)
        fx, fy, cx, cy = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in problem.views.cameras])[:, None, None].unbind(-1)
        y, x = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
        ray = torch.nn.functional.normalize(torch.stack([(x - cx) / fx, (y - cy) / fy, torch.ones(N, 64, 64)], -1), dim=-1)
        facing = (-(shaded.normals * ray).sum(-1) > 0.6) & (problem.views.interior > 0.5)
        colour = shaded.image[facing]
        return float((colour[:, 0] > colour[:, 2]).float().mean())

    assert red_fraction(frontal) > 0.95
    assert red_fraction(frontal.flip(0)) < 0.8


def test_the_frames_colour_the_wrist_rim_nowhere(clip, model, views):
    """Past the model's cut the frames show the forearm or the background: repainting the pixels
    the rim faces cover leaves the photometric loss as it was (repainting as many other interior
    pixels raises it), and the rim's texels count as unseen (to be filled from the skin around)."""
    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    with torch.no_grad():
        rast = problem.render(ALL, problem.posed(ALL).vertices, None).rast[..., 3].long()
    rim = problem.open_rim[rast] & (views.interior > 0.5)
    other = (rast > 0) & ~problem.open_rim[rast] & (views.interior > 0.5)
    assert int(rim.sum()) > 20
    other &= torch.rand(other.shape, generator=torch.Generator().manual_seed(0)) < rim.sum() / other.sum()

    def photometric(repainted):
        problem.views = dataclasses.replace(views, images=torch.where(repainted[..., None], 1.0 - views.images,
                                                                      views.images))
        with torch.no_grad():
            return problem.loss(ALL, "appearance")[1]["photometric"]

    loss = photometric(torch.zeros_like(rim))
    assert photometric(rim) == loss and photometric(other) > loss

    seen = problem.texel_view_cosine() > 0
    problem.open_rim = torch.zeros_like(problem.open_rim)
    seen_with_rim = problem.texel_view_cosine() > 0
    assert (seen_with_rim & ~seen).any() and not (seen & ~seen_with_rim).any()


# ---------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def uninterrupted(clip, model, views):
    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    solution = optimize(problem, progress=False, stages=STAGES, steps=STEPS)
    return parameters(problem), solution


def assert_same_result(problem, solution, reference):
    ref_params, ref_solution = reference
    got = parameters(problem)
    assert got.keys() == ref_params.keys()
    for name, value in ref_params.items():
        assert torch.allclose(got[name], value, rtol=0, atol=1e-6), name
    assert len(solution.history) == len(ref_solution.history) == sum(STEPS)
    assert solution.history == ref_solution.history


def test_resume_after_an_interrupt_inside_a_step(tmp_path, clip, model, views, uninterrupted):
    """Ctrl-C while step 4 of the joint stage computes its loss (before the update)."""
    checkpoint = tmp_path / "checkpoint.pt"
    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    calls = []

    def interrupt(module, args):
        calls.append(1)
        # Two forward passes of the hand model per geometry or joint step: posed, and at rest (size).
        if len(calls) == 2 * STEPS[0] + 2 * 4 + 1:
            raise KeyboardInterrupt

    handle = problem.model.register_forward_pre_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        optimize(problem, checkpoint=checkpoint, progress=False, stages=STAGES, steps=STEPS)
    handle.remove()
    assert checkpoint.is_file()
    fresh = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    solution = optimize(fresh, checkpoint=checkpoint, progress=False, stages=STAGES, steps=STEPS)
    assert_same_result(fresh, solution, uninterrupted)


def test_resume_after_an_interrupt_between_steps(tmp_path, clip, model, views, uninterrupted):
    """Ctrl-C right after step 4 of the joint stage (from the on_step callback)."""
    checkpoint = tmp_path / "checkpoint.pt"
    seen = []

    def stop(stage, step, terms):
        seen.append((stage, step))
        if (stage, step) == ("joint", 4):
            raise KeyboardInterrupt

    problem = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        optimize(problem, checkpoint=checkpoint, progress=False, on_step=stop, stages=STAGES, steps=STEPS)
    assert seen[-1] == ("joint", 4) and len(seen) == STEPS[0] + 5 and checkpoint.is_file()
    fresh = AvatarProblem(model, coarse_from(clip), views, SETTINGS)
    solution = optimize(fresh, checkpoint=checkpoint, progress=False, stages=STAGES, steps=STEPS)
    assert_same_result(fresh, solution, uninterrupted)


# ---------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["torch", pytest.param("nvdiffrast", marks=pytest.mark.xfail(
    strict=True, reason="open: nvdiffrast's position gradients differ from ours (see test_backends); measured "
                        "failing on an H200, where a full build still reached the CPU build's photometric loss"))])
def test_cpu_and_cuda_optimizations_agree(clip, model, views, backend):
    """A few steps of every stage on CUDA follow the CPU run: same batches, same seed."""
    if backend == "nvdiffrast":
        pytest.importorskip("nvdiffrast.torch")
    solutions = {}
    for device in ("cpu", "cuda"):
        settings = OptimizeSettings(batch=2, texture_size=64, render_backend=backend if device == "cuda" else "torch")
        problem = AvatarProblem(model, coarse_from(clip, orient_offset=0.1), views, settings, device=device)
        assert problem.shape.device.type == device
        solutions[device] = optimize(problem, progress=False, stages=STAGES, steps=STEPS)
    cpu, cuda = solutions["cpu"], solutions["cuda"]
    assert np.abs(cpu.transl - cuda.transl).max() < 1e-3  # metres
    assert np.abs(cpu.global_orient - cuda.global_orient).max() < 0.01  # radians
    assert np.abs(cpu.albedo - cuda.albedo).mean() < 0.01
    final = {device: sum(v for k, v in s.history[-1].items() if k != "stage") for device, s in solutions.items()}
    assert abs(final["cpu"] - final["cuda"]) < 0.05 * final["cpu"], final


# ---------------------------------------------------------------- masks seeded again

def mask_iou(a, b):
    a, b = a > 0.5, b > 0.5
    return float(((a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).float()).mean())


def test_grabcut_masks_are_seeded_again_from_the_avatar_after_the_geometry_stage(clip, model):
    """From a coarse fit turned 0.15 rad off, GrabCut's masks are seeded from a poor silhouette; the
    geometry stage turns the poses back, and the masks it seeds again come closer to the truth."""
    truth = crop_views(coarse_from(clip, True, orient_offset=0.15), model, 64).masks  # same crops
    views = crop_views(coarse_from(clip, False, orient_offset=0.15), model, 64)
    problem = AvatarProblem(model, coarse_from(clip, False, orient_offset=0.15), views, SETTINGS)
    optimize(problem, progress=False, stages=("geometry",), steps=(15,))
    before, after = mask_iou(views.masks, truth), mask_iou(problem.views.masks, truth)
    assert after > before + 0.01, (before, after)


def test_user_masks_are_kept_through_the_geometry_stage(clip, model, views):
    problem = AvatarProblem(model, coarse_from(clip, orient_offset=0.15), views, SETTINGS)
    optimize(problem, progress=False, stages=("geometry",), steps=(6,))
    assert torch.equal(problem.views.masks, views.masks) and torch.equal(problem.views.interior, views.interior)


def test_resume_in_the_joint_stage_keeps_the_masks_seeded_again(tmp_path, clip, model):
    views = crop_views(coarse_from(clip, False), model, 64)
    reference = AvatarProblem(model, coarse_from(clip, False), views, SETTINGS)
    expected = optimize(reference, progress=False, stages=STAGES, steps=STEPS)

    def stop(stage, step, terms):
        if (stage, step) == ("joint", 2):
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        optimize(AvatarProblem(model, coarse_from(clip, False), views, SETTINGS), checkpoint=checkpoint,
                 progress=False, on_step=stop, stages=STAGES, steps=STEPS)
    fresh = AvatarProblem(model, coarse_from(clip, False), views, SETTINGS)
    solution = optimize(fresh, checkpoint=checkpoint, progress=False, stages=STAGES, steps=STEPS)
    assert torch.equal(fresh.views.masks, reference.views.masks)
    assert not torch.equal(fresh.views.masks, views.masks)  # the masks were seeded again
    assert_same_result(fresh, solution, (parameters(reference), expected))
