"""``advwsl adv-train``, ``advwsl evaluate-robustness`` and ``advwsl merge``: adversarial training (DDN,
eq. A V-9, or Madry PGD-L2, eq. A V-7) and the robustness evaluation of Tables A V-5/A V-6 and Figure A V-4,
sharded by sample index and merged exactly. Wiring only: the work is in :mod:`advwsl.defenses`,
:mod:`advwsl.training` and :mod:`advwsl.evaluation.robustness`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from ..errors import ConfigError
from . import json_option

DIGITS = "digits"  # the scikit-learn digits at 16 x 16 (real images available offline)


class _Digits(torch.utils.data.Dataset):
    """The scikit-learn digits (``size`` x ``size``, the first ``n`` of the split) as a dataset of
    ``{"image", "label", "index"}`` dicts."""

    classes = [str(c) for c in range(10)]

    def __init__(self, split: str, size: int = 16, n: int | None = None) -> None:
        from ..data.digits import sklearn_digits

        self.images, self.labels = sklearn_digits(size, split)
        self.images, self.labels = self.images[:n], self.labels[:n]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i]), "index": i}


def _split(dataset: str, split: str, dataset_kwargs: dict[str, Any], data_root: str | None) -> Any:
    if dataset == DIGITS:
        if split not in ("train", "test"):
            raise ConfigError(f"the digits have splits 'train' and 'test', got {split!r}")
        return _Digits(split, **dataset_kwargs)
    from ..data import get_dataset
    from ..data.transforms import eval_transform

    return get_dataset(dataset, split=split, root=data_root, transform=eval_transform(dataset), **dataset_kwargs)


def _stack(dataset: Any, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples of ``dataset`` as ``(images, labels)`` tensors."""
    count = len(dataset) if n is None else min(n, len(dataset))
    if count == 0:
        raise ConfigError("the evaluation set is empty; check --dataset, --split and --n")
    items = [dataset[i] for i in range(count)]
    if isinstance(items[0], dict):
        images, labels = [it["image"] for it in items], [int(it["label"]) for it in items]
    else:
        images, labels = [it[0] for it in items], [int(it[1]) for it in items]
    return torch.stack(images), torch.tensor(labels)


# ------------------------------------------------------------------------------------------ adv-train
def _hook(options: dict[str, Any], seed: int) -> Any:
    from ..defenses import make_perturbation

    return make_perturbation(options["attack"], options["epsilon"], steps=options["steps"],
                             clean_fraction=options["clean_fraction"], clean_epochs=options["clean_epochs"],
                             levels=options["levels"], seed=seed)


@click.command("adv-train")
@click.option("--model", default="cw-mnist", show_default=True, help="Zoo model name (advwsl models lists them).")
@click.option("--dataset", default=DIGITS, show_default=True, help="'digits' or a dataset of advwsl.data.")
@click.option("--attack", type=click.Choice(["ddn", "pgd"]), default="ddn", show_default=True,
              help="ddn: DDN training (eq. A V-9); pgd: Madry PGD-L2 (eq. A V-7).")
@click.option("--epsilon", type=float, default=None,
              help="epsilon_max, the L2 radius training adversarials are projected on (2.4 MNIST, 1.0 CIFAR-10); "
                   "required unless --resume.")
@click.option("--steps", type=int, default=None, help="Attack steps per batch [ddn: 100, pgd: 40].")
@click.option("--clean-epochs", type=int, default=0, show_default=True,
              help="Train the first N epochs on clean images, then adversarially.")
@click.option("--clean-fraction", type=float, default=0.0, show_default=True,
              help="alpha of eq. A V-6: share of each batch kept clean.")
@click.option("--init-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Start from this (clean-trained) checkpoint instead of random weights.")
@click.option("--epochs", type=int, default=None, help="Epochs (default: the preset's).")
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default=None)
@click.option("--preset", default=None, help="Training preset of advwsl.recipes (WSL datasets).")
@click.option("--model-kwargs", default=None, help="JSON object of model options, e.g. '{\"input_size\": 16}'.")
@click.option("--dataset-kwargs", default=None, help="JSON object of dataset options.")
@click.option("--data-root", default=None, type=click.Path(file_okay=False))
@click.option("--levels", type=int, default=256, show_default=True, help="Quantization of training adversarials; 0 = off.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (must be new).")
@click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue the interrupted run in this directory.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def adv_train(model: str, dataset: str, attack: str, epsilon: float | None, steps: int | None, clean_epochs: int,
              clean_fraction: float, init_checkpoint: str | None, epochs: int | None, batch_size: int | None,
              lr: float | None, schedule: str | None, preset: str | None, model_kwargs: str | None,
              dataset_kwargs: str | None, data_root: str | None, levels: int, seed: int, device: str | None,
              out: str | None, resume: str | None, progress: bool) -> None:
    """Adversarially train a model (section A V-6): DDN or Madry PGD-L2, resumable, DDP under torchrun."""
    from ..models.zoo import create_model, load_model
    from ..recipes import PRESETS, TrainConfig, load_config
    from ..runs import create_run_dir
    from ..training import fit
    from ..utils import is_main_process, rank_world, seed_everything

    if resume:
        run_dir = Path(resume)
        saved = load_config(run_dir / "config.json")
        options = saved.pop("adversarial", None)
        if options is None:
            raise ConfigError(f"{run_dir} is not an adv-train run (its config.json has no 'adversarial' section)")
        config = TrainConfig.from_dict(saved)
    else:
        if epsilon is None:
            raise ConfigError("--epsilon (epsilon_max of the training adversarials) is required; the reference uses "
                              "2.4 on MNIST and 1.0 on CIFAR-10")
        if preset and preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(sorted(PRESETS))}")
        base: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
        base.update(model=model, dataset=dataset, seed=seed, progress=progress, model_kwargs=json_option(
            model_kwargs, "--model-kwargs"), dataset_kwargs=json_option(dataset_kwargs, "--dataset-kwargs"))
        if dataset == DIGITS:
            base.setdefault("epochs", 10)
            base.update(augment=False, evaluate_test=False, batch_size=base.get("batch_size", 64), lr=base.get("lr", 0.01))
            if model in ("cw-mnist", "cw-cifar"):
                base["model_kwargs"].setdefault("input_size", 16)
        for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("schedule", schedule),
                           ("data_root", data_root), ("device", device)):
            if value is not None:
                base[key] = value
        config = TrainConfig.from_dict(base)
        options = {"attack": attack, "epsilon": epsilon, "steps": steps, "clean_epochs": clean_epochs,
                   "clean_fraction": clean_fraction, "levels": levels or None, "init_checkpoint": init_checkpoint}
        _hook(options, config.seed)  # reject bad adversarial options before creating the run directory
        if rank_world()[1] > 1 and out is None:
            raise ConfigError("under torchrun every process must write to the same run directory: pass --out DIR")
        run_dir = create_run_dir("adv-train", out, config={**config.to_dict(), "adversarial": options}) \
            if is_main_process() else Path(out)
    hook = _hook(options, config.seed)
    seed_everything(config.seed)  # the initial weights depend on the seed only
    net = None
    sets: dict[str, Any] = {}
    if options["init_checkpoint"]:
        net = load_model(options["init_checkpoint"])
    if config.dataset == DIGITS:
        sets = {"train_set": _Digits("train", **config.dataset_kwargs), "valid_set": _Digits("test")}
        if net is None:
            net = create_model(config.model, num_classes=10, **config.model_kwargs)
    result = fit(config, run_dir, model=net, perturb=hook, resume=bool(resume), **sets)
    if is_main_process():
        last = result.history[-1]
        click.echo(f"run: {run_dir}")
        click.echo(f"best epoch {result.best_epoch}: valid accuracy {100 * result.best.get('accuracy', float('nan')):.2f}%; "
                   f"last epoch: mean L2 of training adversarials {last.get('train_adv_l2_mean', float('nan')):.4f} "
                   f"(epsilon_max {options['epsilon']})")


# ------------------------------------------------------------------------------- evaluate-robustness
@click.command("evaluate-robustness")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint (.safetensors + sidecar) to evaluate.")
@click.option("--model", "model_name", default=None,
              help="Instead of --checkpoint: 'digits-cnn' (the package's own digits model).")
@click.option("--dataset", default=DIGITS, show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--n", "n_samples", type=int, default=None, help="Evaluate the first N samples only.")
@click.option("--dataset-kwargs", default=None, help="JSON object of dataset options.")
@click.option("--data-root", default=None, type=click.Path(file_okay=False))
@click.option("--attacks", default="ddn,cw,deepfool", show_default=True, help="Comma-separated attack names.")
@click.option("--budget", "budgets", multiple=True, metavar="ATTACK=BUDGET",
              help="e.g. ddn=1000, cw=9x10000, deepfool=100 (the reference's, default).")
@click.option("--epsilon", type=float, required=True, help="Radius of the table's accuracy column (1.5 MNIST, 0.5 CIFAR-10).")
@click.option("--epsilons", default=None, help="Curve grid: comma list, or START:STOP:NUM [0:2.5*epsilon:41].")
@click.option("--shard", default=None, metavar="K/N", help="Evaluate batches b with b % N == K; join with advwsl merge.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--levels", type=int, default=256, show_default=True, help="Lattice of quantizing attacks; 0 = off.")
@click.option("--checks/--no-checks", default=True, show_default=True, help="Run the gradient-masking sanity checks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None)
@click.option("--out", type=click.Path(file_okay=False), default=None)
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate_robustness(checkpoint: str | None, model_name: str | None, dataset: str, split: str,
                        n_samples: int | None, dataset_kwargs: str | None, data_root: str | None, attacks: str,
                        budgets: tuple[str, ...], epsilon: float, epsilons: str | None, shard: str | None,
                        batch_size: int, levels: int, checks: bool, seed: int, device: str | None, out: str | None,
                        progress: bool) -> None:
    """Robustness of a model as in Tables A V-5/A V-6 and Figure A V-4 (with gradient-masking checks)."""
    import numpy as np

    from ..evaluation.robustness import REFERENCE_BUDGETS, parse_budget, parse_shard
    from ..evaluation.robustness import evaluate_robustness as run
    from ..runs import create_run_dir
    from ..utils import select_device

    if (checkpoint is None) == (model_name is None):
        raise ConfigError("give exactly one of --checkpoint PATH or --model digits-cnn")
    names = [a.strip() for a in attacks.split(",") if a.strip()]
    kwargs: dict[str, dict[str, Any]] = {}
    for item in budgets:
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise ConfigError(f"--budget {item!r} must be ATTACK=BUDGET for one of --attacks {names}")
        kwargs[name] = parse_budget(name, value)
    grid = None
    if epsilons:
        try:
            if ":" in epsilons:
                lo, hi, num = epsilons.split(":")
                grid = [float(v) for v in np.linspace(float(lo), float(hi), int(num))]
            else:
                grid = [float(v) for v in epsilons.split(",")]
        except ValueError:
            raise ConfigError(f"--epsilons must be a comma list or START:STOP:NUM, got {epsilons!r}") from None
    k, n_shards = parse_shard(shard)
    dev = select_device(device)
    if checkpoint is not None:
        from ..models.zoo import load_model

        model, label = load_model(checkpoint), Path(checkpoint).name
    else:
        if model_name != "digits-cnn":
            raise ConfigError(f"--model {model_name!r}: only the built-in 'digits-cnn' is available without a checkpoint")
        from ..jobs.digits import digits_cnn

        model, label = digits_cnn(), model_name
    model = model.to(dev).eval()
    images, labels = _stack(_split(dataset, split, json_option(dataset_kwargs, "--dataset-kwargs"), data_root),
                            n_samples)
    budgets_all = {name: kwargs.get(name, REFERENCE_BUDGETS.get(name, {})) for name in names}
    config = {"checkpoint": checkpoint, "model": model_name, "dataset": dataset, "split": split, "n": n_samples,
              "attacks": names, "budgets": budgets_all, "epsilon": epsilon, "shard": [k, n_shards], "seed": seed}
    run_dir = create_run_dir("evaluate-robustness", out, config=config)
    report = run(model, images, labels, epsilon=epsilon, attacks=names, budgets=budgets_all, epsilons=grid,
                 batch_size=batch_size, levels=levels or None, shard=(k, n_shards), seed=seed, checks=checks,
                 model_name=label, progress=progress)
    report.save(run_dir)
    click.echo(report.markdown())
    if n_shards > 1:
        click.echo(f"shard {k}/{n_shards} written to {run_dir}; join the shards with: advwsl merge DIR... --out DIR")
    else:
        click.echo(f"run: {run_dir}")
    warning = report.warning()
    if warning:
        click.echo(f"WARNING: {warning}", err=True)


# ------------------------------------------------------------------------------------------------ merge
@click.command("merge")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory of the merged result.")
def merge(run_dirs: tuple[str, ...], out: str | None) -> None:
    """Join the shards of one `advwsl evaluate-robustness` run into the single-process result."""
    from ..evaluation.robustness import RobustnessReport, merge_reports
    from ..runs import create_run_dir

    merged = merge_reports([RobustnessReport.load(d) for d in run_dirs])
    run_dir = create_run_dir("merge", out, config={"shards": list(run_dirs)})
    merged.save(run_dir)
    click.echo(merged.markdown())
    click.echo(f"run: {run_dir}")


COMMANDS = [adv_train, evaluate_robustness, merge]
