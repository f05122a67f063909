"""Model tests run single-threaded: their tensors are small, and on a shared 2-core machine one thread
is both faster and steadier than two."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
