"""Models trained by advwsl on request and cached: a training configuration (and, for adversarial training,
the perturbation and the model it starts from) names one cached checkpoint, trained once with
:func:`advwsl.training.fit` and reused afterwards. The built-in ``mnist-cnn`` and the defended models of
``advwsl reproduce`` are such models.

The cache key hashes everything that decides the weights (the configuration, the adversarial options, the
starting checkpoint's hash, :data:`TRAINED_VERSION` and the advwsl version); an interrupted training resumes;
concurrent first uses train once (see :func:`advwsl.jobs.builtin.cached_model`). The model kept is the one
of the **last** epoch: datasets without a validation split (MNIST, mnist-5k) would otherwise select it on
the test split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .. import __version__
from ..defenses import make_perturbation
from ..models import checkpoint_info, load_model, save_model
from ..training import TrainConfig, fit
from ..utils import cache_dir
from .builtin import cached_model, training_dir

__all__ = ["TRAINED_VERSION", "trained_checkpoint", "trained_model"]

#: Bumped when the training code changes what a cached model learns.
TRAINED_VERSION = 2


def _key(config: TrainConfig, adversarial: dict[str, Any] | None, init: str | None) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in ("progress", "device", "num_workers")}
    init_hash = checkpoint_info(init).get("sha256") if init else None
    text = json.dumps({"config": settings, "adversarial": adversarial, "init": init_hash,
                       "version": TRAINED_VERSION, "advwsl": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def trained_checkpoint(name: str, config: TrainConfig, adversarial: dict[str, Any] | None = None,
                       init: str | None = None) -> Path:
    """The cache stem of the model ``name`` trained with ``config`` (see the module docstring)."""
    return cache_dir("models", "trained") / f"{name}-{_key(config, adversarial, init)}"


def trained_model(name: str, config: TrainConfig | dict[str, Any], *, adversarial: dict[str, Any] | None = None,
                  init: str | None = None, retrain: bool = False, log: Callable[[str], None] | None = None,
                  metadata: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model ``name`` trained with ``config`` (a :class:`TrainConfig` or its options), from the cache or
    trained now. ``adversarial`` holds :func:`advwsl.defenses.make_perturbation` options (``attack``,
    ``epsilon``, ``steps``, ``levels``, ``clean_fraction``, ``clean_epochs``) for adversarial training;
    ``init`` a checkpoint to start from. Returns the model (CPU, eval mode) and its sidecar plus
    ``checkpoint``."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    say = log or (lambda message: None)
    stem = trained_checkpoint(name, config, adversarial, init)

    def build() -> None:
        run_dir, resume = training_dir(stem, retrain)
        say(f"training {name} ({config.model} on {config.dataset}, {config.epochs} epochs"
            + (f", {adversarial['attack']} adversarial training at epsilon {adversarial['epsilon']}" if adversarial
               else "") + f"; cached in {stem.parent})" + (", resuming" if resume else ""))
        hook = None
        if adversarial:
            options = {k: v for k, v in adversarial.items() if k not in ("attack", "epsilon")}
            hook = make_perturbation(adversarial["attack"], adversarial["epsilon"], seed=config.seed, **options)
        model = load_model(init) if init else None
        result = fit(config, run_dir, model=model, perturb=hook, resume=resume)
        last = run_dir / "checkpoints" / "last"
        info = checkpoint_info(last)
        save_model(load_model(last), stem, overwrite=True, metadata={
            "classes": info.get("classes"), "training": config.to_dict(), "adversarial": adversarial,
            "init": init, "dataset": {"name": config.dataset, **config.dataset_kwargs},
            "metrics": {"last_epoch": result.history[-1]}, "epoch": info.get("epoch"), **(metadata or {})})
        say(f"{name} cached at {stem}.safetensors")

    return cached_model(stem, build, retrain=retrain)
