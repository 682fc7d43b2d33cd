"""The avatar asset: save/load round trip, refusal of bad folders, mirroring and rendering."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

import harp_track as ht
from harp_track.avatar import AVATAR_VERSION, Avatar, AvatarError
from harp_track.hand.derive import personalized, subdivided
from harp_track.hand.rotations import matrix_to_axis_angle, palm_to_camera

SIZE = (96, 96)  # (H, W)
CAMERA = ht.Camera(150.0, 150.0, SIZE[1] / 2, SIZE[0] / 2)  # centred: mirroring x mirrors the image
MIRROR = torch.tensor([-1.0, 1.0, 1.0])  # a point's x
MIRROR_ROTATION = torch.tensor([1.0, -1.0, -1.0])  # an axis-angle's components under R -> M R M


@pytest.fixture(scope="module")
def base():
    return ht.load_hand_model()


@pytest.fixture(scope="module")
def avatar(base):
    rng = np.random.default_rng(0)
    shape = (0.5 * rng.standard_normal(base.num_shape)).astype(np.float32)
    hand = personalized(subdivided(base.data, 0), shape, name="test-avatar")
    return Avatar(hand=hand, albedo=rng.random((64, 64, 3)).astype(np.float32),
                  normal_map=rng.random((64, 64, 3)).astype(np.float32), ambient=0.3,
                  light_position=np.array([0.1, -0.2, 0.05], np.float32), shape=shape, base_model=base.name)


@pytest.fixture(scope="module")
def flat_avatar(avatar):
    """The avatar with a flat normal map (n = +z everywhere): no normal detail."""
    flat = np.zeros_like(avatar.normal_map)
    flat[..., :2], flat[..., 2] = 0.5, 1.0
    return dataclasses.replace(avatar, normal_map=flat)


@pytest.fixture
def saved(avatar, tmp_path):
    return avatar.save(tmp_path / "alice", export=False)


def right_inputs(model):
    """A posed right hand in front of CAMERA, palm towards it: the model inputs (batch 1)."""
    pose = 0.2 * torch.randn(1, model.num_pose_joints, 3, generator=torch.Generator().manual_seed(1))
    return dict(global_orient=matrix_to_axis_angle(palm_to_camera())[None], pose=pose,
                transl=torch.tensor([[0.035, 0.08, 0.42]]))


def mirrored_inputs(inputs):
    return dict(global_orient=inputs["global_orient"] * MIRROR_ROTATION, pose=inputs["pose"] * MIRROR_ROTATION,
                transl=inputs["transl"] * MIRROR)


def tracked(model, inputs, handedness):
    with torch.no_grad():
        out = model(**inputs)
    return ht.TrackedHand(
        handedness=handedness, joints=out.keypoints[0].numpy(), keypoints_2d=CAMERA.project(out.keypoints[0]).numpy(),
        vertices=out.vertices[0].numpy(), confidence=1.0, global_orient=inputs["global_orient"][0].numpy(),
        pose=inputs["pose"][0].numpy(), shape=np.zeros(0, np.float32), transl=inputs["transl"][0].numpy())


def hand_arrays_equal(a, b):
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


# ---------------------------------------------------------------- files

def test_save_load_round_trip(avatar, tmp_path):
    folder = avatar.save(tmp_path / "alice")
    for name in ("avatar.json", "hand_model.npz", "albedo.png", "normal.png", "avatar.glb", "avatar.obj", "avatar.mtl"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    back = Avatar.load(folder)
    hand_arrays_equal(back.hand, avatar.hand)
    # 8-bit PNGs: every value within half a level (a swapped channel or flipped map is far off).
    assert np.abs(back.albedo - avatar.albedo).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back.normal_map - avatar.normal_map).max() <= 0.5 / 255 + 1e-6
    assert back.albedo.dtype == np.float32 and back.albedo.shape == (64, 64, 3)
    assert back.ambient == pytest.approx(avatar.ambient)
    np.testing.assert_allclose(back.light_position, avatar.light_position, rtol=1e-6)
    np.testing.assert_allclose(back.shape, avatar.shape, rtol=1e-6)
    assert (back.base_model, back.version, back.side) == (avatar.base_model, AVATAR_VERSION, "right")
    meta = json.loads((folder / "avatar.json").read_text())
    assert meta["format"] == "harp_track.avatar" and meta["version"] == AVATAR_VERSION
    assert meta["texture_size"] == 64 and meta["vertices"] == avatar.hand.num_vertices and meta["side"] == "right"
    # A saved copy of the loaded avatar describes the same avatar.
    again = json.loads((back.save(tmp_path / "again", export=False) / "avatar.json").read_text())
    assert again == meta


def test_load_refuses_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(AvatarError, match="not found"):
        Avatar.load(tmp_path / "nobody")
    (saved / "normal.png").unlink()
    with pytest.raises(AvatarError, match="missing normal.png"):
        Avatar.load(saved)


def test_load_refuses_corrupt_json(saved):
    (saved / "avatar.json").write_text('{"format": "harp_track.avatar", ')
    with pytest.raises(AvatarError, match="not valid JSON"):
        Avatar.load(saved)


def test_load_refuses_foreign_format_and_other_version(saved):
    meta = json.loads((saved / "avatar.json").read_text())
    (saved / "avatar.json").write_text(json.dumps(dict(meta, format="someone.else")))
    with pytest.raises(AvatarError, match="not a harp_track avatar"):
        Avatar.load(saved)
    (saved / "avatar.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(AvatarError, match="not a harp_track avatar"):
        Avatar.load(saved)
    (saved / "avatar.json").write_text(json.dumps(dict(meta, version=AVATAR_VERSION + 98)))
    with pytest.raises(AvatarError, match=f"version {AVATAR_VERSION + 98}"):
        Avatar.load(saved)


def test_load_refuses_incomplete_description(saved):
    meta = json.loads((saved / "avatar.json").read_text())
    del meta["ambient"]
    (saved / "avatar.json").write_text(json.dumps(meta))
    with pytest.raises(AvatarError, match="lacks ambient"):
        Avatar.load(saved)


@pytest.mark.parametrize("key, value", [("side", "left"), ("vertices", 123), ("texture_size", 7)])
def test_load_refuses_a_description_of_other_files(saved, key, value):
    """avatar.json must describe the files beside it (one avatar's description with another's
    mesh or textures loaded silently)."""
    meta = json.loads((saved / "avatar.json").read_text())
    (saved / "avatar.json").write_text(json.dumps(dict(meta, **{key: value})))
    with pytest.raises(AvatarError, match=f"says {key}"):
        Avatar.load(saved)


def test_load_refuses_corrupt_npz(saved):
    (saved / "hand_model.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(AvatarError, match="not a readable hand model"):
        Avatar.load(saved)


def test_load_refuses_unreadable_texture(saved):
    (saved / "albedo.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(AvatarError, match="albedo.png is not a readable image"):
        Avatar.load(saved)


def test_load_refuses_mismatched_texture_sizes(saved):
    cv2.imwrite(str(saved / "normal.png"), np.full((32, 32, 3), 128, np.uint8))
    with pytest.raises(AvatarError, match="differ in size"):
        Avatar.load(saved)


def test_load_refuses_model_with_shape_parameters(saved, base):
    base.data.save(saved / "hand_model.npz")
    with pytest.raises(AvatarError, match="num_shape must be 0"):
        Avatar.load(saved)


@pytest.mark.parametrize("name", ["albedo", "normal_map"])
def test_construction_refuses_bad_textures(avatar, name):
    bad = getattr(avatar, name).copy()
    bad[3, 5, 1] = np.nan
    with pytest.raises(AvatarError, match=f"{name} must hold finite values"):
        dataclasses.replace(avatar, **{name: bad})
    for value in (-0.01, 1.01):
        bad = getattr(avatar, name).copy()
        bad[0, 0, 0] = value
        with pytest.raises(AvatarError, match=r"in \[0, 1\]"):
            dataclasses.replace(avatar, **{name: bad})
    with pytest.raises(AvatarError, match="differ in size"):
        dataclasses.replace(avatar, **{name: np.zeros((32, 32, 3), np.float32)})
    with pytest.raises(AvatarError, match=r"\(S, S, 3\)"):
        dataclasses.replace(avatar, **{name: np.zeros((64, 64), np.float32)})
    with pytest.raises(AvatarError, match=r"\(S, S, 3\)"):  # not square
        dataclasses.replace(avatar, albedo=np.zeros((64, 32, 3), np.float32), normal_map=np.zeros((64, 32, 3), np.float32))


def test_construction_refuses_model_with_shape_parameters(avatar, base):
    with pytest.raises(AvatarError, match="num_shape must be 0"):
        dataclasses.replace(avatar, hand=base.data)


# ---------------------------------------------------------------- mirroring and rendering

def test_mirrored_twice_is_the_original(avatar):
    once = avatar.mirrored()
    assert once.side == "left" and avatar.side == "right"
    np.testing.assert_array_equal(once.light_position, avatar.light_position * [-1, 1, 1])
    assert not np.allclose(once.hand.vertices, avatar.hand.vertices)
    assert avatar.for_side("right") is avatar and avatar.for_side("left").side == "left"
    twice = once.mirrored()
    hand_arrays_equal(twice.hand, avatar.hand)
    np.testing.assert_allclose(twice.normal_map, avatar.normal_map, atol=1e-6)
    np.testing.assert_array_equal(twice.albedo, avatar.albedo)
    np.testing.assert_array_equal(twice.light_position, avatar.light_position)
    assert (twice.ambient, twice.base_model, twice.side) == (avatar.ambient, avatar.base_model, "right")
    np.testing.assert_array_equal(twice.shape, avatar.shape)


def test_mirrored_model_poses_the_mirror_image(avatar):
    right = avatar.hand_model()
    inputs = right_inputs(right)
    with torch.no_grad():
        verts = right(**inputs).vertices
        verts_left = avatar.mirrored().hand_model()(**mirrored_inputs(inputs)).vertices
    torch.testing.assert_close(verts_left, verts * MIRROR, atol=1e-6, rtol=0)


def render_mirror_pair(avatar):
    """The avatar and its mirror, rendered at mirror-image vertices and lights with a centred camera."""
    with torch.no_grad():
        verts = avatar.hand_model()(**right_inputs(avatar.hand_model())).vertices
        light = torch.from_numpy(avatar.light_position)[None]
        rgb, alpha = avatar.render_vertices(verts, CAMERA, SIZE, light)
        rgb_m, alpha_m = avatar.mirrored().render_vertices(verts * MIRROR, CAMERA, SIZE, light * MIRROR)
    return rgb[0], alpha[0], rgb_m[0], alpha_m[0]


@pytest.fixture(scope="module")
def mirrored_renders(avatar):
    return render_mirror_pair(avatar)


def test_mirrored_avatar_covers_the_mirrored_image(mirrored_renders):
    rgb, alpha, rgb_m, alpha_m = mirrored_renders
    assert (alpha > 0.5).sum() > 500  # the hand is in view, not a speck
    torch.testing.assert_close(alpha_m.flip(1), alpha, atol=1e-4, rtol=0)


def test_mirrored_avatar_without_normal_detail_renders_the_mirrored_image(flat_avatar):
    # Albedo, light and shading mirror with the hand.
    rgb, alpha, rgb_m, alpha_m = render_mirror_pair(flat_avatar)
    assert rgb[alpha > 0.99].mean() > 0.05
    torch.testing.assert_close(rgb_m.flip(1), rgb, atol=1e-4, rtol=0)


def test_mirrored_avatar_renders_the_mirrored_image(mirrored_renders):
    rgb, alpha, rgb_m, alpha_m = mirrored_renders
    torch.testing.assert_close(rgb_m.flip(1), rgb, atol=1e-4, rtol=0)


def test_render_tracked_hand(avatar):
    model = avatar.hand_model()
    hand = tracked(model, right_inputs(model), "right")
    rgb, alpha = avatar.render(hand, CAMERA, SIZE)
    assert rgb.shape == (*SIZE, 3) and alpha.shape == SIZE and rgb.dtype == alpha.dtype == np.float32
    assert 0 <= rgb.min() and rgb.max() <= 1 and 0 <= alpha.min() and alpha.max() <= 1
    # Alpha covers the hand: the keypoints (inside the hand) and little beyond their region.
    kp = np.floor(hand.keypoints_2d).astype(int)
    assert ((kp >= 0) & (kp < [SIZE[1], SIZE[0]])).all()
    assert (alpha[kp[:, 1], kp[:, 0]] > 0.5).mean() >= 0.9
    ys, xs = np.nonzero(alpha > 0.5)
    lo, hi = hand.keypoints_2d.min(0), hand.keypoints_2d.max(0)
    margin = 0.3 * (hi - lo).max()
    assert xs.min() >= lo[0] - margin and xs.max() <= hi[0] + margin
    assert ys.min() >= lo[1] - margin and ys.max() <= hi[1] + margin
    # Over black: nothing drawn where alpha is zero; lit where it is one.
    assert np.abs(rgb[alpha == 0]).max() == 0 and (alpha == 0).sum() > 0.5 * alpha.size
    assert rgb[alpha > 0.99].mean() > 0.05


def test_render_picks_the_mirrored_avatar_for_a_left_hand(flat_avatar):
    avatar = flat_avatar  # no normal detail: see test_mirrored_avatar_renders_the_mirrored_image
    right_model = avatar.hand_model()
    inputs = right_inputs(right_model)
    rgb, alpha = avatar.render(tracked(right_model, inputs, "right"), CAMERA, SIZE)
    left = tracked(avatar.mirrored().hand_model(), mirrored_inputs(inputs), "left")
    rgb_l, alpha_l = avatar.render(left, CAMERA, SIZE)
    # The left hand is the mirror image of the right one, lit by the mirrored capture light ...
    np.testing.assert_allclose(alpha_l[:, ::-1], alpha, atol=1e-4)
    np.testing.assert_allclose(rgb_l[:, ::-1], rgb, atol=1e-4)
    # ... drawn by the mirrored avatar under the mirrored capture light.
    mirrored = avatar.mirrored()
    with torch.no_grad():
        verts = torch.from_numpy(left.vertices)[None]
        expected, _ = mirrored.render_vertices(verts, CAMERA, SIZE, torch.from_numpy(mirrored.light_position)[None])
    np.testing.assert_allclose(rgb_l, expected[0].numpy(), atol=1e-5)
    # The right avatar posed with the left hand's parameters is not that image.
    wrong = dataclasses.replace(left, handedness="right")
    _, alpha_wrong = avatar.render(wrong, CAMERA, SIZE)
    assert ((alpha_wrong > 0.5) != (alpha_l > 0.5)).sum() > 100


def test_a_side_that_is_neither_hand_is_refused(avatar):
    assert avatar.for_side(avatar.side) is avatar
    with pytest.raises(ValueError, match="'Left'"):
        avatar.for_side("Left")
