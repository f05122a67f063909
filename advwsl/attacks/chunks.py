"""Resumable attack runs: every chunk of records :func:`advwsl.attacks.run_attack` finishes is saved in a
folder, under a key that hashes everything its records depend on (the attack, its keyword arguments, the
runner's options, the model's weights, the chunk's images, labels, targets and sample positions, the advwsl
version). A run given the same folder again reads those chunks back instead of attacking them, so an
interrupted run (a killed job, a machine restart, the end of a session) loses at most the chunk in progress,
and the records it returns are the ones an uninterrupted run returns: the attacks draw their random numbers
from their ``seed`` per call, never from a stream shared between chunks.

The files are ``<key>.npz`` archives of arrays only (read without pickle): the chunk's record columns, the
adversarials when the run keeps them, and its seconds and repair counts. They are written atomically; a
file that cannot be read (torn by a full disk) or holds another key counts as missing and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..io import atomic_path

__all__ = ["ChunkStore", "tensors_sha256", "model_sha256"]


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


class ChunkStore:
    """The finished chunks of attack runs in ``folder`` (created on the first save)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def run_key(**parts: Any) -> str:
        """The key of what every chunk of one run shares (attack, options, model hash): JSON of ``parts``
        (values that JSON cannot write by their ``repr``) and the advwsl version, hashed."""
        text = json.dumps({**parts, "advwsl": __version__}, sort_keys=True, default=repr)
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
