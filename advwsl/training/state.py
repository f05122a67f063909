"""Files of a training run: the resumable state (model, optimizer, scheduler, loss parameters, RNG states,
history; written atomically every epoch) and the per-epoch metrics CSV (appended to every epoch; on resume
made to match the state's history, which repairs a line torn by a kill or a full disk)."""

from __future__ import annotations

import csv
import io
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io import atomic_path, atomic_write_text

__all__ = ["save_state", "load_state", "rng_state", "set_rng_state", "append_metrics_csv", "read_metrics_csv",
           "sync_metrics_csv"]


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file then an atomic rename: a run killed while saving keeps the
    previous complete state."""
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no resumable state at {path}; the run has not completed an epoch yet, start it "
                              "again without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"cannot read the resumable state {path} ({exc}); it is not an advwsl run state") \
            from None


def rng_state() -> dict[str, Any]:
    """States of the Python, NumPy, torch CPU and CUDA generators."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics CSV with numbers parsed (empty cells become NaN)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def append_metrics_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV (header from the first row ever written; existing lines are kept)."""
    if not rows:
        return
    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    if new:
        fields = list(rows[0])
    else:
        with open(path, newline="") as fh:
            fields = next(csv.reader(fh))
    with open(path, "a", newline="") as fh:
        fh.write(_csv_text(fields, rows, header=new))
        fh.flush()
        os.fsync(fh.fileno())


def _csv_text(fields: Sequence[str], rows: Sequence[dict[str, Any]], *, header: bool) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in fields})
    return buffer.getvalue()


def sync_metrics_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    """Make the metrics CSV hold exactly the rows of ``history`` (the resumable state's, which is saved before
    the CSV line of its epoch): rows of epochs whose line was never written are added, and a last line torn
    by a kill or a full disk is replaced instead of being appended to. The file is rewritten atomically, and
    only when it differs; it then reads as the uninterrupted run's."""
    path = Path(path)
    if not history:
        return
    text = _csv_text(list(history[0]), history, header=True)
    current = path.read_bytes() if path.is_file() else None
    if current is not None and current.decode("utf-8", errors="replace") == text:
        return
    atomic_write_text(path, text, overwrite=True)
