"""Avatar quality metrics against analytic values and independent implementations."""

import math

import numpy as np
import pytest
import torch

from avatar_builder.metrics import point_to_mesh_distance, psnr, silhouette_iou, ssim, surface_error_mm
from harp_track.hand.rotations import axis_angle_to_matrix


def smooth_image(seed, shape=(48, 64)):
    """A textured image in [0, 1]: smooth structure plus fine noise, so SSIM has something to see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] / 10.0
    base = 0.5 + 0.3 * np.sin(xx[..., None] * [1.0, 1.3, 0.7] + yy[..., None] * [0.5, -0.8, 1.1])
    return np.clip(base + 0.05 * rng.standard_normal(shape + (3,)), 0, 1)


def box_mask(shape=(48, 64)):
    mask = np.zeros(shape, dtype=bool)
    mask[8:40, 12:50] = True
    return mask


def test_psnr_of_a_uniform_offset_is_analytic():
    target = 0.2 + 0.6 * np.random.default_rng(0).random((48, 64, 3))
    mask = box_mask()
    pred = target + 0.05
    pred[~mask] = 1.0  # errors outside the mask must not count
    assert psnr(pred, target, mask) == pytest.approx(20 * math.log10(1 / 0.05), abs=1e-9)
    assert psnr(torch.tensor(pred), torch.tensor(target), torch.tensor(mask)) == pytest.approx(26.0206, abs=1e-4)
    # uint8 images are read as value / 255: an offset of 5 levels.
    target8 = np.full((48, 64, 3), 100, np.uint8)
    assert psnr(target8 + 5, target8, mask) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    assert psnr(target, target, mask) == math.inf
    with pytest.raises(ValueError, match="empty"):
        psnr(pred, target, np.zeros_like(mask))


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    image, mask = smooth_image(0), box_mask()
    assert ssim(image, image, mask) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    scores = [ssim(np.clip(image + s * rng.standard_normal(image.shape), 0, 1), image, mask) for s in (0.02, 0.1, 0.3)]
    assert 1 > scores[0] > scores[1] > scores[2]


@pytest.mark.parametrize("distortion", ["noise", "shift", "contrast"])
def test_ssim_matches_scikit_image(distortion):
    metrics = pytest.importorskip("skimage.metrics")
    target, mask = smooth_image(2), box_mask()
    pred = {"noise": np.clip(target + 0.1 * np.random.default_rng(3).standard_normal(target.shape), 0, 1),
            "shift": np.roll(target, (2, -3), axis=(0, 1)),
            "contrast": 0.5 + 0.6 * (target - 0.5)}[distortion]
    _, full = metrics.structural_similarity(pred, target, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1, channel_axis=-1, full=True)
    assert ssim(pred, target, mask) == pytest.approx(full.mean(-1)[mask].mean(), abs=1e-10)


def test_silhouette_iou():
    a, b = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    a[0:10, 0:10] = True
    b[0:10, 5:15] = True  # overlap 50, union 150
    assert silhouette_iou(a, b) == pytest.approx(1 / 3)
    assert silhouette_iou(a.astype(np.float32), a) == 1.0
    assert silhouette_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def grid_square(side=0.1, n=8):
    """A flat square in z = 0, centred on the origin, as 2 n² triangles."""
    g = np.linspace(-side / 2, side / 2, n + 1)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    vertices = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], 1)
    k = np.arange(n * (n + 1)).reshape(n, n + 1)[:, :n].ravel()
    faces = np.concatenate([np.stack([k, k + n + 1, k + 1], 1), np.stack([k + 1, k + n + 1, k + n + 2], 1)])
    return vertices, faces


def icosphere(radius, level=4):
    """A sphere: an icosahedron subdivided `level` times, vertices pushed out to `radius`."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
         (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
         (8, 6, 7), (9, 8, 1)]
    vertices, faces = [np.array(p, float) / np.linalg.norm(p) for p in v], np.array(f)
    for _ in range(level):
        midpoint, new_faces = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in midpoint:
                p = vertices[a] + vertices[b]
                vertices.append(p / np.linalg.norm(p))
                midpoint[key] = len(vertices) - 1
            return midpoint[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = np.array(new_faces)
    return radius * np.array(vertices), faces


def test_point_to_triangle_regions():
    vertices, faces = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 2]])
    points = np.array([[0.2, 0.2, 0.5],   # above the interior: the plane
                       [-1, -1, 0],       # beyond a vertex
                       [0.5, -1, 1],      # beyond an edge, off the plane
                       [1, 1, 0]])        # beyond the hypotenuse
    expected = [0.5, 2 ** 0.5, 2 ** 0.5, 0.5 ** 0.5]
    np.testing.assert_allclose(point_to_mesh_distance(points, vertices, faces), expected, atol=1e-15)


def test_point_to_mesh_matches_trimesh_brute_force():
    trimesh = pytest.importorskip("trimesh")
    vertices, faces = icosphere(0.05, level=2)
    vertices = vertices * [1.0, 0.6, 1.4]  # an ellipsoid: closest points off the radial direction
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.1, 0.1, (60, 3))
    tri = vertices[faces]
    expected = [np.linalg.norm(trimesh.triangles.closest_point(tri, np.repeat(p[None], len(tri), 0)) - p, axis=1).min()
                for p in points]
    np.testing.assert_allclose(point_to_mesh_distance(points, vertices, faces, group_size=4, chunk=7), expected,
                               atol=1e-15)


def test_surface_error_of_a_square_shifted_along_its_normal_is_exact():
    vertices, faces = grid_square()
    rot = axis_angle_to_matrix(torch.tensor([0.4, -0.7, 0.2], dtype=torch.float64)).numpy()
    tilted = vertices @ rot.T + [0.02, -0.05, 0.4]
    shifted = tilted + 0.003 * rot[:, 2]  # 3 mm along the square's normal
    assert surface_error_mm(shifted, faces, tilted, faces, samples=3000) == pytest.approx(3.0, abs=1e-9)
    assert surface_error_mm(tilted, faces, tilted, faces, samples=3000) == pytest.approx(0.0, abs=1e-9)


def test_surface_error_of_concentric_spheres_is_the_radius_difference():
    inner, faces = icosphere(0.05)
    outer = inner * 1.1  # radii 50 mm and 55 mm
    error = surface_error_mm(torch.tensor(outer), torch.tensor(faces), inner, faces, samples=4000)
    assert error == pytest.approx(5.0, rel=5e-3)
    assert error == surface_error_mm(outer, faces, inner, faces, samples=4000)  # seeded
