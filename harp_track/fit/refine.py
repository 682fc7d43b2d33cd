"""Appearance-consistency refinement: the landmark fit of a frame, corrected so that the user's
avatar, rendered at that pose, lines up with the frame.

Direct image alignment with a 3D model (Lucas-Kanade with the avatar as the template): the avatar
is rendered once per frame, at the landmark fit, into a square crop around the hand
(`RefineSettings.crop_size` pixels). Every covered pixel gives a surface sample, a point fixed on a
triangle (its barycentrics) with the colour the avatar shows there. Moving the pose parameters x
(the landmark fit's own: wrist rotation, translation in metres, free anatomical angles within their
limits) moves the samples; we minimise

    c |r_landmarks(x)|^2  +  w / n * sum_samples [ rho(gain * colour + bias - I(u(x))) + w_s rho_s(1 - P(u(x))) ]
                          +  w / n * sum_outline w_s w_o rho_s(0.5 - P(u(x)))  +  |t(x) - t_previous|^2 / sigma_motion^2

- r_landmarks: the landmark fit's residuals (2D, MediaPipe's 3D shape, pose prior, the temporal
  term towards the previous frame), weighted by the landmark confidence c.
- I: the crop, lightly blurred (a wider basin); u(x): where a sample projects. The per-channel gain
  and bias, solved in closed form at every step, absorb exposure and white balance.
- P: the probability that a pixel shows the hand, from colour histograms of the crop inside and
  outside the rendered silhouette (the pixel-wise posterior of region-based trackers such as PWP3D):
  samples pushed off the hand are pulled back where shading alone would not say so.
- The outline: surface points on the silhouette's inner edge (covered pixels beside uncovered
  ones) should read P = 0.5, the hand's edge in the frame. Interior samples alone are one-sided:
  any render that fits inside the hand satisfies them, so the pose drifted towards a smaller hand,
  farther away. Measured with the exact avatar, started at the true pose and moved by the image
  alone (`benchmarks.gpu`'s clip): 3.3 px and 3.6% too deep without the outline, 1.0 px and 0.4%
  with it; from 7 px off, the image alone brought the pose to 4.7 px without it, 2.1 px with it.
  n counts the interior samples alone, so `outline_weight=0` is the refinement without them.
- t_previous: the wrist position refined in the previous frame. The image pins depth only through
  the hand's apparent size, a weak cue: without this term depth jittered (measured on our
  synthetic clips: 10 mm/frame^2 of camera-space jitter, 5 with it, and lower error).
- c falls with the share of samples the avatar explains at the start (below), so a frame the
  avatar cannot explain leans on its landmarks.
- rho: Geman-McClure kernels. They are bounded, so samples the avatar cannot explain (an object in
  front of the hand, a sleeve, motion blur) stop pulling once they are clear outliers; the share of
  inliers is the agreement reported with the hand.

Gauss-Newton with Levenberg-Marquardt damping: the sample Jacobian is the image gradient times the
projection's times d(sample)/dx. d(sample)/dx is taken once per pass (`RefineSettings.passes`,
one by default), its rigid part in closed form and its joint-angle part by forward differences in
one batched call of the landmark fit's numba kinematics; within the pass the samples then follow
the pose to first order. The landmark Jacobian is taken again at every step (the rotation makes it
change too much to keep). A step is kept only if it lowers the exact total cost; the refinement
stops when the cost stops falling.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..avatar import Avatar
from ..camera import Camera
from ..render import ShadowSettings, select_backend
from .crop import Crop, crop_square, hand_box
from .image_term import evaluate_samples, image_channels, image_normal_equations
from .landmark_fit import HandFit, LandmarkFitter, LandmarkProblem, levenberg_marquardt


@dataclasses.dataclass
class RefineSettings:
    """crop_size: pixels a side of the crop the avatar is rendered into; margin: of the hand's
    box on each side; sample_spacing: crop pixels between surface samples in each direction (a
    lattice fixed in the crop); max_samples: a cap on their number (the spacing grows past it);
    passes: renders of the samples (each pass renders the avatar again at the pose reached, so
    which surface shows and where it is are exact again, then takes up to `iterations`
    Gauss-Newton steps; a second pass
    helped single frames with large landmark errors, Procrustes 8.4 -> 7.6 mm on the refinement
    tests' scenes, but not tracked clips, where the previous frame already starts it close);
    blur: Gaussian sigma (crop pixels) of the image the samples read;
    sigma_color, sigma_hand: scales of the robust kernels (intensity, probability); image_weight:
    the image term's weight in units of one unit-noise landmark residual; hand_weight: the hand
    probability against colour; tolerance: relative cost decrease below which the refinement
    stops; shadows: render the avatar's self-shadows from its capture light; sigma_motion: metres,
    how far the wrist is expected to move from the previous frame's refined position (the image
    pins depth only through the hand's apparent size, so without it depth jitters); outline_weight:
    an outline sample's weight against an interior sample's (1 left the least bias at the true
    pose; 0 turns the outline off); render_backend:
    "torch" or, on CUDA, "nvdiffrast" (`render.select_backend`). Chosen on our synthetic clips
    (never on the shared real frames)."""

    crop_size: int = 96
    margin: float = 0.2
    sample_spacing: int = 3
    max_samples: int = 1000
    iterations: int = 5
    passes: int = 1
    blur: float = 1.0
    sigma_color: float = 0.1
    sigma_hand: float = 0.5
    image_weight: float = 1500.0
    hand_weight: float = 1.0
    tolerance: float = 2e-3
    histogram_bins: int = 12
    shadows: bool = False
    sigma_motion: float = 0.005
    outline_weight: float = 1.0
    render_backend: str = "torch"


@dataclasses.dataclass
class Refinement:
    """fit: the refined pose; agreement: 0..1, the share of the avatar's visible surface whose
    colour the frame confirms (low under occlusion, blur or a wrong pose); iterations: accepted
    steps; cost: total cost before and after the last pass (each pass has samples of its own)."""

    fit: HandFit
    agreement: float
    iterations: int
    cost: tuple[float, float]


@dataclasses.dataclass
class _Samples:
    """Surface samples of one frame: the vertices they read (n_v,), each sample's three corners
    as indices into those (n, 3), barycentrics (n, 3), rendered colour (n, 3), and per sample
    its channels' weights (n, 4) and the hand probability it should read (n,) (interior samples
    first, then the outline's; `image_term.evaluate_samples`). numpy: the Gauss-Newton steps run
    on the CPU in float64 (`image_term`'s kernels; a few hundred samples are too little work for
    a GPU, where every step would also wait for a copy back)."""

    vertex_ids: np.ndarray
    corners: np.ndarray
    barycentrics: np.ndarray
    colour: np.ndarray
    weights: np.ndarray
    hand_target: np.ndarray
    interior: int

    def __len__(self) -> int:
        return len(self.colour)


class AppearanceRefiner:
    """Refines one hand side's landmark fits against its avatar.

    avatar: the avatar of this side (`Avatar.for_side`); fitter: the `LandmarkFitter` of the same
    model (`avatar.hand_model()`), whose residuals are the landmark term; device: where the avatar
    is rendered ("cpu" or "cuda"). The crop, its image channels and the Gauss-Newton steps run on
    the CPU: a few thousand pixels and a few hundred samples cost more in per-op overhead and
    copies than in arithmetic (measured on an H100 machine: crop and channels 2.6 ms a frame on
    CUDA through torch; 1.2 ms on a 2-core CPU through numba, 3 ms through torch).
    """

    def __init__(self, avatar: Avatar, fitter: LandmarkFitter, settings: RefineSettings | None = None,
                 device: str | torch.device = "cpu"):
        if avatar.side != fitter.model.side or avatar.hand.num_vertices != fitter.model.num_vertices:
            raise ValueError(f"the fitter's model ({fitter.model.side}, {fitter.model.num_vertices} vertices) is not "
                             f"this avatar's ({avatar.side}, {avatar.hand.num_vertices} vertices)")
        self.avatar, self.fitter = avatar, fitter
        self.settings = settings or RefineSettings()
        self.device = torch.device(device)
        self._backend = select_backend(self.settings.render_backend, self.device)
        self._faces = np.asarray(avatar.hand.faces, dtype=np.int64)
        self._light = torch.as_tensor(avatar.light_position, dtype=torch.float32, device=self.device)[None]
        s = self.settings
        # Robust kernel scales of the four sampled channels: colour (3), hand (1).
        self._sigma = np.array([s.sigma_color] * 3 + [s.sigma_hand])

    def refine(self, frame: np.ndarray, camera: Camera, fit: HandFit, keypoints_2d: np.ndarray,
               world: np.ndarray | None, previous: HandFit | None = None, confidence: float = 1.0) -> Refinement:
        """Refine `fit`, this frame's landmark fit, against `frame` ((H, W, 3) uint8 RGB).
        keypoints_2d (21, 2) pixels and world (21, 3) metres are the
        landmarks the fit used, `previous` the last frame's fit (the temporal term) and
        `confidence` (0..1) the landmarks' score, the landmark term's weight."""
        s = self.settings
        with torch.no_grad():
            problem = self.fitter.problem(keypoints_2d, world, camera, previous, start=fit)
            x = problem.start(fit.transl.double().numpy())
            box = hand_box(camera.project(fit.keypoints.double()).numpy(), s.margin)
            crop = crop_square(frame, camera, box, s.crop_size)
            samples, alpha = self._samples(x, problem, crop)
            if samples.interior < 30:  # the hand barely shows in its own crop: nothing to align
                return Refinement(fit, 0.0, 0, (np.nan, np.nan))
            image = image_channels(crop.image, alpha, crop.valid, s.histogram_bins, s.blur)
            anchor = None if previous is None else previous.transl.double().numpy()
            weight, accepted = None, 0
            for one_pass in range(s.passes):
                if one_pass:  # the samples and what they see, again at the pose reached
                    samples = self._samples(x, problem, crop)[0]
                    if samples.interior < 30:
                        break
                motion = self._sample_motion(x, problem, samples)
                current = self._evaluate(x, problem, samples, image, crop.camera, 1.0, motion, anchor)
                if weight is None:
                    # Where the avatar explains little of the frame at the start (an occluder, a
                    # sleeve, blur), its outliers' neighbours still pull; trust the landmarks more.
                    weight = max(float(confidence), 0.05) / max(current.agreement, 0.1) ** 2
                current = dataclasses.replace(current, weight=weight)
                start_cost = current.cost
                x, current, steps = self._gauss_newton(x, current, problem, samples, image, crop.camera, motion,
                                                       anchor)
                accepted += steps
                if steps == 0:
                    break
        return Refinement(problem.to_fit(x, current.keypoints, accepted), current.agreement, accepted,
                          (start_cost, current.cost))

    def _gauss_newton(self, x: np.ndarray, current: "_Evaluation", problem: LandmarkProblem, samples: _Samples,
                      image: np.ndarray, camera: Camera, motion: "_SampleMotion",
                      anchor: np.ndarray | None) -> tuple[np.ndarray, "_Evaluation", int]:
        """Levenberg-Marquardt steps from x with the samples following the pose to first order:
        the parameters and evaluation reached, and the number of accepted steps. The landmark
        residuals' Jacobian is taken again at every step: the rotation makes them nonlinear
        enough that one taken at the start turns later steps away from descent (measured: 2D
        error 3.2 px against 2.7, Procrustes 9.4 mm against 8.4, on the refinement tests' scenes)."""
        s = self.settings

        def evaluate(at: np.ndarray) -> tuple[float, _Evaluation]:
            trial = self._evaluate(at, problem, samples, image, camera, current.weight, motion, anchor)
            return trial.cost, trial

        def normal_equations(at: np.ndarray, state: _Evaluation) -> tuple[np.ndarray, np.ndarray]:
            landmark_jacobian = problem.jacobian(at, state.landmark_residuals)[1]
            H, g = state.normal_equations(motion.jacobian, landmark_jacobian, camera, s, samples, self._sigma)
            if anchor is not None:
                H[3:6, 3:6] += np.eye(3) / s.sigma_motion ** 2
                g[3:6] += (at[3:6] - anchor) / s.sigma_motion ** 2
            return H, g

        return levenberg_marquardt(problem, x, evaluate, normal_equations, s.iterations, s.tolerance, growth=8.0,
                                   start=(current.cost, current))

    # ---- the model at parameter vectors -----------------------------------------------------
    def _points(self, x: np.ndarray, problem: LandmarkProblem, samples: _Samples) -> np.ndarray:
        """(N, n, 3) float64 camera-space sample positions for parameter vectors x (N, D) or (D,)."""
        posed = self._posed(samples.vertex_ids, np.atleast_2d(x), problem)
        return np.einsum("nk,bnkd->bnd", samples.barycentrics, posed[:, samples.corners])

    def _posed(self, ids: np.ndarray | None, xs: np.ndarray, problem: LandmarkProblem) -> np.ndarray:
        """(N, n, 3) camera-space positions of vertices `ids` (None: all) at parameter vectors xs
        (N, D), by the fitter's numba kinematics (a torch model call costs more in per-op overhead)."""
        return self.fitter._kinematics.vertices(ids, xs[:, :3], problem.rotation0, xs[:, 3:6], problem.angles(xs))

    def _sample_motion(self, x: np.ndarray, problem: LandmarkProblem, samples: _Samples,
                       step: float = 1e-5) -> "_SampleMotion":
        """The samples at x and their Jacobian: rigid parts in closed form, the joint angles by
        forward differences (one batched kinematics call)."""
        xs = np.concatenate([x[None], x[None] + step * np.eye(len(x))[6:]])
        points = self._points(xs, problem, samples)
        p = points[0]
        # x[:3] turns about the root before rotation0: d p / d omega = -[p - t]x ; d p / d t = I.
        r = p - x[3:6]
        jacobian = np.zeros((len(p), 3, len(x)))
        jacobian[:, 0, 1], jacobian[:, 0, 2] = r[:, 2], -r[:, 1]
        jacobian[:, 1, 0], jacobian[:, 1, 2] = -r[:, 2], r[:, 0]
        jacobian[:, 2, 0], jacobian[:, 2, 1] = r[:, 1], -r[:, 0]
        jacobian[:, :, 3:6] = np.eye(3)
        jacobian[:, :, 6:] = ((points[1:] - p) / step).transpose(1, 2, 0)
        return _SampleMotion(x.copy(), p, jacobian)

    def _samples(self, x: np.ndarray, problem: LandmarkProblem, crop: Crop) -> tuple[_Samples, np.ndarray]:
        """Render the avatar at x into the crop; its interior pixels as surface samples, and the
        (S, S) float32 coverage."""
        s = self.settings
        verts = self._vertices(x, problem)
        shaded = self.avatar.shade(verts, crop.camera, (s.crop_size, s.crop_size), self._light,
                                   shadow=ShadowSettings() if s.shadows else None, backend=self._backend)
        alpha, rast, rgb = (t[0].cpu().numpy() for t in (shaded.alpha[..., 0], shaded.rast, shaded.image))
        covered = rast[..., 3] > 0
        inside = covered & (alpha > 0.99) & (crop.valid > 0)
        # Covered pixels on a lattice fixed in the crop (every sample_spacing-th pixel each way),
        # so consecutive frames sample nearly the same surface points. (A stride through the list
        # of covered pixels shifted every sample whenever the coverage changed, and the pose
        # jittered with them: 2D jitter 1.7-2.4 px/frame² on our synthetic clips, 1.1-1.9 now.)
        spacing = s.sample_spacing
        while True:
            rows, cols = np.nonzero(inside[::spacing, ::spacing])
            if len(rows) <= s.max_samples:
                break
            spacing += 1
        rows, cols = rows * spacing, cols * spacing
        interior = len(rows)
        if s.outline_weight > 0:
            # The outline: covered pixels beside an uncovered one, on diagonals fixed in the crop
            # (a curve meets them at about one pixel in `spacing` whatever its direction).
            edge_rows, edge_cols = np.nonzero(_outline(covered, crop.valid > 0))
            on_diagonal = (edge_rows + edge_cols) % spacing == 0
            rows = np.concatenate([rows, edge_rows[on_diagonal]])
            cols = np.concatenate([cols, edge_cols[on_diagonal]])
        u, v = rast[rows, cols, 0], rast[rows, cols, 1]
        barycentrics = np.stack([u, v, 1 - u - v], 1).astype(np.float64)
        vertex_ids, corners = np.unique(self._faces[rast[rows, cols, 3].astype(np.int64) - 1].ravel(),
                                        return_inverse=True)
        colour = rgb[rows, cols].astype(np.float64)
        weights = np.zeros((len(rows), 4))
        weights[:interior] = [1.0, 1.0, 1.0, s.hand_weight]
        weights[interior:, 3] = s.hand_weight * s.outline_weight
        hand_target = np.where(np.arange(len(rows)) < interior, 1.0, 0.5)
        return _Samples(vertex_ids, corners.reshape(-1, 3), barycentrics, colour, weights, hand_target,
                        interior), alpha

    def _vertices(self, x: np.ndarray, problem: LandmarkProblem) -> torch.Tensor:
        """(1, V, 3) float32 camera-space vertices at x."""
        posed = self._posed(None, x[None], problem)
        return torch.as_tensor(posed, dtype=torch.float32, device=self.device)

    def _evaluate(self, x: np.ndarray, problem: LandmarkProblem, samples: _Samples, image: np.ndarray,
                  camera: Camera, weight: float, motion: "_SampleMotion",
                  anchor: np.ndarray | None = None) -> "_Evaluation":
        """Landmark, image and (given the previous wrist position `anchor`) motion terms at x."""
        r, keypoints = problem.residuals(x[None])
        points = motion.at(x)
        motion_cost = 0.0 if anchor is None else float(((x[3:6] - anchor) ** 2).sum()) / self.settings.sigma_motion ** 2
        return _Evaluation.at(points, samples, image, camera, self.settings, self._sigma, r[0], keypoints[0], weight,
                              motion_cost)


def _outline(covered: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(S, S) bool: covered pixels with an uncovered 4-neighbour inside the frame (the
    silhouette's inner edge; the crop's border and pixels off the frame are no edge)."""
    padded = np.pad(covered, 1, constant_values=True)
    clear = np.pad(valid, 1, constant_values=False)
    size = len(covered)
    edge = np.zeros_like(covered)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= ~padded[dy:dy + size, dx:dx + size] & clear[dy:dy + size, dx:dx + size]
    return edge & covered & valid


@dataclasses.dataclass
class _SampleMotion:
    """The samples (n, 3) at x0 and their Jacobian (n, 3, D). Within a frame the pose moves little,
    so the samples follow it to first order: a model evaluation per trial step would cost more
    than the rest of the step (the landmark residuals stay exact)."""

    x0: np.ndarray
    points: np.ndarray
    jacobian: np.ndarray

    def at(self, x: np.ndarray) -> np.ndarray:
        return self.points + self.jacobian @ (x - self.x0)


@dataclasses.dataclass
class _Evaluation:
    """Costs and residuals at one parameter vector. `weight` is the landmark term's."""

    keypoints: np.ndarray
    landmark_residuals: np.ndarray
    points: np.ndarray  # (n, 3) samples, metres, camera space
    residuals: np.ndarray  # (n, 4): colour (3) and hand (1), in kernel units (divided by sigma)
    gradients: np.ndarray  # (n, 4, 2) of the sampled channels
    agreement: float
    image_cost: float
    motion_cost: float
    weight: float

    @property
    def cost(self) -> float:
        return self.weight * float(self.landmark_residuals @ self.landmark_residuals) + self.image_cost + self.motion_cost

    @classmethod
    def at(cls, points: np.ndarray, samples: _Samples, image: np.ndarray, camera: Camera, s: RefineSettings,
           sigma: np.ndarray, landmark_residuals: np.ndarray, keypoints: np.ndarray,
           weight: float, motion_cost: float) -> "_Evaluation":
        residuals, gradients = np.empty((len(points), 4)), np.empty((len(points), 4, 2))
        rho, agreement = evaluate_samples(points, samples.colour, image, camera.fx, camera.fy, camera.cx,
                                          camera.cy, sigma, samples.weights, samples.hand_target, residuals,
                                          gradients)
        image_cost = s.image_weight / samples.interior * rho
        return cls(keypoints, landmark_residuals, points, residuals, gradients, agreement, image_cost, motion_cost,
                   weight)

    def normal_equations(self, jacobian: np.ndarray, landmark_jacobian: np.ndarray, camera: Camera,
                         s: RefineSettings, samples: _Samples, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Newton H (D, D) and gradient g (D,) of the total cost, both halved (robust
        kernels by iteratively reweighted least squares). jacobian: (n, 3, D) of the samples;
        landmark_jacobian: (M, D) of the landmark residuals."""
        H, g = image_normal_equations(self.points, jacobian, self.residuals, self.gradients, camera.fx, camera.fy,
                                      sigma, samples.weights, s.image_weight / samples.interior)
        Jl, r = landmark_jacobian, self.landmark_residuals
        return H + self.weight * (Jl.T @ Jl), g + self.weight * (Jl.T @ r)
