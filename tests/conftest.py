"""Fixtures shared across test folders."""

import sys
import types

import pytest


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A stand-in `chumpy.ch.Ch` so the test can write pickles shaped like the official files."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self.dterms = ("x",)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    return Ch
