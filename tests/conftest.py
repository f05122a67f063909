"""Shared fixtures: seeded, single-threaded (the tensors are small; one thread is both faster and steadier
than several on a 2-core machine) and isolated from the user's cache."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # never write into the user's cache from tests
    monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / "advwsl_home"))
    yield
    torch.set_num_threads(threads)
