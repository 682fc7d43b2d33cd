"""Derived hand models: subdivision and personalization reproduce the original model exactly."""

import numpy as np
import pytest
import torch

import harp_track as ht
from harp_track.hand import HandModel, HandModelError
from harp_track.hand.derive import personalized, subdivided


@pytest.fixture(scope="module")
def base():
    return ht.load_hand_model()


def _inputs(model, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(global_orient=0.5 * torch.randn(batch, 3, generator=g),
                pose=0.3 * torch.randn(batch, model.num_pose_joints, 3, generator=g),
                shape=torch.randn(batch, model.num_shape, generator=g),
                transl=0.1 * torch.randn(batch, 3, generator=g))


def test_subdivided_model_poses_the_original_vertices_identically(base):
    fine = HandModel(subdivided(base.data))
    assert fine.num_vertices > 3.9 * base.num_vertices and len(fine.faces) == 4 * len(base.faces)
    inputs = _inputs(base)
    coarse_out, fine_out = base(**inputs), fine(**inputs)
    assert torch.allclose(fine_out.vertices[:, :base.num_vertices], coarse_out.vertices, atol=1e-6)
    assert torch.allclose(fine_out.keypoints, coarse_out.keypoints, atol=1e-6)


def test_subdivision_keeps_uv_seams(base):
    fine = subdivided(base.data)
    assert fine.faces_uv.shape == fine.faces.shape
    assert len(fine.uvs) > len(base.data.uvs) and fine.uvs.min() >= 0 and fine.uvs.max() <= 1


def test_personalized_model_bakes_shape_and_offsets(base):
    fine = HandModel(subdivided(base.data))
    inputs = _inputs(base, batch=2, seed=1)
    shape = inputs.pop("shape")[:1]
    offsets = 0.002 * torch.randn(fine.num_vertices, 3, generator=torch.Generator().manual_seed(2))
    own = HandModel(personalized(fine.data, shape[0].numpy(), offsets.numpy()))
    assert own.num_shape == 0
    expected = fine(**inputs, shape=shape.expand(2, -1), vertex_offsets=offsets[None])
    got = own(**inputs)
    assert torch.allclose(got.vertices, expected.vertices, atol=1e-6)
    assert torch.allclose(got.keypoints, expected.keypoints, atol=1e-6)
    # The offsets are surface detail: the skeleton is the shaped one, unchanged.
    assert torch.allclose(got.joints, fine(**inputs, shape=shape.expand(2, -1)).joints, atol=1e-6)


def test_bad_offsets_and_shapes_are_refused(base):
    with pytest.raises(HandModelError, match="vertex_offsets"):
        base(vertex_offsets=torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="shape must have"):
        personalized(base.data, np.zeros(3))
