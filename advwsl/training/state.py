"""Files of a training run: the resumable state (model, optimizer, scheduler, loss parameters, RNG states,
history; written atomically every epoch, read with ``torch.load(weights_only=True)``: tensors and plain
data only, so that a planted file cannot run code) and the per-epoch metrics CSV (appended to every epoch;
on resume made to match the state's history, which repairs a line torn by a kill or a full disk)."""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import math
import os
import pickle
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io import atomic_path, atomic_write_text

__all__ = ["STATE_KEYS", "save_state", "load_state", "rng_state", "set_rng_state", "append_metrics_csv",
           "read_metrics_csv", "sync_metrics_csv"]


#: What a resumed run reads from the state (written by :func:`advwsl.training.fit`).
STATE_KEYS = ("epoch", "model", "optimizer", "scheduler", "criterion", "rng", "best_value", "best_epoch", "history")


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file then an atomic rename: a run killed while saving keeps the
    previous complete state. ``state`` holds tensors and plain data only (what ``weights_only`` loads)."""
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)
    return path


def _numpy_globals() -> list[Any]:
    """The NumPy globals of an array in a pickle (states of earlier versions held NumPy's generator state):
    they rebuild arrays of plain data, nothing else."""
    found = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]  # (the keys of the Mersenne Twister)
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        with contextlib.suppress(ImportError, AttributeError):
            found.append((importlib.import_module(module)._reconstruct, f"{module}._reconstruct"))
    return found


def load_state(path: str | Path) -> dict[str, Any]:
    """The resumable state at ``path``, read with ``torch.load(weights_only=True)``: tensors and plain data
    only, so a planted file cannot run code. A missing, unreadable or incomplete state (without the
    :data:`STATE_KEYS` a resumed run needs) is a :class:`CheckpointError` saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no resumable state at {path}; the run has not completed an epoch yet, start it "
                              "again without --resume")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_globals()):
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core, named by NumPy 1 pickles
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise CheckpointError(f"cannot read the resumable state {path} ({exc}); it is not an advwsl run "
                                  "state") from None
        raise CheckpointError(f"refusing to load the resumable state {path}: it holds {_unsafe(path)}, not only "
                              "tensors and plain data, and "
                              "loading it would run code. It was not written by advwsl: delete it, or restore "
                              "the run's own state, then resume (or start the run again in a new --out)") from None
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"cannot read the resumable state {path} ({exc}); it is not an advwsl run state") \
            from None
    return _checked_state(path, state)


def _unsafe(path: Path) -> str:
    """The globals of the pickle at ``path`` that ``weights_only`` refuses (read, never run)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - only for the message
        return "objects"
    allowed = {"numpy.ndarray", "numpy.dtype", "numpy.dtypes.UInt32DType", "numpy._core.multiarray._reconstruct",
               "numpy.core.multiarray._reconstruct"}
    return ", ".join(n for n in names if n not in allowed) or "objects"


def _checked_state(path: Path, state: Any) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not an advwsl run state (a dict)")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"the resumable state {path} lacks {missing} (damaged, or written by another "
                              "program); start the run again without --resume, in a new --out")
    if not isinstance(state["rng"], list) or not state["rng"] or not isinstance(state["history"], list):
        raise CheckpointError(f"the resumable state {path} has no generator states or history; start the run "
                              "again without --resume, in a new --out")
    return state


def rng_state() -> dict[str, Any]:
    """States of the Python, NumPy, torch CPU and CUDA generators, as tensors and plain data (NumPy's as
    ``(name, keys as a list, pos, has_gauss, cached_gaussian)``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_state` (a state that lacks one is a :class:`CheckpointError`)."""
    missing = [k for k in ("python", "numpy", "torch") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"the resumable state lacks the {missing} generator state(s); start the run again "
                              "without --resume, in a new --out")
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
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
