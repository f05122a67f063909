"""Models trained by :func:`advwsl.training.fit` on request and cached: a training configuration (and, for
adversarial training, the perturbation and the model it starts from) names one cached checkpoint, trained
once and reused afterwards. The built-in ``mnist-cnn`` and the defended models of ``advwsl reproduce`` are
such models; the cache key (:func:`advwsl.pretrained.cache_stem`) hashes everything that decides the weights:
the configuration, the adversarial options, the starting checkpoint's hash and the code that trains them.

The model kept is the one of the **last** epoch: datasets without a validation split (MNIST, mnist-5k)
would otherwise select it on the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..config import TrainConfig
from ..defenses import make_perturbation
from ..models import checkpoint_info, load_model, save_model
from ..training import fit
from .cache import ADVERSARIAL_CODE, TRAINING_CODE, cache_stem, cached_model, training_dir

__all__ = ["trained_recipe", "trained_checkpoint", "trained_model", "train_and_save"]


def trained_recipe(config: TrainConfig, adversarial: dict[str, Any] | None = None, init: str | None = None
                   ) -> dict[str, Any]:
    """What the cache key of a trained model hashes: the training options that decide the weights, the
    adversarial options and the starting checkpoint's hash."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("progress", "device", "num_workers")}
    return {"config": settings, "adversarial": adversarial,
            "init": checkpoint_info(init).get("sha256") if init else None}


def trained_checkpoint(name: str, config: TrainConfig, adversarial: dict[str, Any] | None = None,
                       init: str | None = None) -> Path:
    """The cache stem of the model ``name`` trained with ``config`` (see the module docstring)."""
    return cache_stem(name, trained_recipe(config, adversarial, init), ADVERSARIAL_CODE if adversarial else
                      TRAINING_CODE, folder=("models", "trained"))


def train_and_save(config: TrainConfig, stem: Path, *, adversarial: dict[str, Any] | None = None,
                   init: str | None = None, retrain: bool = False, metadata: dict[str, Any] | None = None) -> None:
    """Train with :func:`advwsl.training.fit` in ``<stem>.training`` (resumed when interrupted) and save the
    model of the last epoch at ``stem`` with its sidecar."""
    run_dir, resume = training_dir(stem, retrain)
    hook = None
    if adversarial:
        options = {k: v for k, v in adversarial.items() if k not in ("attack", "epsilon")}
        hook = make_perturbation(adversarial["attack"], adversarial["epsilon"], seed=config.seed, **options)
    result = fit(config, run_dir, model=load_model(init) if init else None, perturb=hook, resume=resume)
    last = run_dir / "checkpoints" / "last"
    info = checkpoint_info(last)
    save_model(load_model(last), stem, overwrite=True, metadata={
        "classes": info.get("classes"), "training": config.to_dict(), "adversarial": adversarial, "init": init,
        "dataset": {"name": config.dataset, **config.dataset_kwargs}, "metrics": {"last_epoch": result.history[-1]},
        "epoch": info.get("epoch"), **(metadata or {})})


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
        say(f"training {name} ({config.model} on {config.dataset}, {config.epochs} epochs"
            + (f", {adversarial['attack']} adversarial training at epsilon {adversarial['epsilon']}" if adversarial
               else "") + f"; cached in {stem.parent})")
        train_and_save(config, stem, adversarial=adversarial, init=init, retrain=retrain, metadata=metadata)
        say(f"{name} cached at {stem}.safetensors")

    return cached_model(stem, build, retrain=retrain)
