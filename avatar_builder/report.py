"""The build report: input views next to the avatar's renders, and the loss curves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from harp_track.visualize import to_uint8

from .optimize import STAGES, AvatarProblem, Solution


def write_report(path: Path, problem: AvatarProblem, solution: Solution, columns: int = 6) -> Path:
    """A PNG: a row of input crops, a row of renders of the optimized avatar in the same views,
    and the loss per step with the stage boundaries."""
    n = len(problem.views.cameras)
    idx = np.linspace(0, n - 1, min(columns, n)).round().astype(int).tolist()
    with torch.no_grad():
        shaded = problem.render(idx, problem.posed(idx).vertices, problem.views.images[idx])
    top = np.concatenate([to_uint8(problem.views.images[i]) for i in idx], 1)
    bottom = np.concatenate([to_uint8(shaded.image[k]) for k in range(len(idx))], 1)
    plot = _loss_plot(solution.history, top.shape[1], 200)
    image = np.concatenate([top, bottom, plot], 0)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _loss_plot(history: list[dict], width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: log10 of the total loss per step, stages in different colours."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    if not history:
        return canvas
    totals = np.log10(np.array([sum(v for k, v in h.items() if k != "stage") for h in history]) + 1e-8)
    stages = np.array([h["stage"] for h in history])
    lo, hi = totals.min(), max(totals.max(), totals.min() + 1e-6)
    xs = np.linspace(10, width - 10, len(totals))
    ys = height - 20 - (totals - lo) / (hi - lo) * (height - 40)
    colours = [(200, 60, 40), (40, 120, 200), (40, 160, 60)]
    for k in range(1, len(totals)):
        cv2.line(canvas, (int(xs[k - 1]), int(ys[k - 1])), (int(xs[k]), int(ys[k])), colours[stages[k] % 3], 1,
                 cv2.LINE_AA)
    for s, name in enumerate(STAGES):
        cv2.putText(canvas, name, (10 + 110 * s, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colours[s], 1, cv2.LINE_AA)
    cv2.putText(canvas, f"log10 loss {hi:.2f} .. {lo:.2f}", (width - 220, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
