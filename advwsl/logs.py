"""The ``advwsl`` logger and its heartbeat: with progress bars off (``--no-progress``: a log file, a batch job),
a long run says what it finished as it goes, instead of nothing until its table: one time-stamped line per
finished chunk of an attack (``batch_size`` images: a run of 1,000 images in one batch says it once, at its
end) and per finished batch of a robustness evaluation (naming the model)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

__all__ = ["LOGGER", "heartbeat", "heartbeat_enabled"]

LOGGER = logging.getLogger("advwsl")
_NAME = "advwsl-heartbeat"


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a line is emitted (a handler that kept the stream it was
    created with would write to a closed one once a caller swapped stderr back)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 -- logging's own convention: a failing handler reports, never raises
            self.handleError(record)


def heartbeat_enabled() -> bool:
    """Whether the heartbeat is on in this process."""
    return any(h.get_name() == _NAME for h in LOGGER.handlers)


@contextlib.contextmanager
def heartbeat(enabled: bool = True) -> Iterator[None]:
    """Print the ``advwsl`` logger's INFO lines, stamped with the UTC time, to stderr for the block (nothing
    when ``enabled`` is false or the heartbeat is already on). Worker processes started by
    :func:`advwsl.workers.process_pool` inside the block print theirs too."""
    if not enabled or heartbeat_enabled():
        yield
        return
    level, propagate = LOGGER.level, LOGGER.propagate
    handler = _start()
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


def start_worker(enabled: bool) -> None:
    """Initializer of a spawned worker process: the heartbeat on for the worker's lifetime when it was on
    in the parent."""
    if enabled and not heartbeat_enabled():
        _start()


def _start() -> logging.Handler:
    handler = _Stderr(logging.INFO)
    handler.set_name(_NAME)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # a root logger configured by the caller would print every line twice
    return handler
