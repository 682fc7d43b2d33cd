"""The refinement's crop and image channels (numba) against torch implementations of the same
operations: `interpolate(antialias=True)` for the crop, max-pooling, `bincount` and convolutions for
the channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harp_track.camera import Camera
from harp_track.fit.crop import crop_square
from harp_track.fit.image_term import image_channels

CAMERA = Camera(500.0, 500.0, 320.0, 180.0)


def _torch_crop(frame: np.ndarray, box: tuple[int, int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, side = box
    height, width = frame.shape[:2]
    region = torch.zeros(side, side, 4)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    region[ya - y0:yb - y0, xa - x0:xb - x0, :3] = torch.from_numpy(frame[ya:yb, xa:xb]).float()
    region[ya - y0:yb - y0, xa - x0:xb - x0, 3] = 255
    out = F.interpolate(region.permute(2, 0, 1)[None] / 255, size=(size, size), mode="bilinear",
                        align_corners=False, antialias=side > size)[0]
    return out[:3].permute(1, 2, 0).numpy(), (out[3] > 0.999).float().numpy()


@pytest.mark.parametrize("box", [(100, 50, 200), (-30, -20, 150), (600, 300, 97), (10, 10, 96), (5, 7, 40),
                                 (-50, 200, 400), (700, 10, 50)])
def test_crop_matches_torch_antialiased_resampling(box):
    """Shrinking, enlarging, the same size, and boxes partly or wholly outside the frame."""
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    crop = crop_square(frame, CAMERA, box, 96)
    image, valid = _torch_crop(frame, box, 96)
    assert crop.image.shape == (96, 96, 3) and crop.image.dtype == np.float32
    np.testing.assert_allclose(crop.image, image, atol=1e-5)
    np.testing.assert_array_equal(crop.valid, valid)
    # The crop's camera sees a frame point where the crop shows it.
    x0, y0, side = box
    assert crop.camera.fx == pytest.approx(CAMERA.fx * 96 / side)
    assert crop.camera.cx == pytest.approx((CAMERA.cx - x0) * 96 / side)


def test_crop_refuses_a_frame_that_is_not_rgb_uint8():
    with pytest.raises(ValueError, match="uint8"):
        crop_square(np.zeros((360, 640, 3), np.float32), CAMERA, (0, 0, 100), 96)


def _torch_channels(image: np.ndarray, alpha: np.ndarray, valid: np.ndarray, bins: int, sigma: float) -> np.ndarray:
    image, alpha, valid = (torch.from_numpy(a) for a in (image, alpha, valid))

    def dilate(mask, size):
        return F.max_pool2d(mask[None, None], size, 1, size // 2)[0, 0]

    inside = (1 - dilate((alpha <= 0.5).float(), 5)) * valid
    outside = (1 - dilate((alpha > 0.01).float(), 9)) * valid
    if inside.sum() < 10 or outside.sum() < 10:
        hand = torch.full_like(alpha, 0.5)
    else:
        q = (image * bins).long().clamp(max=bins - 1)
        index = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).reshape(-1)
        fg = torch.bincount(index, weights=inside.reshape(-1).double(), minlength=bins ** 3) + 0.5
        bg = torch.bincount(index, weights=outside.reshape(-1).double(), minlength=bins ** 3) + 0.5
        pf, pb = fg / fg.sum(), bg / bg.sum()
        hand = (pf / (pf + pb))[index].reshape(alpha.shape).float()
    values = torch.cat([image, hand[..., None]], -1).permute(2, 0, 1)[None].double()
    if sigma > 0:
        radius = max(1, int(np.ceil(2.5 * sigma)))
        k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
        k = (k[:, None] * k[None]) / k.sum() ** 2
        values = F.conv2d(F.pad(values, (radius,) * 4, mode="replicate"), k.repeat(4, 1, 1, 1), groups=4)
    padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return torch.cat([values, dx, dy], 1)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("case", ["hand", "hand at the frame's edge", "all hand", "no hand"])
@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0])
def test_image_channels_match_a_torch_implementation(case, sigma):
    rng = np.random.default_rng(1)
    size = 64
    yy, xx = np.mgrid[:size, :size]
    alpha = np.clip(1.2 - np.hypot(yy - 30, xx - 26) / 18, 0, 1).astype(np.float32)
    image = (0.3 * rng.random((size, size, 3)) + alpha[..., None] * np.array([0.6, 0.4, 0.3])).astype(np.float32)
    valid = np.ones((size, size), np.float32)
    if case == "hand at the frame's edge":
        valid[:, :12] = 0
    elif case == "all hand":
        alpha[:] = 1
    elif case == "no hand":
        alpha[:] = 0
    stack = image_channels(image, alpha, valid, 12, sigma)
    expected = _torch_channels(image, alpha, valid, 12, sigma)
    assert stack.shape == (size, size, 12)
    np.testing.assert_allclose(stack, expected, atol=1e-6)
    hand = stack[..., 3]
    if case in ("all hand", "no hand"):
        np.testing.assert_allclose(hand, 0.5)
    else:  # the hand probability separates the disc from the background
        assert hand[30, 26] > 0.8 and hand[5, size - 5] < 0.2
