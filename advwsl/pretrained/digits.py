"""A small model the package trains itself, so that attacks run on a fresh machine with nothing
downloaded: the C&W MNIST network (Table A V-7) on the scikit-learn digits upsampled to 16 x 16, trained
in seconds and cached as a checkpoint (safetensors + JSON sidecar) under ``cache_dir("models")``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.digits import sklearn_digits
from ..models import create_model, save_model
from .cache import Pretrained, get_pretrained, register_pretrained

__all__ = ["DIGITS_CNN", "DIGITS_SIZE", "DIGITS_RECIPE", "train_classifier", "accuracy", "digits_cnn"]

#: Name of the cached model and its training recipe.
DIGITS_CNN = "digits-cnn"
DIGITS_SIZE = 16
DIGITS_RECIPE = {"epochs": 12, "batch_size": 64, "lr": 2e-3, "seed": 0}


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 10,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> nn.Module:
    """Plain cross-entropy training with Adam and a cosine learning-rate schedule, seeded; returns the model
    in eval mode."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for start in range(0, len(images), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean())


def _recipe() -> dict[str, Any]:
    return {"model": "cw-mnist", "input_size": DIGITS_SIZE, "dataset": "digits", **DIGITS_RECIPE}


def _train_digits_cnn(stem: Path, recipe: dict[str, Any], *, progress: bool = True,
                      log: Callable[[str], None] | None = None, retrain: bool = False) -> None:
    x_train, y_train = sklearn_digits(DIGITS_SIZE, "train")
    x_test, y_test = sklearn_digits(DIGITS_SIZE, "test")
    model = create_model("cw-mnist", input_size=DIGITS_SIZE)
    train_classifier(model, x_train, y_train, **DIGITS_RECIPE)
    save_model(model, stem, overwrite=True, metadata={
        "classes": [str(c) for c in range(10)], "training": recipe,
        "dataset": {"name": "digits", "split": "train", "size": DIGITS_SIZE},
        "metrics": {"test_accuracy": accuracy(model, x_test, y_test)}})


def digits_cnn(*, retrain: bool = False, progress: bool = True,
               log: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The C&W MNIST network trained on the scikit-learn digits (16 x 16, train split) and its sidecar, from
    the cache or trained now (a few seconds on a CPU) and cached. The model is on the CPU in eval mode."""
    return get_pretrained(DIGITS_CNN).load(retrain=retrain, progress=progress, log=log)


register_pretrained(Pretrained(
    DIGITS_CNN, "C&W MNIST CNN (Table A V-7) trained on the scikit-learn digits at 16x16 (seconds on a CPU)",
    recipe=_recipe, build=lambda stem, recipe, **options: _train_digits_cnn(stem, recipe, **options), dataset="digits",
    code=("advwsl/pretrained/digits.py", "advwsl/data/digits.py", "advwsl/models")))
