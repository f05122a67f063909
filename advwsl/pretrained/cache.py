"""The one mechanism behind every model advwsl trains itself and caches: a recipe record, a cache key, a
lock.

A :class:`Pretrained` record names a built-in model (``--model NAME``): what it is, the data it was trained
on, its recipe (the data its training reads: architecture, dataset, training options) and the code that
generates its data and trains it (:attr:`Pretrained.code`, modules or packages of advwsl). The cache key
(:func:`cache_stem`) hashes the recipe, a fingerprint of that code (:func:`code_fingerprint`: its syntax
trees without docstrings, so a changed comment or docstring keeps the model and a changed line of code
trains a new one) and the advwsl version: a model cached by another version of the code is never reused.

:func:`cached_model` builds a missing checkpoint once, with one torch thread (the thread count changes the
order of the sums of every backward pass, so one thread gives the same model on every machine), under a
file lock (a second process waits for the first one's model and loads it), and an interrupted training
resumes in ``<stem>.training``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from torch import nn

from .. import __version__
from ..errors import CheckpointError
from ..models import checkpoint_info, checkpoint_paths, load_model
from ..registry import Registry
from ..utils import cache_dir, torch_threads

__all__ = ["Pretrained", "register_pretrained", "get_pretrained", "list_pretrained", "code_fingerprint",
           "cache_stem", "cached_model", "training_dir", "BUILD_THREADS", "TRAINING_CODE", "ADVERSARIAL_CODE"]

Log = Callable[[str], None]

#: Intra-op threads a built-in model is trained with (see the module docstring).
BUILD_THREADS = 1
#: The code a model trained by :func:`advwsl.training.fit` depends on: the data (readers, generators,
#: transforms), the models, the losses and the training loop.
TRAINING_CODE = ("advwsl/data", "advwsl/models", "advwsl/losses", "advwsl/training", "advwsl/utils.py")
#: ... and, for adversarial training, the attacks and the defenses.
ADVERSARIAL_CODE = TRAINING_CODE + ("advwsl/attacks", "advwsl/defenses")


@dataclass(frozen=True)
class Pretrained:
    """A built-in trained model (see the module docstring).

    ``recipe()`` gives the training recipe (JSON-ready: what the cache key hashes, recorded in the sidecar);
    ``build(stem, recipe, progress=..., log=..., retrain=...)`` trains it and saves the checkpoint at ``stem``
    (``retrain``: discard an interrupted training instead of resuming it);
    ``code`` are the paths (relative to the package's parent folder) whose code the key covers; ``folder``
    the cache folder under :func:`advwsl.utils.cache_dir`; ``dataset`` and ``dataset_kwargs()`` name the
    data it was trained on (the default evaluation data of the commands); ``notice`` is shown when used."""

    name: str
    description: str
    recipe: Callable[[], dict[str, Any]]
    build: Callable[..., None]
    dataset: str
    code: tuple[str, ...] = TRAINING_CODE
    folder: tuple[str, ...] = ("models",)
    dataset_kwargs: Callable[[], dict[str, Any]] = dict
    notice: str = ""
    cache_name: str | None = None

    def stem(self) -> Path:
        """Where this model is cached (the stem of ``<stem>.safetensors`` + ``<stem>.json``; its file name
        starts with ``cache_name``, default the model's name)."""
        return cache_stem(self.cache_name or self.name, self.recipe(), self.code, folder=self.folder)

    def load(self, *, progress: bool = True, log: Log | None = None, retrain: bool = False
             ) -> tuple[nn.Module, dict[str, Any]]:
        """The model (CPU, eval mode) and its sidecar plus ``checkpoint``: from the cache, or trained now."""
        recipe, stem = self.recipe(), self.stem()
        return cached_model(stem, lambda: self.build(stem, recipe, progress=progress, log=log or (lambda m: None),
                                                     retrain=retrain), retrain=retrain)

    def is_cached(self) -> bool:
        return all(p.is_file() for p in checkpoint_paths(self.stem()))


_PRETRAINED: Registry[Pretrained] = Registry("built-in model")


def register_pretrained(record: Pretrained) -> Pretrained:
    """Make ``record`` available as ``--model NAME`` in every command."""
    return _PRETRAINED.register(record.name, record)


def get_pretrained(name: str) -> Pretrained:
    return _PRETRAINED.get(name)


def list_pretrained() -> list[str]:
    return _PRETRAINED.names()


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def code_fingerprint(paths: tuple[str, ...]) -> str:
    """A hash of the code under ``paths`` (files or folders relative to the folder holding the ``advwsl``
    package): the syntax tree of every ``.py`` file, docstrings and comments left out."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for rel in sorted(paths):
        target = root / rel
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            tree = _strip_docstrings(ast.parse(path.read_text(encoding="utf-8")))
            digest.update(str(path.relative_to(root)).encode())
            digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def cache_stem(name: str, recipe: dict[str, Any], code: tuple[str, ...], *, folder: tuple[str, ...] = ("models",)
               ) -> Path:
    """The cache stem of the model ``name`` trained with ``recipe`` by the code under ``code``:
    ``cache_dir(*folder)/<name>-<key>``, the key a hash of the recipe, the code's fingerprint and the advwsl
    version."""
    text = json.dumps({"recipe": recipe, "code": code_fingerprint(tuple(code)), "advwsl": __version__},
                      sort_keys=True, default=str)
    return cache_dir(*folder) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def training_dir(stem: Path, retrain: bool = False) -> tuple[Path, bool]:
    """The folder ``<stem>.training`` where the checkpoint at ``stem`` is trained, created (emptied first when
    ``retrain``), and whether it holds an interrupted training to resume."""
    run_dir = stem.with_name(stem.name + ".training")
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = (run_dir / "state" / "last.pt").is_file() or (run_dir / "summary.json").is_file()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resume


def cached_model(stem: Path, build: Callable[[], None], *, retrain: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint at ``stem``, built by ``build()`` (which must save it there) when it is missing or
    ``retrain``; ``(model, sidecar + {"checkpoint": stem})`` (see the module docstring)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(stem) + ".lock"):
        if retrain or not all(p.is_file() for p in checkpoint_paths(stem)):
            with torch_threads(BUILD_THREADS):
                build()
        try:
            model = load_model(stem)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}. This is a cached built-in model: delete {stem}.* or rerun with "
                                  "--retrain to rebuild it") from None
        return model, {**checkpoint_info(stem), "checkpoint": str(stem)}
