"""Resumable attack runs: every chunk of records :func:`advwsl.attacks.run_attack` finishes is saved in a
folder, under a key that hashes what its records depend on: the attack (for advwsl's attacks the code of
``advwsl/attacks`` and ``advwsl/models``, syntax trees without docstrings; for a user's function its
source), its keyword arguments (tensors by their bytes), the runner's options, the model (class, structure
and weights), the device type, the torch and advwsl versions, and the chunk's images, labels, targets and
sample positions. A run given the same folder again reads those chunks back instead of attacking them, so
an interrupted run (a killed job, a machine restart, the end of a session) loses at most the chunk in
progress, and its records are those of an uninterrupted run on the same device at the same thread count
(the thread count changes the order of sums, not the key). That holds for attacks that draw their random
numbers from their ``seed`` per call (every registered attack); a ``generator`` shared between chunks is
refused with a checkpoint, and a user's attack that draws from torch's global stream is not resumable exactly.

The files are ``<key>.npz`` archives of arrays only (read without pickle): the chunk's record columns, the
adversarials when the run keeps them, and its seconds and repair counts. They are written atomically; a
file that cannot be read (torn by a full disk) or holds another key counts as missing and is recomputed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..io import atomic_path

__all__ = ["ChunkStore", "tensors_sha256", "model_sha256", "module_sha256", "function_sha256"]


def tensors_sha256(*tensors: torch.Tensor) -> str:
    """SHA-256 of the dtypes, shapes and bytes of ``tensors`` (on any device, any dtype)."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def model_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights and buffers (names included): the same trained model, whatever file it
    was loaded from."""
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensors_sha256(t).encode())
    return digest.hexdigest()


def module_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model as an attack sees it: its class, its structure and settings as ``repr`` prints
    them (e.g. a pooling's exponent), and its weights and buffers (:func:`model_sha256`)."""
    cls = type(model)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model))  # (a function's repr carries its address)
    return hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{text}\n{model_sha256(model)}".encode()).hexdigest()


def function_sha256(fn: Any) -> str:
    """What an attack function's records depend on in code: for advwsl's own, the fingerprint of
    ``advwsl/attacks`` and ``advwsl/models`` (computed once per process); for another function, its source
    (or bytecode and constants when the source is not available)."""
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("advwsl."):
        from ..pretrained.cache import code_fingerprint

        return code_fingerprint(("advwsl/attacks", "advwsl/models"))
    target = getattr(fn, "func", fn)  # a functools.partial: its function (its arguments are in the kwargs)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code is not None else repr(target)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    """How a key writes a value JSON cannot: a tensor or array by its bytes, anything else by ``repr``."""
    if isinstance(value, torch.Tensor):
        return {"tensor": tensors_sha256(value)}
    if isinstance(value, np.ndarray):
        return {"array": tensors_sha256(torch.from_numpy(np.ascontiguousarray(value)))}
    return repr(value)


class ChunkStore:
    """The finished chunks of attack runs in ``folder`` (created on the first save)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def run_key(**parts: Any) -> str:
        """The key of what every chunk of one run shares (attack, options, model hash): JSON of ``parts``
        (values that JSON cannot write by their ``repr``) and the advwsl version, hashed."""
        text = json.dumps({**parts, "advwsl": __version__, "torch": torch.__version__}, sort_keys=True,
                          default=_jsonable)
        return hashlib.sha256(text.encode()).hexdigest()

    @staticmethod
    def chunk_key(run_key: str, *tensors: torch.Tensor) -> str:
        """The key of one chunk: the run's key and the chunk's tensors (images, labels, targets, positions)."""
        return hashlib.sha256((run_key + tensors_sha256(*tensors)).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key[:40]}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays saved under ``key``, or None (never saved, unreadable, or another key's)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        if str(arrays.pop("key", "")) != key:
            return None
        return arrays

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Save ``arrays`` under ``key``, atomically (a temporary file renamed into place)."""
        with atomic_path(self._path(key), overwrite=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), **arrays)
            fh.flush()
            os.fsync(fh.fileno())

    def count(self) -> int:
        """Chunks saved in the folder."""
        return len(list(self.folder.glob("*.npz"))) if self.folder.is_dir() else 0
