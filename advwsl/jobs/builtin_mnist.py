"""The built-in ``mnist-cnn``: the C&W MNIST network (Table A V-7) trained on mnist-5k's 4,000 real training
digits (:mod:`advwsl.data.mnist5k`) with C&W's recipe, the base model of the appendix V experiments that run
on this machine (``advwsl reproduce A-V-1``), cached on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from .builtin import BuiltinModel, register_builtin
from .trained import trained_model

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


register_builtin(BuiltinModel(
    "mnist-cnn", "C&W MNIST CNN (Table A V-7) trained on mnist-5k's 4,000 real MNIST digits (minutes on a CPU)",
    load=functools.partial(mnist_cnn), dataset="mnist-5k"))
