"""Resumable attack runs: every chunk of records :func:`advwsl.attacks.run_attack` finishes is saved in a
folder, under a key that hashes what its records depend on: the attack's code (for advwsl's attacks the
syntax trees, docstrings left out, of the attack's module and of every advwsl module it imports, directly or
not; for a user's function its source), its keyword arguments (tensors by their bytes), the runner's
options, the model (class, structure, the code of advwsl's layers in it, weights), the device type, the torch and advwsl versions, and the chunk's images, labels, targets and
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

import ast
import functools
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

__all__ = ["ChunkStore", "tensors_sha256", "model_sha256", "module_sha256", "function_sha256", "code_closure"]


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
    them (e.g. a pooling's exponent), the code of every advwsl module its layers come from (their import
    closures), and its weights and buffers (:func:`model_sha256`)."""
    from ..pretrained.cache import code_fingerprint

    cls = type(model)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model))  # (a function's repr carries its address)
    modules = sorted({type(m).__module__ for m in model.modules() if type(m).__module__.startswith("advwsl.")})
    code = code_fingerprint(tuple(sorted({f for m in modules for f in code_closure(m)}))) if modules else ""
    return hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{text}\n{code}\n{model_sha256(model)}".encode()
                          ).hexdigest()


@functools.cache
def code_closure(module: str) -> tuple[str, ...]:
    """The files of advwsl's module ``module`` (dotted name) and of every advwsl module it imports at module
    level, directly or through others (its import closure; settings types left out), relative to the folder
    holding the ``advwsl`` package."""
    root = Path(__file__).resolve().parents[2]
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        path = root.joinpath(*parts).with_suffix(".py")
        if not path.is_file():
            path = root.joinpath(*parts, "__init__.py")
        rel = str(path.relative_to(root))
        if not path.is_file() or rel in seen:
            continue
        seen.add(rel)
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # (module-level imports)
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = [*base, *(node.module.split(".") if node.module else [])]
                todo += [".".join(target)] + [".".join([*target, alias.name]) for alias in node.names]
            elif isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
        todo = [t for t in todo if t.split(".")[0] == "advwsl" and t != "advwsl"
                and not (t == _SETTINGS or t.startswith(_SETTINGS + "."))]
    return tuple(sorted(seen))


#: What an attack imports that computes nothing it returns: the settings types (the values that matter are
#: in the key); the package itself (its version is in the key) is left out too.
_SETTINGS = "advwsl.config"


def function_sha256(fn: Any) -> str:
    """What an attack function's records depend on in code: for advwsl's own, the fingerprint (syntax trees
    without docstrings) of its module's import closure within advwsl and of the runner's, which verifies and
    records what the attack returns (:func:`code_closure`); for another
    function, its source (or bytecode and constants when the source is not available)."""
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("advwsl."):
        from ..pretrained.cache import code_fingerprint

        return code_fingerprint(tuple(sorted({*code_closure(module), *code_closure("advwsl.attacks.runner")})))
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
