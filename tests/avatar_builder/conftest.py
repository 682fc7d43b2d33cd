"""Fixtures of the builder tests: a small synthetic subject and the open hand model."""

import pytest

import harp_track as ht
from harp_track.synthetic import make_enrollment_clip

from .subject import N


@pytest.fixture(scope="module")
def clip():
    return make_enrollment_clip(num_frames=N, image_size=(160, 160))


@pytest.fixture(scope="module")
def model():
    return ht.load_hand_model()
