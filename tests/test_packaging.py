"""A wheel install (not the editable one the tests run in) finds the data files it ships: the
open hand model and the ONNX landmark models (the ONNX path once pointed into the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from pathlib import Path
import harp_track
from harp_track.hand import load_hand_model
from harp_track.landmarks import create_detector
assert Path(harp_track.__file__).is_relative_to(Path(sys.argv[1])), harp_track.__file__
load_hand_model()
create_detector("onnx", max_hands=1).close()
import avatar_builder, demos.cli  # the other two packages ship too
print("installed copy works")
"""


def test_a_wheel_install_finds_its_models(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(target), str(ROOT)], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    # Run outside the checkout, so that nothing resolves through the source tree.
    out = subprocess.run([sys.executable, "-c", CHECK, str(target)], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "installed copy works" in out.stdout
