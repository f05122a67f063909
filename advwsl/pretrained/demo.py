"""The built-in demo: weakly supervised classifiers trained by advwsl itself on the built-in synthetic
histology set (:mod:`advwsl.data.synthetic`), so that ``advwsl attack --model wildcat`` works on a fresh
machine with no dataset, no pretrained weight and no network.

It is a synthetic demo: the tiles are procedurally generated H&E-like images, not patient data, and the
numbers measured on them say how the toolkit works, not how a model behaves on real histology.

Every WSL zoo name (``cam``, ``max``, ``lse``, ``wildcat``, ``deepmil``, ``deepmil-gated``,
``deepmil-adapted``, ``deepmil-multi``) is trained with one recipe (:data:`DEMO_RECIPE`): a small ResNet
(``resnet-mini``) with total stride 8, so a 64 x 64 tile gives 8 x 8 CAMs; SGD with Nesterov momentum
and weight decay 1e-4 (section 2.1.3.1) with a cosine schedule (appendix II); flips and 90-degree
rotations. Training is :func:`advwsl.training.fit`; the best checkpoint (validation accuracy) is cached
under ``advwsl.utils.cache_dir("models")/demo`` (``$ADVWSL_HOME``, else ``$XDG_CACHE_HOME/advwsl``, else
``~/.cache/advwsl``) under a name that hashes the model name, the recipe and the code that generates the
data and trains (:func:`advwsl.pretrained.cache_stem`: a demo trained by other code is never reused), and
reused on the next call. An interrupted training resumes where it stopped.

Training runs on the CPU with one thread (:func:`.cache.cached_model`): the thread count changes the
order of the sums of the backward pass, so this makes the model, and every number printed with it, the
same whatever ``OMP_NUM_THREADS`` is. Trained with seeds 0-4 (``experiments/demo_seeds.py``), WILDCAT
reaches a test accuracy of 97.7 ± 1.0 % (worst seed 96.1 %) and a CAM Dice of 0.603 ± 0.039 (worst seed
0.536); seed 0, the default, 98.4 % and 0.614. With an earlier version of the synthetic generator one seed in three
learned a solution eq. 3.8 allows: the lesion as *negative* evidence of the normal class (its min term)
while the malignant map stayed flat, so the malignant CAM localized nothing (CAM Dice 0.16 at 93.8 %
accuracy). How well a WSL model localizes depends on such details, not only on its accuracy.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.synthetic import SyntheticHistology
from ..errors import ConfigError, InputError
from ..evaluation.cams import mask_scores, predict_maps
from ..models import checkpoint_info, checkpoint_paths, list_models, load_model, save_model
from ..training import fit
from .cache import TRAINING_CODE, Pretrained, cache_stem, cached_model, register_pretrained, training_dir

__all__ = ["DEMO_DATASET", "DEMO_RECIPE", "DEMO_NOTICE", "DEMO_CODE", "demo_config", "demo_checkpoint",
           "demo_model", "demo_data", "demo_dataset_kwargs", "is_demo_cached", "RECIPE_ENV"]

#: The code a demo model depends on (its cache key covers it): the training code and this module.
DEMO_CODE = TRAINING_CODE + ("advwsl/pretrained/demo.py",)

#: The built-in synthetic set of the demo (binary: normal / malignant, 64 x 64 tiles with ROI masks).
DEMO_DATASET: dict[str, Any] = {"size": 64, "num_classes": 2, "n_trainval": 2560, "n_test": 128, "seed": 0}

#: Training recipe shared by every WSL zoo model in the demo (options of advwsl.recipes.TrainConfig).
DEMO_RECIPE: dict[str, Any] = {
    "backbone": "resnet-mini", "stride": 8, "pretrained": False, "epochs": 10, "batch_size": 32, "lr": 0.05,
    "schedule": "cosine", "augment": True, "monitor": "accuracy", "cam_rule": "minmax",
    "cam_class": "true", "evaluate_test": False, "seed": 0,
}

DEMO_NOTICE = ("synthetic demo: a {name} model trained by advwsl on the built-in synthetic H&E-like set "
               "(procedurally generated tiles, not patient data)")


#: Environment variable holding a JSON object of recipe overrides (smaller, faster demos for tests and
#: quick trials; a different recipe is a different cache entry).
RECIPE_ENV = "ADVWSL_DEMO_RECIPE"


def _env_overrides() -> dict[str, Any]:
    text = os.environ.get(RECIPE_ENV, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"${RECIPE_ENV} must be a JSON object of training options such as "
                          f"'{{\"epochs\": 2}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"${RECIPE_ENV} must be a JSON object, got {text!r}")
    return value


def demo_config(name: str = "wildcat", **overrides: Any) -> dict[str, Any]:
    """The training configuration (:class:`advwsl.training.TrainConfig` options) of the demo model
    ``name``; ``overrides`` (after those of ``$ADVWSL_DEMO_RECIPE``, a JSON object) replace recipe
    entries; ``dataset_kwargs`` entries are merged into :data:`DEMO_DATASET`."""
    wsl = list_models("wsl")
    if name not in wsl:
        raise InputError(f"unknown demo model {name!r}; the demo trains the weakly supervised models: "
                         f"{', '.join(wsl)}")
    env = _env_overrides()
    overrides = {**env, **overrides, "dataset_kwargs": {**env.get("dataset_kwargs", {}),
                                                       **overrides.get("dataset_kwargs", {})}}
    dataset = {**DEMO_DATASET, **overrides.pop("dataset_kwargs", {})}
    return {**copy.deepcopy(DEMO_RECIPE), "model": name, "dataset": "synthetic", "dataset_kwargs": dataset,
            **overrides}


def demo_dataset_kwargs() -> dict[str, Any]:
    """The options of the synthetic set the demo models are trained and evaluated on (:data:`DEMO_DATASET`
    after the ``dataset_kwargs`` of ``$ADVWSL_DEMO_RECIPE``)."""
    return {**DEMO_DATASET, **_env_overrides().get("dataset_kwargs", {})}


def demo_checkpoint(name: str = "wildcat", **overrides: Any) -> Path:
    """Where the demo checkpoint of ``name`` (with these recipe ``overrides``) is cached: the stem of
    ``<stem>.safetensors`` + ``<stem>.json``."""
    config = {k: v for k, v in demo_config(name, **overrides).items() if k not in ("progress", "device")}
    return cache_stem(name, config, DEMO_CODE, folder=("models", "demo"))


def is_demo_cached(name: str = "wildcat", **overrides: Any) -> bool:
    """Whether :func:`demo_model` would load ``name`` from the cache rather than train it."""
    return all(p.is_file() for p in checkpoint_paths(demo_checkpoint(name, **overrides)))


def demo_data(split: str = "test", **dataset_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                   list[str]]:
    """The demo's synthetic split as tensors: images (N, 3, 64, 64) in [0, 1], labels (N,), masks
    (N, 64, 64) and the class names. ``dataset_kwargs`` override :func:`demo_dataset_kwargs`."""
    data = SyntheticHistology(split, **{**demo_dataset_kwargs(), **dataset_kwargs})
    images, labels, masks = data.tensors()
    return images, labels, masks, list(data.classes)


def _train(name: str, config: dict[str, Any], stem: Path, *, retrain: bool, progress: bool,
           say: Callable[[str], None]) -> None:
    """Train the demo model with :func:`advwsl.training.fit` in ``<stem>.training`` (resumed when an earlier
    process was interrupted) and save its best checkpoint at ``stem``."""
    run_dir, resume = training_dir(stem, retrain)
    say(f"training the demo {name} model on the built-in synthetic histology set (first use only; cached in "
        f"{stem.parent})" + (", resuming an interrupted training" if resume else ""))
    # on the CPU (single-threaded, see cached_model) whatever accelerator is present: the same model everywhere
    fit({**config, "progress": progress, "device": "cpu"}, run_dir, resume=resume)
    best = run_dir / "checkpoints" / "best"
    model, info = load_model(best), checkpoint_info(best)
    metrics = {"valid": info.get("metrics", {}), "test": _test_metrics(model, config)}
    metadata = {"classes": info.get("classes"), "training": config, "demo": True,
                "dataset": {"name": "synthetic", **config["dataset_kwargs"], "fold": 0}, "metrics": metrics,
                "epoch": info.get("epoch")}
    save_model(model, stem, metadata=metadata, overwrite=True)
    say(f"demo {name} model cached at {stem}.safetensors (test accuracy "
        f"{100 * metrics['test']['accuracy']:.1f} %, CAM Dice {metrics['test']['cam_dice']:.3f})")


def demo_model(name: str = "wildcat", *, retrain: bool = False, progress: bool = True,
               log: Callable[[str], None] | None = None, **overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The demo model ``name`` (any WSL zoo name) and its sidecar (classes, training configuration, dataset,
    validation and test metrics, ``checkpoint``): loaded from the cache, or trained now with
    :func:`advwsl.training.fit` (progress bars per epoch) and cached. The model is on the CPU in eval mode.
    ``retrain`` trains again and replaces the cached checkpoint; ``log`` receives one-line notices;
    ``overrides`` change the recipe (a different recipe is a different cache entry)."""
    config = demo_config(name, **overrides)
    stem = demo_checkpoint(name, **overrides)
    say = log or (lambda message: None)
    return cached_model(stem, lambda: _train(name, config, stem, retrain=retrain, progress=progress, say=say),
                        retrain=retrain)


def _test_metrics(model: nn.Module, config: dict[str, Any]) -> dict[str, float]:
    """Accuracy and CAM localization of the demo model on its test split (CAM of the predicted class,
    min-max normalized, threshold 0.5, images with a lesion only)."""
    images, labels, masks, _ = demo_data("test", **config["dataset_kwargs"])
    preds, maps = predict_maps(model, images)
    dice, iou, valid = mask_scores(maps, masks)
    return {"accuracy": float((preds == labels).float().mean()), "cam_dice": float(dice[valid].mean()),
            "cam_iou": float(iou[valid].mean()), "n": int(len(labels))}


def _build(name: str) -> Callable[..., None]:
    def build(stem: Path, recipe: dict[str, Any], *, progress: bool = True,
              log: Callable[[str], None] | None = None, retrain: bool = False) -> None:
        _train(name, demo_config(name), stem, retrain=retrain, progress=progress, say=log or (lambda m: None))
    return build


for _name in list_models("wsl"):
    register_pretrained(Pretrained(
        _name, f"{_name} on resnet-mini trained on the synthetic histology set (CAMs; ~1 min on a CPU)",
        recipe=functools.partial(lambda n: {k: v for k, v in demo_config(n).items() if k not in ("progress", "device")},
                                 _name),
        build=_build(_name), dataset="synthetic", code=DEMO_CODE, folder=("models", "demo"),
        dataset_kwargs=demo_dataset_kwargs, notice=DEMO_NOTICE.format(name=_name)))
