"""The job behind ``advwsl adv-train``: adversarial training (section A V-6) with DDN (eq. A V-9), the
Madry PGD-L2 baseline (eq. A V-7) or any registered label attack, as the perturbation hook of
:func:`advwsl.training.fit` (resumable, DDP under ``torchrun``). Without ``--preset`` the training recipe is
the dataset's own adversarial recipe (:attr:`advwsl.data.DatasetSpec.adversarial_recipe`). The run records
exactly what it trains with; a resumed run refuses changed options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import PRESETS, AdvTrainConfig, TrainConfig
from ..data import get_dataset_spec
from ..defenses import make_perturbation
from ..errors import ConfigError
from ..models import checkpoint_info, load_model, model_info
from ..report_html import write_html_report
from ..runs import resumable_run
from ..training import FitResult, check_model_options, check_training_data, fit, init_distributed
from ..utils import seed_everything, select_device
from .training_runs import RESUMABLE, TensorBoardLog, check_tensorboard, open_run, resumed_record, same_value

__all__ = ["AdvTrainConfig", "AdvTrainPlan", "plan_adv_train", "adv_train_job"]


@dataclass(frozen=True)
class AdvTrainPlan:
    """A new or resumed adversarial-training run: its training configuration, the adversarial options as
    recorded (``attack``, ``epsilon``, ``steps``, ``clean_epochs``, ``clean_fraction``, ``levels``,
    ``init_checkpoint``) and, when resumed, its run directory."""

    train: TrainConfig
    adversarial: dict[str, Any]
    run_dir: Path | None = None


def _recipe(config: AdvTrainConfig) -> tuple[dict[str, Any], int]:
    """The training options under the given ones (``--preset``'s, else the dataset's adversarial recipe)
    and the default number of clean epochs."""
    spec = get_dataset_spec(config.dataset)
    recipe = dict(PRESETS[config.preset]) if config.preset else dict(spec.adversarial_recipe)
    clean_epochs = int(recipe.pop("clean_epochs", 0))
    model_kwargs = {**recipe.get("model_kwargs", {}), **config.train.get("model_kwargs", {})}
    builder = model_info(config.model).builder
    if spec.image_size and "input_size" in inspect.signature(builder).parameters:
        model_kwargs.setdefault("input_size", spec.image_size)  # e.g. the C&W MNIST network on 16x16 digits
    return {**recipe, "model_kwargs": model_kwargs}, clean_epochs


def _new_plan(config: AdvTrainConfig) -> AdvTrainPlan:
    recipe, clean_default = _recipe(config)
    train = TrainConfig.from_dict({**recipe, **config.train, "model_kwargs": recipe["model_kwargs"],
                                   "model": config.model, "dataset": config.dataset, "data_root": config.data_root,
                                   "dataset_kwargs": config.dataset_kwargs, "seed": config.seed,
                                   "device": config.device, "progress": config.progress})
    clean_epochs = clean_default if config.clean_epochs is None else config.clean_epochs
    if clean_epochs >= train.epochs:
        raise ConfigError(f"--clean-epochs {clean_epochs} leaves no adversarial epoch of the {train.epochs} epochs; "
                          f"give more --epochs or fewer --clean-epochs")
    adversarial = {"attack": config.attack, "epsilon": config.epsilon_max, "steps": config.steps,
                   "clean_epochs": clean_epochs, "clean_fraction": config.clean_fraction,
                   "levels": config.levels or None, "init_checkpoint": config.init_checkpoint}
    return AdvTrainPlan(train, adversarial)


def _resumed_plan(config: AdvTrainConfig) -> AdvTrainPlan:
    run_dir, stored = resumed_record(config.resume, "adv-train")
    if not isinstance(stored.get("adversarial"), dict):
        raise ConfigError(f"{run_dir} is not an adv-train run (its config.json has no 'adversarial' section); "
                          "--resume takes the folder of an interrupted `advwsl adv-train` run")
    stored = dict(stored)
    options = stored.pop("adversarial")
    asked = {**config.train, "model": config.model, "dataset": config.dataset, "seed": config.seed,
             "preset": config.preset, "attack": config.attack, "epsilon": config.epsilon_max, "steps": config.steps,
             "clean_epochs": config.clean_epochs, "clean_fraction": config.clean_fraction,
             "levels": config.levels or None, "init_checkpoint": config.init_checkpoint}
    rename = {"epsilon": "epsilon_max"}
    changed = sorted(k for k, v in asked.items() if rename.get(k, k) in config.explicit and k not in RESUMABLE
                     and not same_value(options.get(k, stored.get(k)), v))
    if changed:
        raise ConfigError(f"a resumed run keeps its configuration; {changed} differ(s) from {run_dir / 'config.json'} "
                          "(start a new run to change them)")
    keep = {"progress": config.progress, **({"device": config.device} if config.device else {}),
            **{k: v for k, v in config.train.items() if k in RESUMABLE}}
    try:
        train = TrainConfig.from_dict({**stored, **keep})
    except ConfigError as exc:
        raise ConfigError(f"{run_dir / 'config.json'} holds an invalid training configuration ({exc}); it was "
                          "edited or is damaged") from None
    return AdvTrainPlan(train, options, run_dir)


def plan_adv_train(config: AdvTrainConfig) -> AdvTrainPlan:
    """Check every option (the adversarial hook, the dataset options, the model and the initial checkpoint
    included) before anything is written, and resolve the run: new, or the one ``--resume`` names."""
    plan = _resumed_plan(config) if config.resume else _new_plan(config)
    select_device(plan.train.device)
    _hook(plan)  # rejects bad adversarial options
    if not config.resume:
        check_model_options(plan.train)
        check_training_data(plan.train)
        if plan.adversarial["init_checkpoint"]:
            checkpoint_info(plan.adversarial["init_checkpoint"])
    return plan


def _hook(plan: AdvTrainPlan) -> Callable[..., Any]:
    a = plan.adversarial
    return make_perturbation(a["attack"], a["epsilon"], steps=a["steps"], clean_fraction=a["clean_fraction"],
                             clean_epochs=a["clean_epochs"], levels=a["levels"], seed=plan.train.seed)


def adv_train_job(config: AdvTrainConfig) -> tuple[Path, FitResult, dict[str, Any]]:
    """Adversarially train (or resume); returns the run directory, the fit result and the adversarial
    options as recorded."""
    rank, world, _ = init_distributed()
    if config.tensorboard:
        check_tensorboard()
    plan = plan_adv_train(config)
    run_dir = plan.run_dir or open_run("adv-train", config.out, {**plan.train.to_dict(),
                                                                 "adversarial": plan.adversarial},
                                       rank=rank, world=world)
    with resumable_run(run_dir, "adv-train", rank=rank):
        hook = _hook(plan)
        seed_everything(plan.train.seed)  # the initial weights depend on the seed only
        init = plan.adversarial["init_checkpoint"]
        board = TensorBoardLog(run_dir) if config.tensorboard else None
        result = fit(plan.train, run_dir, model=load_model(init) if init else None, perturb=hook,
                     resume=plan.run_dir is not None, on_epoch_end=board)
        if board is not None:
            board.close()
        if rank == 0:
            write_html_report(run_dir, f"advwsl adv-train: {plan.train.model} on {plan.train.dataset}, "
                                       f"{plan.adversarial['attack']} at epsilon {plan.adversarial['epsilon']}")
    return run_dir, result, plan.adversarial
