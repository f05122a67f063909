"""Worker processes: the pool that ``--workers`` runs use, stopped with the run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["process_pool"]


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[Any]:
    """A pool of ``workers`` spawned processes for the block. When the block is interrupted or fails (Ctrl-C,
    SIGTERM, an error), the workers are terminated and the pending work cancelled, instead of the pool
    finishing every submitted task first; otherwise the block's end waits for the tasks, as usual. The workers
    print the heartbeat (:mod:`advwsl.logs`) when the caller does."""
    import concurrent.futures
    import multiprocessing

    from .logs import heartbeat_enabled, start_worker

    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=start_worker, initargs=(heartbeat_enabled(),))
    try:
        yield pool
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
