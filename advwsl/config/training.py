"""Configs of the training jobs: a training run (:class:`TrainConfig`, the reference's recipes as named
presets), ``advwsl train`` (:class:`TrainJobConfig`: a recipe, a config file, options and ``--set`` pairs),
``advwsl adv-train`` (:class:`AdvTrainConfig`) and ``advwsl evaluate`` (:class:`EvaluateConfig`)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from .core import Config, check_range, check_value, config_fields, option
from .vocabulary import (BATCH_SIZE, CAM_RULE, DATA_ROOT, DATASET_KWARGS, DEVICE, LEVELS, OUT, PROGRESS, RESUME,
                         SEED, CamRule, Split)

__all__ = ["TrainConfig", "TrainJobConfig", "AdvTrainConfig", "EvaluateConfig", "PRESETS", "SEGMENTATION_PRESET",
           "SCHEDULES", "load_config", "check_overrides"]

Schedule = Literal["step", "cosine", "constant"]
SCHEDULES: tuple[str, ...] = Schedule.__args__
LOSS_HELP = ("Training loss (eq. 4.4-4.13): image, image-bce (multi-label), size-kl, size-l2, size-adaptive, jia, "
             "pixel-ce, pixel-ce-dice (segmentation).")
CAM_CLASS_HELP = "CAM used for the Dice: true, predicted, or a class (index or name)."


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run depends on (saved as ``config.json`` in the run directory).

    Model: ``model`` (zoo name), ``backbone`` (a registered backbone or a timm model, ``timm:NAME``),
    ``stride``, ``pretrained``, ``weights`` (a local state dict of the backbone, torchvision or timm,
    ``.pth`` or ``.safetensors``; WSL models), ``model_kwargs`` (head options). A segmentation model
    (``unet``) predicts two pixel classes, background and region of interest (the mask), whatever the
    dataset's image classes (section 2.1.2.1).
    Data: ``dataset``, ``data_root``, ``dataset_kwargs``, ``folds`` (validation folds to run, section
    2.1.2.2), ``augment`` (the dataset's training augmentation of section 2.1.3.1: random crops, flips,
    rotations by multiples of 90 degrees, colour jitter), ``crop_size`` (side of the random crop instead of
    the dataset's default, e.g. GlaS 448 in chapter 4 instead of 416), ``train_fraction`` (a seeded,
    class-stratified share of the training split, Figures 2.8 / 2.9; validation and test unchanged).
    Optimization: ``epochs``, ``batch_size`` (global, split over ranks), ``lr``, ``momentum``,
    ``weight_decay``, ``nesterov``, ``schedule`` (``step``: lr times ``gamma`` at each of ``milestones``,
    fractions of the run, default one at 1/2, section 2.1.3.1; ``cosine``: appendix II down to ``lr_min``;
    ``constant``).
    Loss: ``loss``, ``loss_kwargs`` (``lambda_size``, ``lambda_entropy``, ``r`` ...), ``size_noise`` (sigma_s,
    section 4.4.3) and ``size_noise_mode`` (``per_crop``: GlaS protocol; ``per_image``: CAMELYON16's).
    Evaluation: ``monitor`` (validation metric selecting the best checkpoint, higher is better unless it
    ends with ``loss``), ``cam_rule`` and ``cam_class``, ``evaluate_test`` (the best checkpoint on the test
    split at the end), ``tta`` (CAMs and scores averaged over flips and 4 scales, section 3.4.2).
    Execution: ``seed``, ``device``, ``amp`` (bf16 autocast), ``channels_last``, ``num_workers``, ``sync_bn``
    (SyncBatchNorm under DDP), ``progress``.
    """

    model: str = option("wildcat", "Zoo architecture to train (cam, max, lse, wildcat, deepmil, gradcam, unet, ...; "
                                   "`advwsl models`).")
    backbone: str = option("resnet-mini", "Backbone of the WSL model: resnet18, resnet50, resnet-mini, ... or any "
                                          "timm model (timm:NAME or a plain timm name such as efficientnet_b0).")
    stride: Literal[8, 16, 32] = option(32, "Backbone output stride.")
    pretrained: bool = option(False, "ImageNet weights for the backbone (torch hub / Hugging Face cache; never "
                                     "downloaded for timm).")
    weights: str | None = option(None, "Initial backbone weights: a local torchvision or timm state dict (.pth or "
                                       ".safetensors).")
    model_kwargs: dict[str, Any] = option(help="Model options as JSON, e.g. '{\"input_size\": 16}'.",
                                          default_factory=dict, metavar="JSON")
    dataset: str = option("synthetic", "Dataset to train on (`advwsl data list`).")
    data_root: str | None = DATA_ROOT()
    dataset_kwargs: dict[str, Any] = DATASET_KWARGS()
    folds: tuple[int, ...] = option((0,), "Comma-separated validation folds, e.g. 0,1,2,3,4 for 5-fold runs.", low=0)
    augment: bool = option(True, "The dataset's training augmentation.")
    crop_size: int | None = option(None, "Side of the augmentation's random crop (default: the dataset's; GlaS 448 "
                                         "in chapter 4).", low=1)
    train_fraction: float = option(1.0, "Train on this seeded, class-stratified share of the training split "
                                        "(Figures 2.8, 2.9).", low=0, low_open=True, high=1)
    epochs: int = option(8, "Epochs.", low=1)
    batch_size: int = BATCH_SIZE(32)
    lr: float = option(0.01, "Initial learning rate.", low=0, low_open=True)
    momentum: float = option(0.9, "SGD momentum.", low=0, high=1, high_open=True, flag="")
    weight_decay: float = option(1e-4, "Weight decay of the model's parameters.", low=0, flag="")
    nesterov: bool = option(True, "Nesterov momentum.", flag="")
    schedule: Schedule = option("step", "Learning-rate schedule.")
    milestones: tuple[float, ...] = option((0.5,), "Fractions of the run where the step schedule multiplies the "
                                                   "learning rate by gamma.", low=0, low_open=True, high=1,
                                           high_open=True, flag="")
    gamma: float = option(0.1, "Factor of the step schedule.", low=0, low_open=True, flag="")
    lr_min: float = option(0.0, "Final learning rate of the cosine schedule.", low=0, flag="")
    loss: str = option("image", LOSS_HELP)
    loss_kwargs: dict[str, Any] = option(help="Loss options as JSON (lambda_size, lambda_entropy, r, ...).",
                                         default_factory=dict, flag="")
    size_noise: float = option(0.0, "sigma_s of the size annotations (section 4.4.3).", low=0)
    size_noise_mode: Literal["per_crop", "per_image"] = option("per_crop", "Size noise drawn per crop (GlaS "
                                                                           "protocol) or fixed per image (CAMELYON16).")
    monitor: str = option("accuracy", "Validation metric that selects the best checkpoint.")
    cam_rule: CamRule = CAM_RULE("zero", "How CAMs are binarized for the Dice (zero: M_c > 0, the reference's; "
                                         "argmax; minmax).")
    cam_class: str = option("true", CAM_CLASS_HELP)
    evaluate_test: bool = option(True, "Evaluate the best checkpoint on the test split at the end.", flag="")
    tta: bool = option(False, "Test-time augmentation (flips and 4 scales, section 3.4.2).", flag="")
    seed: int = SEED()
    device: str | None = DEVICE()
    amp: bool = option(False, "bf16 autocast (mixed precision).")
    channels_last: bool = option(False, "channels_last memory format.")
    num_workers: int = option(0, "DataLoader worker processes.", low=0, flag="--workers")
    sync_bn: bool = option(True, "SyncBatchNorm under DistributedDataParallel.", flag="")
    progress: bool = PROGRESS()

    def __post_init__(self) -> None:
        if isinstance(self.cam_class, int) and not isinstance(self.cam_class, bool):
            object.__setattr__(self, "cam_class", str(self.cam_class))
        super().__post_init__()

    def check(self) -> None:
        if not self.folds:
            raise ConfigError("folds must name at least one validation fold, e.g. 0")
        if len(set(self.folds)) != len(self.folds):
            raise ConfigError(f"folds must be distinct, got {list(self.folds)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; an unknown key is an error naming the valid ones."""
        return cls.from_mapping(data, where="training options")


def check_overrides(options: dict[str, Any], *, where: str = "training options") -> dict[str, Any]:
    """``options`` (a partial :class:`TrainConfig`: the keys given) checked key by key and type by type."""
    fields = {f.name: (hint, opt) for f, hint, opt in config_fields(TrainConfig)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: no training option {', '.join(map(repr, unknown))}; valid options: "
                          f"{', '.join(fields)}")
    out = {}
    for key, value in options.items():
        out[key] = check_value(value, fields[key][0], name=f"{where} {key}")
        check_range(out[key], fields[key][1], f"{where} {key}")
    return out


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
PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a configuration file (JSON, or TOML for ``.toml``) into :class:`TrainConfig` options, checked key
    by key (a ``preset = "name"`` key expands to that preset first; a run's ``config.json`` is read too)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, got {type(data).__name__}")
    data = dict(data.get("config", data)) if set(data) <= {"run", "config"} else dict(data)  # a run's config.json
    name = data.pop("preset", None)
    if name is not None:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r} in {path}; available: {', '.join(sorted(PRESETS))}")
        data = {**PRESETS[name], **data}
    return check_overrides(data, where=f"config file {path}")


@dataclass(frozen=True)
class TrainJobConfig(Config):
    """``advwsl train``: the recipe (``preset``, default: the dataset's own), a config file, the training
    options given (``options``: :class:`TrainConfig` fields, checked key by key) and ``--set KEY=JSON``
    pairs, in that order of precedence; or ``resume`` an interrupted run. ``lambda_size`` and
    ``lambda_entropy`` are the keys of ``loss_kwargs`` the command line sets directly."""

    preset: PresetName | None = option(None, "Named recipe (default: the dataset's own, when it has one).")
    config_file: str | None = option(None, "JSON or TOML file of training options (command-line options override "
                                           "it).", flag="--config")
    options: dict[str, Any] = option(default_factory=dict)
    lambda_size: float | None = option(None, "lambda_s of eq. 4.13 (or of Jia et al.).")
    lambda_entropy: float | None = option(None, "lambda_e of eq. 4.13.")
    set_pairs: tuple[str, ...] = option((), "Any other training option, e.g. --set 'dataset_kwargs={\"n_trainval\": "
                                            "640}'.", flag="--set", multiple=True, metavar="KEY=JSON")
    tensorboard: bool = option(False, "Write every epoch's metrics as TensorBoard event files (run_dir/tensorboard; "
                                      "pip install 'advwsl[tensorboard]').")
    out: str | None = OUT()
    resume: str | None = RESUME()

    def check(self) -> None:
        check_overrides(self.options)


@dataclass(frozen=True)
class AdvTrainConfig(Config):
    """``advwsl adv-train``: adversarial training (section A V-6) with DDN (eq. A V-9) or the Madry PGD-L2
    defense (eq. A V-7) — or any registered label attack — as the perturbation hook of the training loop.
    ``train`` holds the training options given (a partial :class:`TrainConfig`); ``clean_epochs=None`` is
    the dataset's default adversarial-training recipe's (3 on the digits, else 0)."""

    model: str = option("cw-mnist", "Zoo architecture to train (`advwsl models` lists them).")
    dataset: str = option("digits", "Dataset to train on (`advwsl data list`).")
    data_root: str | None = DATA_ROOT()
    dataset_kwargs: dict[str, Any] = DATASET_KWARGS()
    attack: str = option("ddn", "Attack making the training adversarials: ddn (DDN training, eq. A V-9), pgd (Madry "
                                "PGD-L2, eq. A V-7), or another registered label attack.")
    epsilon_max: float | None = option(None, "epsilon_max, the L2 radius training adversarials are projected on "
                                             "(2.4 MNIST, 1.0 CIFAR-10); required unless --resume.", low=0,
                                       low_open=True, renamed_from=("--epsilon",))
    steps: int | None = option(None, "Attack steps per batch [ddn: 100, pgd: 40].", low=1)
    clean_epochs: int | None = option(None, "Train the first N epochs on clean images, then adversarially [3 in the "
                                            "default digits run, else 0].", low=0)
    clean_fraction: float = option(0.0, "alpha of eq. A V-6: share of each batch kept clean.", low=0, high=1,
                                   high_open=True)
    init_checkpoint: str | None = option(None, "Start from this (clean-trained) checkpoint instead of random "
                                               "weights.")
    preset: PresetName | None = option(None, "Training recipe (WSL datasets).")
    train: dict[str, Any] = option(default_factory=dict)
    levels: int = LEVELS()
    seed: int = SEED()
    device: str | None = DEVICE()
    tensorboard: bool = option(False, "Write every epoch's metrics as TensorBoard event files (run_dir/tensorboard; "
                                      "pip install 'advwsl[tensorboard]').")
    out: str | None = OUT()
    resume: str | None = RESUME()
    progress: bool = PROGRESS()
    explicit: frozenset[str] = option(default_factory=frozenset)

    def check(self) -> None:
        check_overrides(self.train)
        if self.levels == 1:
            raise ConfigError("--levels must be >= 2 (256 for 8-bit images), or 0 for no quantization; got 1")
        if self.resume is None and self.epsilon_max is None:
            raise ConfigError("--epsilon-max (epsilon_max of the training adversarials) is required; the reference "
                              "uses 2.4 on MNIST and 1.0 on CIFAR-10")


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """``advwsl evaluate``: a checkpoint re-evaluated on a split (default: the dataset and fold it was
    trained on): accuracy, AP/mAP and, with masks, CAM Dice/IoU."""

    checkpoint: str = option("", "Trained weights to evaluate: <stem>.safetensors + <stem>.json.")
    dataset: str | None = option(None, "Dataset (default: the one the checkpoint was trained on).")
    data_root: str | None = DATA_ROOT()
    split: Split = option("test", "Dataset split.")
    fold: int | None = option(None, "Fold of the train/valid split (default: the checkpoint's).", low=0)
    remap_classes: bool = option(False, "Accept data whose class names are the model's in another order, its labels "
                                        "mapped to the model's classes by name (classes are never matched by "
                                        "position).", short_flag=True)
    batch_size: int = BATCH_SIZE(64)
    cam_rule: CamRule | None = CAM_RULE(None, "How CAMs are binarized for the Dice (default: the checkpoint's "
                                              "training setting).")
    cam_class: str | None = option(None, CAM_CLASS_HELP)
    device: str | None = DEVICE()
    out: str | None = OUT()
    progress: bool = PROGRESS()

    def check(self) -> None:
        if not self.checkpoint:
            raise ConfigError("give the checkpoint to evaluate (--checkpoint PATH)")
