"""Training recipes of the reference: the configuration of a run (:class:`~advwsl.config.TrainConfig`) and
the named per-dataset presets (sections 2.1.3.1 and 4.4.2) are data in :mod:`advwsl.config.training`;
here the checks that need the registries, the model and datasets of a run, the optimizer (SGD with Nesterov momentum 0.9 and
weight decay 1e-4) and the learning-rate schedules (step decay of section 2.1.3.1, cosine annealing of
appendix II), stepped once per iteration."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import PRESETS, SCHEDULES, SEGMENTATION_PRESET, TrainConfig, load_config
from ..data import eval_transform, get_dataset, get_dataset_spec, stratified_subset, training_transform
from ..errors import ConfigError
from ..losses import CRITERIA, MULTILABEL_CRITERIA, PIXEL_CRITERIA
from ..models import create_model, get_backbone, list_models, model_info
from ..models.cams import CAM_RULES

__all__ = ["TrainConfig", "PRESETS", "SEGMENTATION_PRESET", "preset", "load_config", "build_optimizer",
           "build_scheduler", "lr_factor", "SCHEDULES", "check_data", "check_training_data", "check_cam_class",
           "check_model_options"]


def check_cam_class(cam_class: str | int, num_classes: int, *, name: str = "cam_class", what: str = "dataset",
                    classes: list[str] | tuple[str, ...] | None = None) -> str:
    """``cam_class`` (``true``, ``predicted``, a class index or one of ``classes``' names) must name one of
    ``num_classes`` classes; returns it as the training loop reads it (``true``, ``predicted`` or an index)."""
    text = str(cam_class)
    if text in ("true", "predicted"):
        return text
    if classes is not None and text in list(classes):
        return str(list(classes).index(text))
    if text.isdigit() and int(text) < num_classes:
        return text
    names = f" ({', '.join(f'{i} {c}' for i, c in enumerate(classes))})" if classes else ""
    raise ConfigError(f"{name} {cam_class} is not a class of this {num_classes}-class {what}{names}; use true, "
                      f"predicted, a class index in 0..{num_classes - 1} or a class name")


def check_training_data(config: TrainConfig) -> int:
    """Before a run starts: build the datasets of ``config``'s first fold (no sample is read) and the model
    (without pretrained weights), and check ``cam_class`` against the classes; returns the number of
    classes. Bad dataset or model options raise a project error here rather than once the run directory
    exists."""
    train, _, _ = build_datasets(config, config.folds[0])
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes is not None else int(train.num_classes)
    check_cam_class(config.cam_class, num_classes, classes=classes)
    build_model(config.replace(pretrained=False), num_classes)
    return num_classes


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named recipe (see :data:`PRESETS`) with ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})


def build_optimizer(config: TrainConfig, model: nn.Module, criterion: nn.Module | None = None
                    ) -> torch.optim.SGD:
    """Section 2.1.3.1: SGD, Nesterov momentum 0.9, weight decay 1e-4 on the model; the learned loss
    parameters (adaptive loss alpha and scale) in a second group without weight decay."""
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": config.weight_decay}]
    loss_params = [p for p in criterion.parameters() if p.requires_grad] if criterion is not None else []
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def lr_factor(config: TrainConfig, iteration: int, total: int) -> float:
    """Multiplier of the initial learning rate after ``iteration`` of ``total`` iterations."""
    if config.schedule == "constant" or total <= 0:
        return 1.0
    t = min(iteration / total, 1.0)
    if config.schedule == "step":
        return config.gamma ** sum(t >= m for m in config.milestones)
    floor = config.lr_min / config.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))  # appendix II


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule over ``config.epochs * steps_per_epoch`` iterations."""
    total = config.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(config, it, total))


def check_model_options(config: TrainConfig) -> None:
    """Reject, before anything is built or written, an unknown model or backbone, a loss of the other task
    (a pixel loss for an image classifier, an image loss for a segmentation model), a segmentation model
    monitored on image classification, and a ``weights`` file that is missing or given for a model without
    a backbone."""
    if config.loss not in CRITERIA:
        raise ConfigError(f"unknown loss {config.loss!r}; the losses are {', '.join(sorted(CRITERIA))}")
    task = model_info(config.model).task
    segmentation = task == "segmentation"
    if segmentation != (config.loss in PIXEL_CRITERIA):
        raise ConfigError(
            f"model {config.model!r} is trained with a pixel loss ({', '.join(PIXEL_CRITERIA)}; e.g. --loss "
            f"pixel-ce, or --preset glas-unet)" if segmentation else
            f"the loss {config.loss!r} trains a segmentation model (unet); {config.model!r} needs an image loss")
    if segmentation and config.monitor in ("accuracy", "ap", "map"):
        raise ConfigError(f"a segmentation model has no image classification; monitor a localization "
                          f"metric instead of {config.monitor!r} (e.g. dice)")
    wsl = task == "wsl"
    if wsl:
        get_backbone(config.backbone)
    if config.weights is not None:
        if not wsl:
            raise ConfigError(f"--weights initializes the backbone of a weakly supervised model (cam, max, lse, "
                              f"wildcat, deepmil, ...); {config.model!r} has no backbone")
        if not Path(config.weights).is_file():
            raise ConfigError(f"--weights {config.weights!r} is not a file; give a state dict (.pth or .safetensors) "
                              f"of the backbone {config.backbone!r}")


def build_model(config: TrainConfig, num_classes: int, *, init_weights: bool = True) -> nn.Module:
    """The zoo model of ``config`` for ``num_classes`` classes (backbone options only for WSL models); a
    segmentation model gets the two pixel classes background and region of interest.
    ``init_weights=False`` skips ``config.weights`` (a resumed run loads its own state instead)."""
    kwargs = dict(config.model_kwargs)
    task = model_info(config.model).task
    if task == "wsl":
        kwargs.update(backbone=config.backbone, stride=config.stride, pretrained=config.pretrained,
                      weights=config.weights if init_weights else None)
    elif config.weights is not None:
        raise ConfigError(f"weights={config.weights!r} initializes a WSL backbone; {config.model!r} has none")
    if task == "segmentation":
        num_classes = kwargs.pop("num_classes", 2)
    return create_model(config.model, num_classes=num_classes, **kwargs)


def check_data(config: TrainConfig) -> None:
    """Errors, before anything is built, for a configuration its dataset cannot train: a multi-label
    dataset needs the binary cross-entropy (``image-bce``, eq. 4.5) and only it; a segmentation model or a
    size loss needs masks."""
    check_model_options(config)
    spec = get_dataset_spec(config.dataset)
    multilabel_loss = config.loss in MULTILABEL_CRITERIA or bool(config.loss_kwargs.get("multilabel"))
    if spec.multilabel and not multilabel_loss:
        raise ConfigError(f"{spec.name} has multi-label image labels; train it with loss 'image-bce' (binary "
                          f"cross-entropy, eq. 4.5), not {config.loss!r}")
    if not spec.multilabel and config.loss in MULTILABEL_CRITERIA:
        raise ConfigError(f"the loss {config.loss!r} is for multi-label datasets; {spec.name} has one label per "
                          "image (use 'image')")
    if not spec.has_masks and (config.loss in PIXEL_CRITERIA or config.loss.startswith("size-") or
                               config.loss == "jia"):
        raise ConfigError(f"the loss {config.loss!r} needs pixel masks, which {spec.name} does not have")


def build_datasets(config: TrainConfig, fold: int) -> tuple[Any, Any, Any]:
    """``(train, valid, test)`` datasets of ``config.dataset`` for validation fold ``fold`` (section
    2.1.2.2), the training set with the dataset's augmentation of section 2.1.3.1 when ``config.augment``
    (reduced to ``config.train_fraction`` of each class when below 1).
    A dataset without a validation split (the digits, torchvision's MNIST / CIFAR-10) is validated on its
    test split, as the reference's appendix V does."""
    spec = get_dataset_spec(config.dataset)
    check_data(config)
    train_tf = (training_transform(spec.name, crop_size=config.crop_size) if config.augment
                else eval_transform(spec.name))
    common = {"root": config.data_root, "fold": fold, **config.dataset_kwargs}
    train = get_dataset(spec.name, split="train", transform=train_tf, **common)
    if config.train_fraction < 1:
        train = stratified_subset(train, config.train_fraction, seed=config.seed)
    valid_split = "valid" if "valid" in spec.splits else "test"
    valid = get_dataset(spec.name, split=valid_split, transform=eval_transform(spec.name), **common)
    test = get_dataset(spec.name, split="test", transform=eval_transform(spec.name), **common)
    return train, valid, test
