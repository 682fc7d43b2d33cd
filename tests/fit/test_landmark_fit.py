"""Fitting the hand model to landmarks, on synthetic landmarks with exact ground truth."""

import numpy as np
import pytest
import torch

import harp_track as ht
from harp_track.camera import Camera
from harp_track.fit import LandmarkFitter

CAMERA = Camera(600.0, 600.0, 320.0, 180.0)


@pytest.fixture(scope="module", params=["right", "left"])
def model(request):
    return ht.load_hand_model(side=request.param)


def synthetic_hand(model, seed, depth=0.45):
    """Keypoints of a random plausible pose: (21, 3) camera space, (21, 2) pixels, centred world."""
    g = torch.Generator().manual_seed(seed)
    a = model.anatomy
    angles = a.lower + (a.upper - a.lower) * (0.15 + 0.5 * torch.rand(a.lower.shape, generator=g))
    angles[[i for i, r in enumerate(a.roles) if r in ("wrist", "metacarpal")]] = 0.0
    orient = 0.7 * torch.randn(1, 3, generator=g)
    transl = torch.tensor([[0.03, -0.02, depth]])
    with torch.no_grad():
        kp = model(global_orient=orient, pose=a.to_pose(angles[None]), transl=transl).keypoints[0]
    return kp, CAMERA.project(kp), kp - kp.mean(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_landmarks_give_the_metric_pose(model, seed):
    kp, uv, world = synthetic_hand(model, seed)
    fit = LandmarkFitter(model).fit(uv.numpy(), world.numpy(), CAMERA)
    assert fit.reprojection_px < 1.0
    assert (fit.keypoints - kp).norm(dim=-1).mean() < 3e-3  # metres, camera space: depth included


def test_noisy_landmarks_stay_close(model):
    g = torch.Generator().manual_seed(7)
    errors = []
    for seed in range(4):
        kp, uv, world = synthetic_hand(model, seed)
        fit = LandmarkFitter(model).fit((uv + 2.0 * torch.randn(21, 2, generator=g)).numpy(),
                                        (world + 0.008 * torch.randn(21, 3, generator=g)).numpy(), CAMERA)
        errors.append(float((fit.keypoints - kp).norm(dim=-1).mean()))
    assert np.mean(errors) < 0.015


def test_warm_start_follows_motion_and_model_inputs_reproduce_the_fit(model):
    fitter = LandmarkFitter(model)
    kp0, uv0, world0 = synthetic_hand(model, 3)
    first = fitter.fit(uv0, world0, CAMERA)
    kp1, uv1, world1 = synthetic_hand(model, 3, depth=0.47)  # same pose, 2 cm further away
    second = fitter.fit(uv1, world1, CAMERA, previous=first)
    assert (second.keypoints - kp1).norm(dim=-1).mean() < 3e-3
    inputs = fitter.model_inputs(second)
    with torch.no_grad():
        again = model(**{k: v for k, v in inputs.items() if v is not None}).keypoints[0]
    assert torch.allclose(again, second.keypoints, atol=1e-5)
    assert torch.all(model.anatomy.lower - 1e-6 <= second.angles) and torch.all(second.angles <= model.anatomy.upper + 1e-6)


def test_known_hand_size_fixes_depth():
    """A bigger hand at the same image size is further away: with its shape given, depth is right."""
    model = ht.load_hand_model()
    first = torch.zeros(2, model.num_shape)
    first[:, 0] = torch.tensor([-2.5, 2.5])
    lengths = model(shape=first).vertices[:, :, 1].max(1).values  # the first component is mostly size
    big = first[int(lengths.argmax())][None]
    angles = model.anatomy.gesture("spread")
    transl = torch.tensor([[0.0, 0.0, 0.5]])
    with torch.no_grad():
        kp = model(global_orient=torch.tensor([[0.2, 0.3, 0.1]]), pose=model.anatomy.to_pose(angles),
                   shape=big, transl=transl).keypoints[0]
    uv, world = CAMERA.project(kp), kp - kp.mean(0)
    right_size = LandmarkFitter(model, shape=big).fit(uv, world, CAMERA)
    mean_size = LandmarkFitter(model).fit(uv, world, CAMERA)
    assert (right_size.keypoints - kp).norm(dim=-1).mean() < 3e-3
    # The mean hand is smaller, so it is placed nearer, by about the size ratio.
    assert mean_size.keypoints[:, 2].mean() < kp[:, 2].mean() - 0.01


def test_bad_landmarks_are_refused():
    fitter = LandmarkFitter(ht.load_hand_model())
    with pytest.raises(ValueError, match=r"\(21, 2\)"):
        fitter.fit(np.zeros((20, 2)), np.zeros((21, 3)), CAMERA)
    with pytest.raises(ValueError, match="needs world landmarks"):
        fitter.fit(np.zeros((21, 2)), None, CAMERA)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_mirrored_world_depths_are_recovered_from_the_image(model, seed):
    # The landmark model sometimes reads the hand's depths the wrong way round; with the 2D
    # landmarks exact, the fit must still find the pose (fitting the mirrored depths as given
    # ends 16-31 px from the landmarks and 9-26 cm off, measured).
    kp, uv, world = synthetic_hand(model, seed)
    mirrored = world * torch.tensor([1.0, 1.0, -1.0])
    fit = LandmarkFitter(model).fit(uv.numpy(), mirrored.numpy(), CAMERA)
    assert fit.reprojection_px < 1.0
    assert (fit.keypoints - kp).norm(dim=-1).mean() < 5e-3
