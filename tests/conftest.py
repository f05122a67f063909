"""Shared fixtures: deterministic seeds, single-threaded determinism, temporary cache dirs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path, monkeypatch):
    torch.manual_seed(0)
    # never write into the user's cache from tests
    monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / "advwsl_home"))
    yield
