"""Worker pools stop with the run: an interrupt (Ctrl-C, SIGTERM) inside ``process_pool`` terminates the
workers at once instead of letting them finish every submitted task."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from advwsl.workers import process_pool


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_an_interrupted_pool_terminates_its_workers():
    tic = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with process_pool(2) as pool:
            for _ in range(4):
                pool.submit(time.sleep, 60)
            time.sleep(0.2)
            processes = list(pool._processes.values())
            raise KeyboardInterrupt
    for process in processes:  # (by the system's process table: two threads reaping one child confuse is_alive)
        deadline = time.monotonic() + 20
        while _running(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(process.pid), process
    assert time.monotonic() - tic < 30  # not the 2 x 60 s the tasks would take


def test_a_pool_that_ends_normally_returns_every_result():
    with process_pool(2) as pool:
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
