"""Configs of the evaluation jobs: ``advwsl attack``, ``advwsl evaluate-robustness`` and ``advwsl merge``
(what :mod:`advwsl.jobs.attack` and :mod:`advwsl.jobs.robustness` run). Every field is one option."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .core import Config, Shard, float_grid, option
from .vocabulary import (ATTACKS, BATCH_SIZE, BUDGET, CAM_RULE, CHANNELS_LAST, CHECKPOINT, DATA_ROOT, DATASET,
                         DATASET_KWARGS, DEVICE, EPSILON, LEVELS, MODEL, N_SAMPLES, OUT, PRECISION, PROGRESS, RETRAIN,
                         SEED, SPLIT, CamRule, Precision, Split)

__all__ = ["check_levels", "ModelDataConfig", "AttackConfig", "RobustnessConfig", "MergeConfig", "TABLE_EPSILONS"]

#: The budgets ε of the accuracy columns of ``advwsl attack``'s report (L2, images in [0, 1]).
TABLE_EPSILONS = (0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class ModelDataConfig(Config):
    """The model and the data of an evaluation job: ``model`` (built-in, checkpoint path, zoo architecture
    with ``checkpoint``, or ``file.py:function``) and the first ``n_samples`` of ``split`` of ``dataset``
    (default: the data the model was trained on), and how the model is resolved: ``device``, ``seed``,
    ``retrain`` (a built-in model trained again), ``progress``."""

    model: str = MODEL()
    checkpoint: str | None = CHECKPOINT()
    dataset: str | None = DATASET()
    data_root: str | None = DATA_ROOT()
    dataset_kwargs: dict[str, Any] = DATASET_KWARGS()
    split: Split = SPLIT()
    n_samples: int | None = N_SAMPLES()
    remap_classes: bool = option(False, "Accept data whose class names are the model's in another order, its labels "
                                        "mapped to the model's classes by name (classes are never matched by "
                                        "position).", short_flag=True)
    device: str | None = DEVICE()
    seed: int = SEED()
    retrain: bool = RETRAIN()
    progress: bool = PROGRESS()


def check_levels(levels: int) -> int | None:
    """The quantization lattice ``--levels`` asks for: None for 0 (floats), else at least 2 levels."""
    if levels == 1:
        raise ConfigError("--levels must be >= 2 (256 for 8-bit images), or 0 for no quantization; got 1")
    return levels or None


@dataclass(frozen=True)
class AttackConfig(ModelDataConfig):
    """``advwsl attack``: minimal-L2 attacks with verified results (Table A V-1) and, on weakly supervised
    models, what they do to the class activation maps.

    ``attacks`` are registered attack names, ``all`` (the reference's three and their per-sample best, the
    "All" row) or ``strong``; ``budget`` holds ``--budget`` items (``N`` for every attack, ``ATTACK=N``); an
    attack without one runs at its reference budget. ``epsilon`` are the radii of the report's accuracy
    columns. ``cam_rule`` binarizes CAMs in the report: ``minmax`` by default, not the reference's
    evaluation rule (``zero``: M_c > 0, which ``advwsl train``/``evaluate`` and ``advwsl reproduce`` use):
    the report compares a CAM before and after an attack, and a rule that ignores the map's offset measures
    where the map moved, not how its level shifted (an attack that lowers every score empties an M_c > 0
    region without moving it); it also localizes with every head whatever the offset of its maps (Deep
    MIL's hw A - 1, max pooling), and it is the map CAM-DDN attacks."""

    attacks: tuple[str, ...] = ATTACKS(("ddn",), "Attacks: a comma-separated list of registered attacks (`advwsl "
                                                 "attacks` lists them), or all (ddn, cw, deepfool and their per-sample "
                                                 "best, the 'All' row). cam-ddn moves the CAM and keeps the label.")
    budget: tuple[str, ...] = BUDGET()
    target: str | None = option(None, "Targeted attacks: all (towards every other class, one record per pair, Tables "
                                      "A V-2..4), least-likely (the class of lowest clean logit), or one class (index "
                                      "or name). Default: untargeted.", renamed_flags=("--targeted",))
    epsilon: tuple[float, ...] = EPSILON((), "L2 radii of the report's accuracy columns (default: the dataset's "
                                             "scale: 0.5,1,1.5,2 on MNIST-like digits, 0.1,0.25,0.5,1 on CIFAR-10 and "
                                             "histology tiles).")
    batch_size: int = BATCH_SIZE(128)
    levels: int = LEVELS()
    attack_kwargs: dict[str, Any] = option(help="Extra hyper-parameters of a single attack as JSON, e.g. "
                                                "'{\"loss\": \"margin\"}'.", default_factory=dict, metavar="JSON")
    dice_threshold: float = option(0.5, "cam-ddn: the CAM counts as moved when its Dice with the clean CAM falls "
                                        "below this.", low=0, low_open=True, high=1)
    cam_rule: CamRule = CAM_RULE("minmax", "How the report binarizes CAMs: zero (M_c > 0, the reference's), "
                                           "argmax, or minmax (min-max normalized, threshold 0.5).")
    cam_layer: str | None = option(None, "A model without class activation maps gets the CAM report from Grad-CAM of "
                                         "this module (a name of model.named_modules(); default: the last module "
                                         "with spatial feature maps).")
    cam_grid_rows: int = option(4, "Images in the CAM grid (cam_grid.png): the largest changes of the CAM, then the "
                                   "median ones.", low=1)
    save_adversarials: bool = option(False, "Save every attack's adversarial images and perturbations with their "
                                            "indices (adversarials-<attack>.npz) and a grid of clean / perturbation / "
                                            "adversarial (adversarials-<attack>.png).", short_flag=True)
    precision: Precision = PRECISION()
    channels_last: bool = CHANNELS_LAST()
    out: str | None = OUT()

    def __post_init__(self) -> None:
        if isinstance(self.target, int) and not isinstance(self.target, bool):
            object.__setattr__(self, "target", str(self.target))
        super().__post_init__()

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def check(self) -> None:
        check_levels(self.levels)
        if not self.attacks:
            raise ConfigError("no attack given; use --attack ddn, cw, deepfool, all, or a comma-separated list")


@dataclass(frozen=True)
class RobustnessConfig(ModelDataConfig):
    """``advwsl evaluate-robustness``: the robustness of a model as in Tables A V-5/A V-6 and Figure A V-4 —
    the attacks and their budgets (``--budget`` items; ``quick`` for every attack's quick budget, the
    reference budgets of section A V-7 by default), the table radii ``epsilon`` and the curve grid, sharding
    and the gradient-masking checks."""

    attacks: tuple[str, ...] = ATTACKS(("all",), "Minimal-norm attacks: a comma-separated list of ddn, cw, deepfool "
                                                 "(or other registered minimal-norm attacks), or all (the three).")
    budget: tuple[str, ...] = BUDGET(renamed_from=("--preset",))
    epsilon: tuple[float, ...] = EPSILON((), "L2 radii of the table's accuracy columns (default: the dataset's, "
                                             "section A V-7's 1.5 on MNIST and 0.5 on CIFAR-10).")
    curve: tuple[float, ...] | None = option(None, "Epsilon grid of the curves (default 0 to 2.5 x the largest "
                                                   "--epsilon, 41 points).", metavar="START:STOP:NUM|LIST",
                                             parse=float_grid)
    shard: Shard | None = option(None, "Evaluate batches b with b % N == K; join with advwsl merge.", metavar="K/N")
    workers: int = option(1, "Worker processes: independent shards of the batches run side by side (threads per "
                             "process: the cores divided among them) and merged into this run's report, as one "
                             "process would write it.", low=1)
    batch_size: int = BATCH_SIZE(128)
    levels: int = LEVELS()
    checks: bool = option(True, "Run the gradient-masking sanity checks.")
    precision: Precision = PRECISION()
    channels_last: bool = CHANNELS_LAST()
    out: str | None = OUT()

    def check(self) -> None:
        check_levels(self.levels)
        if not self.attacks:
            raise ConfigError("no attack given; use --attack ddn, cw, deepfool, all, or a comma-separated list")
        if self.curve is not None:
            float_grid(",".join(map(repr, self.curve)))
        if self.workers > 1 and self.shard is not None:
            raise ConfigError("--workers runs the shards of this machine itself; drop --shard (or --workers)")


@dataclass(frozen=True)
class MergeConfig(Config):
    """``advwsl merge``: the run directories of the shards of one evaluation, joined into one."""

    run_dirs: tuple[str, ...] = option((), "")
    out: str | None = OUT()

    def check(self) -> None:
        if not self.run_dirs:
            raise ConfigError("give the run directories of the shards to merge")
