"""Fit the hand model to 21 landmarks: metric pose in camera space from 2D + MediaPipe world 3D.

The 2D landmarks and the intrinsics fix where the hand is in the image; MediaPipe's world
landmarks (metric, hand-centred, camera-aligned; as the tracker and the avatar builder pass them,
with their depths averaged with the image landmarks', `HandLandmarks.hand_xyz`) fix its
articulation and which way it faces; the model's known size fixes the depth. We minimise, over
the wrist rotation, the translation and the free anatomical angles (clamped to their limits),

    sum_k |proj(x_k) - u_k|^2 / s2d^2  +  sum_k |(x_k - mean x) - c (w_k - mean w)|^2 / s3d^2  +  priors

with a few Levenberg-Marquardt steps in float64 numpy. The Jacobian is taken by forward
differences, all ~30 perturbations in one call of a numba keypoint kernel (kinematics.py): far
cheaper per frame than autodiff through the general torch layer. `c` rescales MediaPipe's world hand (drawn at a typical size) to the
model's, so the 3D term constrains shape of the pose, not size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch

from ..camera import Camera
from ..hand.model import HandModel
from ..hand.rotations import matrix_to_axis_angle
from ..keypoints import KEYPOINT_PARENTS
from .kinematics import KeypointKinematics, rotation_matrix

# Keypoints on the palm move little with finger articulation: they start the rotation estimate.
PALM_KEYPOINTS = (0, 1, 5, 9, 13, 17)
# Degrees of freedom the fit leaves out: the wrist duplicates the global rotation as far as the
# 21 landmarks can tell, and the metacarpals barely move.
FIXED_ROLES = ("wrist", "metacarpal")
MIN_RANGE_RAD = np.radians(10.0)


@dataclasses.dataclass
class FitWeights:
    """Residual scales. sigma_2d is a fraction of the hand's size in the image (so the balance does
    not depend on how close the hand is); sigma_3d in metres; priors in radians. Chosen on
    synthetic clips with MediaPipe in the loop (our data, with ground truth): against (0.015,
    0.012) they lower the 2D, hand-centred and camera-space errors; a tighter 2D (0.006) was a
    little better again but needs many more iterations to converge. sigma_temporal (the pull of
    the free angles towards the previous frame's): on three synthetic clips, 0.15 against 0.35
    cut the 2D jitter by 10% and the 2D error slightly, both at the full frame rate and 4x
    subsampled (no lag); 0.06 and below lag on the subsampled clips."""

    sigma_2d: float = 0.01
    sigma_3d: float = 0.02
    sigma_pose_prior: float = 1.2
    sigma_temporal: float = 0.15


@dataclasses.dataclass
class HandFit:
    """A fitted hand. rotation (3, 3) and transl (3,) place the model's root frame in camera
    space; angles (P, 3) anatomical radians; keypoints (21, 3) metres, camera space;
    reprojection_px: mean 2D distance to the landmarks."""

    rotation: torch.Tensor
    transl: torch.Tensor
    angles: torch.Tensor
    keypoints: torch.Tensor
    reprojection_px: float
    iterations: int


class LandmarkFitter:
    """Fits one hand model (one side, one shape) to landmarks, frame after frame.

    shape: (1, K) the user's shape (from an avatar) or None for the model's mean hand.
    """

    def __init__(self, model: HandModel, shape: torch.Tensor | None = None,
                 weights: FitWeights | None = None, iterations: int = 4, init_iterations: int = 25,
                 restart_fraction: float = 0.03):
        self.model = model
        self.shape = shape
        self.weights = weights or FitWeights()
        self.iterations, self.init_iterations = iterations, init_iterations
        self.restart_fraction = restart_fraction  # of the hand's image size, in mean reprojection error
        anatomy = model.anatomy
        self._kinematics = KeypointKinematics(model, shape)
        self._lower, self._upper = anatomy.lower.double().numpy(), anatomy.upper.double().numpy()
        free = [(j, k) for j, role in enumerate(anatomy.roles) for k in range(3)
                if role not in FIXED_ROLES and self._upper[j, k] - self._lower[j, k] >= MIN_RANGE_RAD]
        self._free = tuple(np.array(free).T)
        self._bones = np.array([(k, p) for k, p in enumerate(KEYPOINT_PARENTS) if p >= 0])
        rest = self._keypoints(np.zeros((1, 3)), np.eye(3), np.zeros((1, 3)), np.zeros((1, *self._lower.shape)))[0]
        # Bone lengths barely change with pose (the fingertip bones a little): a pose-free size.
        self._size = self._skeleton_size(rest)

    def model_inputs(self, fit: HandFit) -> dict[str, torch.Tensor | None]:
        """Arguments for `model(...)` that reproduce a fit: (1, ...) global_orient, pose, shape, transl."""
        # The model turns about its root joint (the origin for the open model, not for MANO).
        root = torch.as_tensor(self._kinematics.root, dtype=torch.float32)
        return dict(global_orient=matrix_to_axis_angle(fit.rotation)[None],
                    pose=self.model.anatomy.to_pose(fit.angles[None]),
                    shape=self.shape, transl=(fit.transl - root)[None])

    def keypoints(self, fit: HandFit) -> np.ndarray:
        """(21, 3) camera-space keypoints of a (possibly filtered) fit, metres."""
        return self._keypoints(*self._kinematics_args(fit, clamp=False))[0]

    def posed(self, fit: HandFit) -> tuple[np.ndarray, np.ndarray]:
        """(21, 3) keypoints and (V, 3) vertices of a (possibly filtered) fit, metres, camera
        space, float64, with its angles held within their limits as `model_inputs` holds them:
        what `model(**model_inputs(fit))` gives, by the numba kinematics (a torch model call
        costs more in per-op overhead than the arithmetic)."""
        args = self._kinematics_args(fit, clamp=True)
        return self._keypoints(*args)[0], self._kinematics.vertices(None, *args)[0]

    def _kinematics_args(self, fit: HandFit, clamp: bool) -> tuple[np.ndarray, ...]:
        """A fit as the kinematics' (rotvec, rotation0, transl, angles) batch of one."""
        angles = fit.angles.double().numpy()
        if clamp:
            angles = np.clip(angles, self._lower, self._upper)
        return np.zeros((1, 3)), fit.rotation.double().numpy(), fit.transl.double().numpy()[None], angles[None]

    def _keypoints(self, rotvec, rotation0, transl, angles) -> np.ndarray:
        return self._kinematics(rotvec, rotation0, transl, angles)

    def _skeleton_size(self, keypoints: np.ndarray) -> float:
        return float(np.linalg.norm(keypoints[self._bones[:, 0]] - keypoints[self._bones[:, 1]], axis=-1).sum())

    def fit(self, keypoints_2d: np.ndarray | torch.Tensor, world: np.ndarray | torch.Tensor | None,
            camera: Camera, previous: HandFit | None = None) -> HandFit:
        """Fit to (21, 2) pixel landmarks and the hand's (21, 3) shape in metres, camera axes
        (`HandLandmarks.hand_xyz`, or MediaPipe's world landmarks; None to use 2D only, which
        needs `previous` for the articulation), warm-started from `previous`.

        A warm start that ends far from the landmarks (a fast motion, a flip) is retried from
        scratch and the better of the two kept, so one bad frame cannot derail the track.
        Without a previous frame, a fit that ends far from the landmarks is retried with the
        world depths mirrored, and the closer kept: the landmark model sometimes reads a hand's
        depths the wrong way round (a fist seen from its back read as one seen from its palm),
        and the 3D term then fights the 2D landmarks. Within a track the previous pose carries
        the depth order instead: tried there too, the mirrored reading won on frames where an
        occluder had corrupted the landmarks (our synthetic clips) and led the track astray.
        """
        uv = np.asarray(keypoints_2d, dtype=np.float64)
        world_np = None if world is None else np.asarray(world, dtype=np.float64)
        if uv.shape != (21, 2) or (world_np is not None and world_np.shape != (21, 3)):
            raise ValueError(f"expected (21, 2) image and (21, 3) world landmarks, got {uv.shape}"
                             f" and {None if world_np is None else world_np.shape}")
        fit = self._fit(uv, world_np, camera, previous)
        extent = float(np.linalg.norm(uv.max(0) - uv.min(0)))
        if world_np is None or fit.reprojection_px <= max(3.0, self.restart_fraction * extent):
            return fit
        if previous is not None:
            fresh = self._fit(uv, world_np, camera, None)
            return fresh if fresh.reprojection_px < fit.reprojection_px else fit
        mirrored = self._fit(uv, _mirrored_depth(world_np), camera, None)
        return mirrored if mirrored.reprojection_px < fit.reprojection_px else fit

    def _fit(self, uv: np.ndarray, world: np.ndarray | None, camera: Camera, previous: HandFit | None) -> HandFit:
        if previous is None:
            if world is None:
                raise ValueError("the first frame of a hand needs world landmarks to start from")
            problem = self.problem(uv, world, camera, None)
            angles0 = np.zeros_like(self._lower)
            rotation0, transl0 = self._initial_placement(uv, problem.target_3d, angles0, problem.focal, problem.centre)
            problem = dataclasses.replace(problem, rotation0=rotation0, angles0=angles0)
            x0, iterations = problem.start(transl0), self.init_iterations
        else:
            problem = self.problem(uv, world, camera, previous)
            x0, iterations = problem.start(previous.transl.double().numpy()), self.iterations
        x, keypoints, steps = _levenberg_marquardt(problem, x0, iterations)
        return problem.to_fit(x, keypoints, steps)

    def problem(self, keypoints_2d: np.ndarray, world: np.ndarray | None, camera: Camera,
                previous: HandFit | None, start: HandFit | None = None) -> "LandmarkProblem":
        """The least-squares problem of one frame, linearized about `start` (default `previous`;
        the zero pose when both are None): its residuals as a function of the parameter vector
        x = (rotation increment (3), translation (3) metres, free anatomical angles)."""
        uv = np.asarray(keypoints_2d, dtype=np.float64)
        world = None if world is None else np.asarray(world, dtype=np.float64)
        start = start or previous
        extent = max(float(np.linalg.norm(uv.max(0) - uv.min(0))), 1.0)
        target_3d = None
        if world is not None:
            target_3d = (world - world.mean(0)) * (self._size / max(self._skeleton_size(world), 1e-6))
        if start is None:
            angles0, rotation0 = np.zeros_like(self._lower), np.eye(3)
        else:
            angles0, rotation0 = start.angles.double().numpy(), start.rotation.double().numpy()
        return LandmarkProblem(
            fitter=self, uv=uv, target_3d=target_3d, focal=np.array([camera.fx, camera.fy]),
            centre=np.array([camera.cx, camera.cy]), scale_2d=1.0 / (self.weights.sigma_2d * extent),
            rotation0=rotation0, angles0=angles0,
            previous_free=None if previous is None else previous.angles.double().numpy()[self._free])

    def _initial_placement(self, uv: np.ndarray, target_3d: np.ndarray, angles: np.ndarray,
                           focal: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotation by Kabsch on the palm keypoints against the world landmarks; translation by
        linear least squares on the reprojection of all keypoints given that rotation."""
        local = self._keypoints(np.zeros((1, 3)), np.eye(3), np.zeros((1, 3)), angles[None])[0]
        palm = list(PALM_KEYPOINTS)
        a = local[palm] - local[palm].mean(0)
        b = target_3d[palm] - target_3d[palm].mean(0)
        u, _, vt = np.linalg.svd(b.T @ a)
        d = np.sign(np.linalg.det(u @ vt))
        rotation = u @ np.diag([1.0, 1.0, d]) @ vt
        p = local @ rotation.T
        ax, ay = (uv[:, 0] - centre[0]) / focal[0], (uv[:, 1] - centre[1]) / focal[1]
        # (u - cx) / fx * (Z + tz) = X + tx  ->  tx - ax tz = ax Z - X  (and likewise for y)
        zeros, ones = np.zeros_like(ax), np.ones_like(ax)
        A = np.concatenate([np.stack([ones, zeros, -ax], 1), np.stack([zeros, ones, -ay], 1)])
        rhs = np.concatenate([ax * p[:, 2] - p[:, 0], ay * p[:, 2] - p[:, 1]])
        return rotation, np.linalg.lstsq(A, rhs, rcond=None)[0]


def _mirrored_depth(world: np.ndarray) -> np.ndarray:
    """(21, 3) landmarks with their depths mirrored about the hand's mean depth."""
    mirrored = world.copy()
    mirrored[:, 2] = 2.0 * world[:, 2].mean() - world[:, 2]
    return mirrored


@dataclasses.dataclass
class LandmarkProblem:
    """One frame's landmark residuals r(x) about a base pose (rotation0, angles0): x (D,) =
    (rotation increment applied before rotation0 (3), root translation (3) metres, the fitter's
    free anatomical angles). Residuals are scaled to unit noise, so |r|^2 is the cost."""

    fitter: LandmarkFitter
    uv: np.ndarray
    target_3d: np.ndarray | None
    focal: np.ndarray
    centre: np.ndarray
    scale_2d: float
    rotation0: np.ndarray
    angles0: np.ndarray
    previous_free: np.ndarray | None

    @property
    def free(self) -> tuple[np.ndarray, np.ndarray]:
        return self.fitter._free

    @property
    def lower(self) -> np.ndarray:
        return self.fitter._lower[self.free]

    @property
    def upper(self) -> np.ndarray:
        return self.fitter._upper[self.free]

    def movable(self, x: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """Indices of the parameters a descent step from x (D,) may move, given the cost's
        gradient (D,) there: all but the angles held at a limit that the step would push past it.
        Solving for those too and clipping afterwards turns the step away from descent, and the
        solver crawls (measured on real frames: 4.3 px mean reprojection after 4 steps, 2.8 px
        with them held)."""
        angles, g = x[6:], gradient[6:]
        stuck = ((angles <= self.lower + 1e-9) & (g > 0)) | ((angles >= self.upper - 1e-9) & (g < 0))
        return np.concatenate([np.arange(6), 6 + np.flatnonzero(~stuck)])

    def start(self, transl: np.ndarray) -> np.ndarray:
        """x at the base pose with root translation `transl` (3,) metres."""
        return np.concatenate([np.zeros(3), transl, self.angles0[self.free]])

    def angles(self, x: np.ndarray) -> np.ndarray:
        """(N, P, 3) anatomical angles of parameter vectors (N, D)."""
        angles = np.repeat(self.angles0[None], len(x), 0)
        angles[:, self.free[0], self.free[1]] = x[:, 6:]
        return angles

    def residuals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) parameter vectors -> (N, M) residuals and (N, 21, 3) camera-space keypoints."""
        w = self.fitter.weights
        kp = self.fitter._keypoints(x[:, :3], self.rotation0, x[:, 3:6], self.angles(x))
        proj = kp[..., :2] / kp[..., 2:3] * self.focal + self.centre
        parts = [((proj - self.uv) * self.scale_2d).reshape(len(x), -1), x[:, 6:] / w.sigma_pose_prior]
        if self.target_3d is not None:
            parts.append(((kp - kp.mean(1, keepdims=True)) - self.target_3d).reshape(len(x), -1) / w.sigma_3d)
        if self.previous_free is not None:
            parts.append((x[:, 6:] - self.previous_free) / w.sigma_temporal)
        return np.concatenate(parts, 1), kp

    def jacobian(self, x: np.ndarray, r: np.ndarray | None = None, step: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Residuals r (M,) at x (D,) (pass them when known) and their Jacobian (M, D) by forward
        differences, all perturbations in one batched evaluation."""
        if r is None:
            r = self.residuals(x[None])[0][0]
        return r, ((self.residuals(x + step * np.eye(len(x)))[0] - r) / step).T

    def to_fit(self, x: np.ndarray, keypoints: np.ndarray | None = None, iterations: int = 0) -> HandFit:
        """The `HandFit` at parameter vector x (D,)."""
        if keypoints is None:
            keypoints = self.residuals(x[None])[1][0]
        proj = keypoints[:, :2] / keypoints[:, 2:3] * self.focal + self.centre
        f32 = torch.float32
        return HandFit(rotation=torch.as_tensor(rotation_matrix(x[:3]) @ self.rotation0, dtype=f32),
                       transl=torch.as_tensor(x[3:6], dtype=f32), angles=torch.as_tensor(self.angles(x[None])[0], dtype=f32),
                       keypoints=torch.as_tensor(keypoints, dtype=f32),
                       reprojection_px=float(np.linalg.norm(proj - self.uv, axis=-1).mean()), iterations=iterations)


def levenberg_marquardt(problem: LandmarkProblem, x: np.ndarray, evaluate: Callable[[np.ndarray], tuple[float, Any]],
                        normal_equations: Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray]],
                        iterations: int, tolerance: float, growth: float = 4.0,
                        start: tuple[float, Any] | None = None) -> tuple[np.ndarray, Any, int]:
    """Minimise a cost over x (D,) (`problem`'s parameter vector) within its angle limits, from x.

    evaluate(x) -> (cost, state at x); normal_equations(x, state) -> Gauss-Newton H (D, D) and
    gradient g (D,) of half the cost; start: evaluate(x) when the caller has it already. Angles
    held at a limit are left out of a step, the others clamped to the limits after it; a step is
    kept only if it lowers the exact cost (the damping grows by `growth` until it does, four
    tries); the solver stops when a step gains less than `tolerance` of the cost. Returns x, its
    state and the number of steps kept."""
    cost, state = start or evaluate(x)
    damping, accepted = 1e-3, 0
    for _ in range(iterations):
        H, g = normal_equations(x, state)
        free = problem.movable(x, g)
        H, g = H[np.ix_(free, free)], g[free]
        for _ in range(4):
            candidate = x.copy()
            candidate[free] -= np.linalg.solve(H + damping * np.diag(H.diagonal() + 1e-9), g)
            candidate[6:] = np.clip(candidate[6:], problem.lower, problem.upper)
            trial_cost, trial = evaluate(candidate)
            if trial_cost < cost:
                damping = max(damping / 3.0, 1e-7)
                break
            damping *= growth
        else:
            break
        converged = cost - trial_cost < tolerance * cost
        x, cost, state, accepted = candidate, trial_cost, trial, accepted + 1
        if converged:
            break
    return x, state, accepted


def _levenberg_marquardt(problem: LandmarkProblem, x: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise |r(x)|^2 over x (D,). Returns x, the keypoints at x and the number of steps kept."""
    def evaluate(at: np.ndarray) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        r, kp = problem.residuals(at[None])
        return float(r[0] @ r[0]), (r[0], kp[0])

    def normal_equations(at: np.ndarray, state: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        r = state[0]
        J = problem.jacobian(at, r)[1]
        return J.T @ J, J.T @ r

    x, (_, keypoints), steps = levenberg_marquardt(problem, x, evaluate, normal_equations, iterations, 1e-4)
    return x, keypoints, steps
