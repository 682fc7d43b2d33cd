"""`tools/tune_filter.parse_settings`, which both tuning tools use to read `--set NAME=VALUE`."""

import importlib.util
from pathlib import Path

import pytest

from harp_track.fit.filtering import PoseFilterSettings
from harp_track.fit.refine import RefineSettings

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _parse_settings():
    spec = importlib.util.spec_from_file_location("tune_filter", TOOLS / "tune_filter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_settings


def test_overrides_keep_each_fields_type():
    parse = _parse_settings()
    s = parse(["crop_size=128", "blur=2", "shadows=true", "render_backend=nvdiffrast"], RefineSettings())
    assert s.crop_size == 128 and isinstance(s.crop_size, int)
    assert s.blur == 2.0 and s.shadows is True and s.render_backend == "nvdiffrast"
    assert s.iterations == RefineSettings().iterations  # untouched fields keep their defaults
    f = parse(["angles=0.5,2", "detail_time_constant=none"])
    assert f == PoseFilterSettings(angles=(0.5, 2.0), detail_time_constant=None)


def test_an_unknown_setting_is_named():
    with pytest.raises(SystemExit, match="unknown setting 'bogus'.*RefineSettings"):
        _parse_settings()(["bogus=1"], RefineSettings())
