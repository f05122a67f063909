"""The built-in ``mnist-cnn``: the C&W MNIST network (Table A V-7) trained on mnist-5k's 4,000 real training
digits (:mod:`advwsl.data.mnist5k`) with C&W's recipe, the base model of the appendix V experiments that run
on this machine (``advwsl reproduce A-V-1``), cached on first use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..config import TrainConfig
from .cache import Pretrained, register_pretrained
from .trained import trained_model, trained_recipe, train_and_save

__all__ = ["MNIST_RECIPE", "mnist_cnn", "mnist_recipe"]

#: Carlini & Wagner's MNIST training (the reference trains its base models "with identical hyperparameters"):
#: SGD with Nesterov momentum 0.9 at learning rate 0.01, batches of 128, dropout 0.5 before the second fully
#: connected layer, no weight decay, no augmentation; 50 epochs as theirs. The model of the last epoch is kept.
MNIST_RECIPE: dict[str, Any] = {
    "model": "cw-mnist", "model_kwargs": {"dropout": 0.5}, "epochs": 50, "batch_size": 128, "lr": 0.01,
    "momentum": 0.9, "nesterov": True, "weight_decay": 0.0, "schedule": "constant", "augment": False,
    "evaluate_test": False, "monitor": "accuracy", "seed": 0,
}


def mnist_recipe(dataset: str = "mnist-5k", data_root: str | None = None, **overrides: Any) -> dict[str, Any]:
    """:data:`MNIST_RECIPE` on ``dataset`` (``mnist-5k``, or ``mnist`` with ``data_root``)."""
    return {**MNIST_RECIPE, "dataset": dataset, "data_root": data_root, **overrides}


def mnist_cnn(*, retrain: bool = False, progress: bool = True, log: Callable[[str], None] | None = None,
              dataset: str = "mnist-5k", data_root: str | None = None, **overrides: Any
              ) -> tuple[nn.Module, dict[str, Any]]:
    """The C&W MNIST network trained with :data:`MNIST_RECIPE` (about a minute per 10 epochs on one CPU core
    on mnist-5k), from the cache or trained now."""
    config = mnist_recipe(dataset, data_root, progress=progress, **overrides)
    return trained_model(f"cw-mnist-{dataset}", config, retrain=retrain, log=log)


def _build(stem: Path, recipe: dict[str, Any], *, progress: bool = True,
           log: Callable[[str], None] | None = None, retrain: bool = False) -> None:
    (log or print)("training mnist-cnn (the C&W MNIST network on mnist-5k, 50 epochs; cached)")
    train_and_save(TrainConfig.from_dict({**mnist_recipe("mnist-5k"), "progress": progress}), stem, retrain=retrain)


register_pretrained(Pretrained(
    "mnist-cnn", "C&W MNIST CNN (Table A V-7) trained on mnist-5k's 4,000 real MNIST digits (minutes on a CPU)",
    recipe=lambda: trained_recipe(TrainConfig.from_dict(mnist_recipe("mnist-5k"))), build=_build,
    dataset="mnist-5k", folder=("models", "trained"), cache_name="cw-mnist-mnist-5k"))
