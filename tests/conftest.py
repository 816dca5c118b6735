"""Shared fixtures: every test gets its own FULCRUM_HOME so nothing touches ~/.fulcrum."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def fulcrum_home(tmp_path, monkeypatch):
    home = tmp_path / "fulcrum-home"
    monkeypatch.setenv("FULCRUM_HOME", str(home))
    return home
