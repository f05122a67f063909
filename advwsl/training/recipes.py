"""Training recipes of the reference as data: the configuration of a run (:class:`TrainConfig`), named
per-dataset presets (sections 2.1.3.1 and 4.4.2), the optimizer (SGD with Nesterov momentum 0.9 and
weight decay 1e-4) and the learning-rate schedules (step decay of section 2.1.3.1, cosine annealing of
appendix II), stepped once per iteration."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import eval_transform, get_dataset, get_dataset_spec, stratified_subset, training_transform
from ..errors import ConfigError
from ..losses import MULTILABEL_CRITERIA, PIXEL_CRITERIA
from ..models import create_model, get_backbone, list_models, model_info
from ..models.cams import CAM_RULES

__all__ = ["TrainConfig", "PRESETS", "SEGMENTATION_PRESET", "preset", "load_config", "build_optimizer",
           "build_scheduler", "lr_factor", "SCHEDULES", "check_data", "check_training_data", "check_cam_class",
           "check_model_options"]

SCHEDULES = ("step", "cosine", "constant")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``config.json`` in the run directory).

    Model: ``model`` (zoo name), ``backbone`` (a registered backbone or a timm model, ``timm:NAME``),
    ``stride``, ``pretrained``, ``weights`` (a local state dict of the backbone, torchvision or timm,
    ``.pth`` or ``.safetensors``; WSL models), ``model_kwargs`` (head options).
    A segmentation model (``unet``) predicts two pixel classes, background and region of interest (the
    mask), whatever the dataset's image classes (section 2.1.2.1).
    Data: ``dataset`` (name for :func:`advwsl.data.get_dataset`), ``data_root``, ``dataset_kwargs``,
    ``folds`` (validation folds to run, section 2.1.2.2), ``augment`` (the dataset's training augmentation
    of section 2.1.3.1, :func:`advwsl.data.transforms.training_transform`: random crops, flips, rotations by
    multiples of 90 degrees, colour jitter), ``crop_size`` (the side of the augmentation's random crop
    instead of the dataset's default, e.g. GlaS 448 in chapter 4 instead of 416), ``train_fraction`` (train
    on a seeded, class-stratified share of the training split, section 2.1.3.1 and Figures 2.8 / 2.9; the
    validation and test sets are unchanged).
    Optimization: ``epochs``, ``batch_size`` (global, split over ranks), ``lr``, ``momentum``,
    ``weight_decay``, ``nesterov``, ``schedule`` (``step``: lr times ``gamma`` at each of ``milestones``
    (fractions of the run; default one at 1/2, section 2.1.3.1); ``cosine``: appendix II down to
    ``lr_min``; ``constant``).
    Loss: ``loss`` (``image``, ``image-bce`` for multi-label datasets, ``size-kl``, ``size-l2``,
    ``size-adaptive``, ``jia``, ``pixel-ce`` / ``pixel-ce-dice`` for segmentation models), ``loss_kwargs``
    (``lambda_size``, ``lambda_entropy``, ``r`` ...), ``size_noise`` (sigma_s of section 4.4.3) and
    ``size_noise_mode`` (``per_crop``: GlaS protocol; ``per_image``: fixed per image, CAMELYON16 protocol).
    Evaluation: ``monitor`` (validation metric selecting the best checkpoint, higher is better unless it
    ends with ``loss``), ``cam_rule`` and ``cam_class`` (see :func:`advwsl.training.evaluate`),
    ``evaluate_test`` (evaluate the best checkpoint on the test split at the end), ``tta`` (CAMs and scores
    averaged over flips and 4 scales, section 3.4.2).
    Execution: ``seed``, ``device``, ``amp`` (bf16 autocast), ``channels_last``, ``num_workers``,
    ``sync_bn`` (SyncBatchNorm under DDP), ``progress``.
    """

    model: str = "wildcat"
    backbone: str = "resnet-mini"
    stride: int = 32
    pretrained: bool = False
    weights: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "synthetic"
    data_root: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    folds: list[int] = field(default_factory=lambda: [0])
    augment: bool = True
    crop_size: int | None = None
    train_fraction: float = 1.0
    epochs: int = 8
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    schedule: str = "step"
    milestones: list[float] = field(default_factory=lambda: [0.5])
    gamma: float = 0.1
    lr_min: float = 0.0
    loss: str = "image"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    size_noise: float = 0.0
    size_noise_mode: str = "per_crop"
    monitor: str = "accuracy"
    cam_rule: str = "zero"
    cam_class: str | int = "true"
    evaluate_test: bool = True
    tta: bool = False
    seed: int = 0
    device: str | None = None
    amp: bool = False
    channels_last: bool = False
    num_workers: int = 0
    sync_bn: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (all(0 < m < 1 for m in self.milestones),
             f"milestones are fractions of the run in (0, 1), got {self.milestones}"),
            (self.size_noise >= 0, f"size_noise (sigma_s) must be >= 0, got {self.size_noise}"),
            (self.size_noise_mode in ("per_crop", "per_image"),
             f"size_noise_mode must be 'per_crop' or 'per_image', got {self.size_noise_mode!r}"),
            (self.cam_rule in CAM_RULES, f"cam_rule must be one of {CAM_RULES}, got {self.cam_rule!r}"),
            (self.cam_class in ("true", "predicted") or str(self.cam_class).isdigit(),
             f"cam_class must be 'true', 'predicted' or a class index, got {self.cam_class!r}"),
            (len(self.folds) >= 1 and all(int(f) >= 0 for f in self.folds), f"folds must be indices, got {self.folds}"),
            (0 < self.train_fraction <= 1, f"train_fraction must be in (0, 1], got {self.train_fraction}"),
            (self.crop_size is None or int(self.crop_size) >= 1, f"crop_size must be >= 1, got {self.crop_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.model in list_models():
            segmentation = model_info(self.model).task == "segmentation"
            if segmentation != (self.loss in PIXEL_CRITERIA):
                raise ConfigError(
                    f"model {self.model!r} is trained with a pixel loss ({', '.join(PIXEL_CRITERIA)}; e.g. --loss "
                    f"pixel-ce, or --preset glas-unet)" if segmentation else
                    f"the loss {self.loss!r} trains a segmentation model (unet); {self.model!r} needs an image loss")
            if segmentation and self.monitor in ("accuracy", "ap", "map"):
                raise ConfigError(f"a segmentation model has no image classification; monitor a localization "
                                  f"metric instead of {self.monitor!r} (e.g. dice)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid options: {sorted(names)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return self.from_dict({**self.to_dict(), **changes})


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a JSON object",
          list: "a list"}


def _check_type(name: str, value: Any, hint: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` fits the annotation ``hint`` of option ``name`` (JSON
    values: an int is a valid float, a bool is not a number; list items are checked too)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        hint = next(h for h in options if h is not type(None))
        origin = typing.get_origin(hint)
    base = origin or hint
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, base)
    if ok and base is list:
        (item,) = typing.get_args(hint) or (Any,)
        for v in value:
            if item is not Any:
                _check_type(f"{name} item", v, item)
    if not ok:
        raise ConfigError(f"training option {name} must be {_KINDS.get(base, base.__name__)}, got {value!r} "
                          f"({type(value).__name__})")


def check_cam_class(cam_class: str | int, num_classes: int, *, name: str = "cam_class", what: str = "dataset"
                    ) -> None:
    """``cam_class`` (``true``, ``predicted`` or a class index) must name one of ``num_classes`` classes."""
    if str(cam_class).isdigit() and int(cam_class) >= num_classes:
        raise ConfigError(f"{name} {cam_class} is not a class of this {num_classes}-class {what}; use true, "
                          f"predicted or a class index in 0..{num_classes - 1}")


def check_training_data(config: TrainConfig) -> int:
    """Before a run starts: build the datasets of ``config``'s first fold (no sample is read) and the model
    (without pretrained weights), and check ``cam_class`` against the classes; returns the number of
    classes. Bad dataset or model options raise a project error here rather than once the run directory
    exists."""
    train, _, _ = build_datasets(config, config.folds[0])
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes is not None else int(train.num_classes)
    check_cam_class(config.cam_class, num_classes)
    build_model(config.replace(pretrained=False), num_classes)
    return num_classes


# Section 2.1.3.1 (weakly supervised training, image labels), section 4.4.2 (size supervision) and a fast
# CPU recipe for the built-in synthetic set. The crops of section 2.1.3.1 (BreakHis 448, GlaS 416, BACH
# 512 at a random angle, none on CAMELYON16) are part of each dataset's training transform.
PRESETS: dict[str, dict[str, Any]] = {
    "breakhis": {"dataset": "breakhis", "backbone": "resnet18", "pretrained": True, "batch_size": 64,
                 "epochs": 80, "lr": 0.01, "schedule": "step"},
    "bach": {"dataset": "bach", "backbone": "resnet18", "pretrained": True, "batch_size": 64, "epochs": 20,
             "lr": 0.01, "schedule": "step"},
    "glas": {"dataset": "glas", "backbone": "resnet18", "pretrained": True, "batch_size": 32, "epochs": 160,
             "lr": 0.01, "schedule": "step"},
    "camelyon16": {"dataset": "camelyon16", "backbone": "resnet18", "pretrained": True, "batch_size": 64,
                   "epochs": 20, "lr": 0.01, "schedule": "step", "cam_class": "1"},
    # section 4.4.2: GlaS crops of 448 (not the 416 of section 2.1.3.1); the Dice of eq. 4.14
    "glas-size": {"dataset": "glas", "backbone": "resnet18", "pretrained": True, "model": "cam",
                  "batch_size": 32, "epochs": 160, "lr": 0.01, "schedule": "cosine", "crop_size": 448,
                  "loss": "size-adaptive", "loss_kwargs": {"lambda_size": 10.0, "lambda_entropy": 0.1},
                  "size_noise_mode": "per_crop", "monitor": "dice_combined", "cam_rule": "argmax"},
    "camelyon16-size": {"dataset": "camelyon16", "backbone": "resnet18", "pretrained": True, "model": "cam",
                        "batch_size": 64, "epochs": 20, "lr": 0.01, "schedule": "cosine",
                        "loss": "size-adaptive", "loss_kwargs": {"lambda_size": 3.0, "lambda_entropy": 0.1},
                        "size_noise_mode": "per_image", "monitor": "dice_pixels", "cam_rule": "argmax",
                        "cam_class": "1"},
    "synthetic": {"dataset": "synthetic", "backbone": "resnet-mini", "stride": 8, "pretrained": False,
                  "batch_size": 32, "epochs": 6, "lr": 0.05, "schedule": "cosine",
                  "dataset_kwargs": {"size": 64, "n_trainval": 1280, "n_test": 256},
                  # lambda_s = 10 (section 4.4.5) saturates a network trained from scratch to all-background
                  "loss_kwargs": {"lambda_size": 1.0, "lambda_entropy": 0.0}},
    # section 3.4.2: Pascal VOC multi-label, the multi-class Deep MIL with d = 0.4 (section 3.4.4), TTA at test time
    "voc": {"dataset": "voc", "backbone": "resnet18", "pretrained": True, "model": "deepmil-multi",
            "model_kwargs": {"dropout": 0.4}, "batch_size": 16, "epochs": 20, "lr": 0.01, "schedule": "cosine",
            "loss": "image-bce", "monitor": "map", "tta": True},
    # section 2.1.3.2, the fully supervised bound: lr 0.1 divided by 10 at 1/3 and 2/3 of the run, batches of 16
    "glas-unet": {"dataset": "glas", "model": "unet", "batch_size": 16, "epochs": 960, "lr": 0.1,
                  "schedule": "step", "milestones": [1 / 3, 2 / 3], "gamma": 0.1, "loss": "pixel-ce",
                  "monitor": "dice"},
    "camelyon16-unet": {"dataset": "camelyon16", "model": "unet", "batch_size": 16, "epochs": 90, "lr": 0.1,
                        "schedule": "step", "milestones": [1 / 3, 2 / 3], "gamma": 0.1, "loss": "pixel-ce",
                        "monitor": "dice"},
    # a U-Net of base width 8 and depth 3 (0.12 M parameters) on the synthetic recipe; the soft Dice term gets
    # it past the all-background start within 2-3 epochs (pixel cross-entropy alone: 4-5)
    "synthetic-unet": {"dataset": "synthetic", "model": "unet", "model_kwargs": {"base_width": 8, "depth": 3},
                       "batch_size": 32, "epochs": 6, "lr": 0.05, "schedule": "cosine",
                       "dataset_kwargs": {"size": 64, "n_trainval": 1280, "n_test": 256}, "loss": "pixel-ce-dice",
                       "monitor": "dice"},
}
#: The preset of a segmentation model on a dataset: ``<dataset>-unet``.
SEGMENTATION_PRESET = "{dataset}-unet"


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named recipe (see :data:`PRESETS`) with ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a configuration file (JSON, or TOML for ``.toml``) into a dict of :class:`TrainConfig` options
    (a ``preset = "name"`` key expands to that preset first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, got {type(data).__name__}")
    data = dict(data.get("config", data)) if set(data) <= {"run", "config"} else dict(data)  # a run's config.json
    name = data.pop("preset", None)
    if name is not None:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r} in {path}; available: {', '.join(sorted(PRESETS))}")
        data = {**PRESETS[name], **data}
    return data


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
    """Reject, before anything is built or written, an unknown model or backbone and a ``weights`` file that
    is missing or given for a model without a backbone."""
    wsl = model_info(config.model).task == "wsl"
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
