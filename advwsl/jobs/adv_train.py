"""The job behind ``advwsl adv-train``: adversarial training (section A V-6) with DDN (eq. A V-9) or the
Madry PGD-L2 baseline (eq. A V-7) as the perturbation hook of :func:`advwsl.training.fit` (resumable, DDP
under ``torchrun``). The run records exactly what it trains with; a resumed run refuses changed options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..defenses import make_perturbation
from ..errors import ConfigError
from ..models import checkpoint_info, load_model
from ..runs import check_out, create_run_dir, resumable_run
from ..training import PRESETS, FitResult, TrainConfig, check_training_data, fit, init_distributed
from ..utils import seed_everything, select_device
from .train import read_run_config, restore_config

__all__ = ["AdvTrainConfig", "adv_train_job", "DEFAULT_RECIPE", "DEFAULT_CLEAN_EPOCHS"]

#: Training options of the default run (C&W MNIST network on the 1,347 training images of the scikit-learn
#: digits): the ones a run does not set otherwise. The reference's MNIST recipe (lr 0.01, 60 000 images) gives
#: too few SGD steps on the digits: at batch 64 and lr 0.01 the loss stayed at ln 10 (10 % valid accuracy,
#: 10 epochs), and lr 0.1 diverged to chance; batches of 32 at lr 0.05 with cosine annealing (appendix II)
#: reach 93 % valid accuracy in 3 clean epochs (see DEFAULT_CLEAN_EPOCHS).
DEFAULT_RECIPE: dict[str, Any] = {"epochs": 10, "batch_size": 32, "lr": 0.05, "schedule": "cosine", "augment": False,
                                  "evaluate_test": False}
#: Clean epochs before the adversarial ones in the default run (the reference pre-trains its CIFAR-10 model on
#: clean images the same way): the first DDN adversarials of a random network are no signal.
DEFAULT_CLEAN_EPOCHS = 3


@dataclass
class AdvTrainConfig:
    """``advwsl adv-train``: the model and data (training options of :class:`TrainConfig`: ``train`` holds
    the ones given, None = not given), and the adversarial options. ``explicit`` names the options the user
    gave (the others hold defaults): a resumed run refuses an explicit option that differs from its record.
    ``clean_epochs=None`` is :data:`DEFAULT_CLEAN_EPOCHS` in the default digits run, 0 otherwise."""

    model: str = "cw-mnist"
    dataset: str = "digits"
    attack: str = "ddn"
    epsilon: float | None = None
    steps: int | None = None
    clean_epochs: int | None = None
    clean_fraction: float = 0.0
    levels: int | None = 256
    init_checkpoint: str | None = None
    preset: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    out: str | None = None
    resume: str | None = None
    progress: bool = True
    explicit: frozenset[str] = frozenset()

    def _default_run(self) -> bool:
        return self.dataset == "digits" and not self.preset

    def adversarial(self) -> dict[str, Any]:
        clean_epochs = self.clean_epochs
        if clean_epochs is None:
            clean_epochs = DEFAULT_CLEAN_EPOCHS if self._default_run() else 0
        return {"attack": self.attack, "epsilon": self.epsilon, "steps": self.steps,
                "clean_epochs": clean_epochs, "clean_fraction": self.clean_fraction, "levels": self.levels,
                "init_checkpoint": self.init_checkpoint}

    def training_config(self) -> TrainConfig:
        if self.preset and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; available: {', '.join(sorted(PRESETS))}")
        base: dict[str, Any] = dict(PRESETS[self.preset]) if self.preset else {}
        if self._default_run():
            base.update(DEFAULT_RECIPE)
        model_kwargs = dict(self.train.get("model_kwargs") or {})
        if self.dataset == "digits" and self.model in ("cw-mnist", "cw-cifar"):
            model_kwargs.setdefault("input_size", 16)
        given = {k: v for k, v in self.train.items() if v is not None}
        return TrainConfig.from_dict({**base, **given, "model": self.model, "dataset": self.dataset, "seed": self.seed,
                                      "progress": self.progress, "model_kwargs": model_kwargs})


def _hook(options: dict[str, Any], seed: int) -> Any:
    return make_perturbation(options["attack"], options["epsilon"], steps=options["steps"],
                             clean_fraction=options["clean_fraction"], clean_epochs=options["clean_epochs"],
                             levels=options["levels"], seed=seed)


def _resumed(config: AdvTrainConfig) -> tuple[Path, TrainConfig, dict[str, Any]]:
    run_dir, _, stored = read_run_config(config.resume, "an adv-train", "adv-train")
    if not isinstance(stored, dict) or not isinstance(stored.get("adversarial"), dict):
        raise ConfigError(f"{run_dir} is not an adv-train run (its config.json has no 'adversarial' section); "
                          "--resume takes the folder of an interrupted `advwsl adv-train` run")
    options = stored.pop("adversarial")
    asked = {k: v for k, v in {**config.adversarial(), **config.train, "model": config.model,
                               "dataset": config.dataset, "seed": config.seed, "preset": config.preset}.items()
             if k in config.explicit and k not in ("device", "num_workers")}
    changed = sorted(k for k, v in asked.items() if options.get(k, stored.get(k)) != v)
    if changed:
        raise ConfigError(f"a resumed run keeps its configuration; {changed} differ(s) from {run_dir / 'config.json'} "
                          "(start a new run to change them)")
    keep = {k: v for k, v in config.train.items() if k in ("device", "num_workers") and v is not None}
    return run_dir, restore_config(run_dir, {**stored, **keep, "progress": config.progress}), options


def adv_train_job(config: AdvTrainConfig) -> tuple[Path, FitResult, dict[str, Any]]:
    """Adversarially train (or resume); returns the run directory, the fit result and the adversarial
    options as recorded. Every option (the dataset options and the initial checkpoint included) is checked
    before the run directory is created."""
    rank, world, _ = init_distributed()
    if config.resume:
        run_dir, train_config, options = _resumed(config)
        _hook(options, train_config.seed)
    else:
        if config.epsilon is None:
            raise ConfigError("--epsilon (epsilon_max of the training adversarials) is required; the reference uses "
                              "2.4 on MNIST and 1.0 on CIFAR-10")
        train_config = config.training_config()
        select_device(train_config.device)
        options = config.adversarial()
        _hook(options, train_config.seed)  # rejects bad adversarial options before anything is written
        check_training_data(train_config)
        if options["init_checkpoint"]:
            checkpoint_info(options["init_checkpoint"])
        if world > 1 and config.out is None:
            raise ConfigError("under torchrun every process must write to the same run directory: pass --out DIR")
        run_dir = None
    select_device(train_config.device)
    if not config.resume and rank == 0:
        check_out(config.out)
        run_dir = create_run_dir("adv-train", config.out, config={**train_config.to_dict(), "adversarial": options})
    if not config.resume and world > 1:
        holder = [str(run_dir) if run_dir is not None else None]
        dist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    with resumable_run(run_dir, "adv-train", rank=rank):
        hook = _hook(options, train_config.seed)
        seed_everything(train_config.seed)  # the initial weights depend on the seed only
        net = load_model(options["init_checkpoint"]) if options["init_checkpoint"] else None
        result = fit(train_config, run_dir, model=net, perturb=hook, resume=bool(config.resume))
    return run_dir, result, options
