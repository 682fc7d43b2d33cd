"""Square crops around the hand (the optimizer's views), each with its own camera, and hand
masks: user-given ones, or GrabCut seeded by the projected coarse mesh (no downloaded model)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from harp_track import Camera, HandModel
from harp_track.fit.crop import crop_camera, hand_box
from harp_track.render import projection_from_intrinsics, rasterize, transform_points

from .coarse import CoarseFit

GRABCUT_ITERATIONS = 3


@dataclasses.dataclass
class Views:
    """N crops of S x S pixels. images (N, S, S, 3) float32 in [0, 1]; masks (N, S, S) float32
    hand masks; valid (N, S, S) float32, 0 where the crop left the source image; interior
    (N, S, S) float32, the mask shrunk by a couple of pixels (where colour surely is the hand's:
    a texel fitted to an edge pixel would learn the background); cameras: each
    crop's intrinsics; projections (N, 4, 4); landmarks (N, 21, 2) crop pixels; frame_index (N,)
    the source frames' indices; mask_given (N,) bool, True where the user gave the mask (it is
    kept as given), False where GrabCut made it."""

    images: torch.Tensor
    masks: torch.Tensor
    valid: torch.Tensor
    interior: torch.Tensor
    cameras: list[Camera]
    projections: torch.Tensor
    landmarks: torch.Tensor
    frame_index: np.ndarray
    mask_given: np.ndarray

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def to(self, device: str | torch.device) -> "Views":
        """The views with their tensors on `device`."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})


def posed_vertices(fit: CoarseFit, model: HandModel) -> torch.Tensor:
    """(N, V, 3) the coarse fit's meshes in camera space (metres)."""
    with torch.no_grad():
        return model(global_orient=torch.from_numpy(fit.global_orient), pose=torch.from_numpy(fit.pose),
                     shape=torch.from_numpy(fit.shape)[None].expand(len(fit.frames), -1),
                     transl=torch.from_numpy(fit.transl)).vertices


def crop_views(fit: CoarseFit, model: HandModel, size: int = 256, margin: float = 0.2,
               grabcut_iterations: int = GRABCUT_ITERATIONS) -> Views:
    """Crop every frame to a square around its coarse mesh (plus `margin` of the box on each side)
    resampled to size x size, and make its hand mask."""
    vertices = posed_vertices(fit, model)
    images, masks, valid, cameras, marks = [], [], [], [], []
    for i, frame in enumerate(fit.frames):
        cam = fit.cameras[i]
        x0, y0, box = hand_box(cam.project(vertices[i]).numpy(), margin)
        crop, inside = _crop(frame.image, x0, y0, box, size)
        s = size / box
        crop_cam = crop_camera(cam, (x0, y0, box), size)
        if frame.mask is not None:
            mask, _ = _crop(frame.mask.astype(np.uint8)[..., None].repeat(3, -1) * 255, x0, y0, box, size)
            mask = mask[..., 0] > 127
        else:
            mask = _grabcut(crop, _silhouette(vertices[i:i + 1], model, crop_cam, size), inside, grabcut_iterations)
        images.append(crop)
        masks.append(mask & inside)
        valid.append(inside)
        cameras.append(crop_cam)
        marks.append((fit.landmarks[i] - np.array([x0, y0])) * s)
    projections = torch.stack([projection_from_intrinsics(c.fx, c.fy, c.cx, c.cy, (size, size)) for c in cameras])
    return Views(images=torch.from_numpy(np.stack(images)).float() / 255.0,
                 masks=torch.from_numpy(np.stack(masks)).float(), valid=torch.from_numpy(np.stack(valid)).float(),
                 interior=_interior(np.stack(masks)),
                 cameras=cameras, projections=projections.float(),
                 landmarks=torch.from_numpy(np.stack(marks)).float(),
                 frame_index=np.array([f.index for f in fit.frames]),
                 mask_given=np.array([f.mask is not None for f in fit.frames]))


def reseeded_masks(views: Views, silhouettes: np.ndarray, iterations: int = GRABCUT_ITERATIONS) -> Views:
    """The views with GrabCut's masks made again, seeded by `silhouettes` (N, S, S) bool, the
    avatar's own after the geometry stage: a far closer seed than the coarse mesh's (on our
    synthetic subject its silhouettes overlap the true masks at IoU 0.71, and two of 50 masks
    seeded from them came out at IoU 0.72 and 0.79). User-given masks are kept."""
    images = (views.images.cpu().numpy() * 255).round().astype(np.uint8)
    inside = views.valid.cpu().numpy() > 0.5
    masks = views.masks.cpu().numpy() > 0.5
    for k in np.flatnonzero(~views.mask_given):
        masks[k] = _grabcut(images[k], silhouettes[k], inside[k], iterations) & inside[k]
    device = views.masks.device
    return dataclasses.replace(views, masks=torch.from_numpy(masks).float().to(device),
                               interior=_interior(masks).to(device))


def _interior(masks: np.ndarray) -> torch.Tensor:
    """(N, S, S) float32: the masks shrunk by two pixels."""
    shrink = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    return torch.from_numpy(np.stack([cv2.erode(m.astype(np.uint8), shrink) > 0 for m in masks])).float()


def _crop(image: np.ndarray, x0: int, y0: int, box: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The box [x0, x0 + box) x [y0, y0 + box) of an (H, W, 3) uint8 image resampled to size x size
    (zeros outside the image), and the (size, size) bool mask of where it was inside."""
    height, width = image.shape[:2]
    region = np.zeros((box, box, 3), np.uint8)
    inside = np.zeros((box, box), np.uint8)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + box, width), min(y0 + box, height)
    if xb > xa and yb > ya:
        region[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
        inside[ya - y0:yb - y0, xa - x0:xb - x0] = 255
    interp = cv2.INTER_AREA if box > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp), cv2.resize(inside, (size, size)) > 127


def _silhouette(vertices: torch.Tensor, model: HandModel, camera: Camera, size: int) -> np.ndarray:
    """(size, size) bool: where the mesh covers the crop."""
    projection = projection_from_intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, (size, size))
    with torch.no_grad():
        rast, _ = rasterize(transform_points(vertices, projection), model.faces.to(torch.int32), (size, size))
    return rast[0, ..., 3].numpy() > 0


def _grabcut(image: np.ndarray, silhouette: np.ndarray, inside: np.ndarray, iterations: int) -> np.ndarray:
    """Refine the coarse silhouette to the hand's true outline with GrabCut: the eroded silhouette
    is sure hand, a band around it is uncertain, beyond the band is sure background."""
    extent = max(float(np.sqrt(silhouette.sum())), 4.0)
    grow = max(int(0.12 * extent), 2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    sil = silhouette.astype(np.uint8)
    core = cv2.erode(sil, kernel)
    near = cv2.dilate(sil, kernel)
    gc = np.full(sil.shape, cv2.GC_BGD, np.uint8)
    gc[near > 0] = cv2.GC_PR_BGD
    gc[sil > 0] = cv2.GC_PR_FGD
    gc[core > 0] = cv2.GC_FGD
    gc[~inside] = cv2.GC_BGD
    if (gc == cv2.GC_FGD).sum() == 0 or (gc == cv2.GC_BGD).sum() == 0:
        return silhouette
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's process-wide RNG: without a fixed
    # seed, two builds of one clip got different masks (286 pixels over 24 views) and avatars.
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
