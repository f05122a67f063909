"""The attack job behind ``advwsl attack``: resolve a model and a dataset, run one or several attacks with
:func:`advwsl.attacks.runner.run_attack`, and write a run directory with the Table A V-1 rows, per-sample
records, summaries and robustness curves (Figure A V-4)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..results import AttackResult, combine_results, results_table
from ..runs import create_run_dir, write_json
from ..utils import seed_everything, select_device

#: Attacks run by ``--attack all`` (the reference's three), and the "All" row over them.
ALL_ATTACKS = ("ddn", "cw", "deepfool")

#: Built-in models that need no file: name -> function returning a trained model.
MODEL_SOURCES: dict[str, Callable[[], nn.Module]] = {}


def register_model_source(name: str, load: Callable[[], nn.Module]) -> None:
    """Make ``--model name`` return ``load()`` (a ready, trained model)."""
    MODEL_SOURCES[name] = load


def _digits_cnn() -> nn.Module:
    from .digits import digits_cnn

    return digits_cnn()


register_model_source("digits-cnn", _digits_cnn)


def resolve_model(name_or_path: str, *, checkpoint: str | Path | None = None) -> nn.Module:
    """The model named by ``--model`` / ``--checkpoint``, on the CPU.

    In order: an explicit ``checkpoint`` (loaded with ``advwsl.models.zoo.load_model``, checked to be of
    architecture ``name_or_path`` when that is a zoo name); a built-in source of :data:`MODEL_SOURCES`
    (``digits-cnn``: trained on first use and cached); an existing checkpoint path; a zoo architecture name
    (``create_model``; its weights are random unless a checkpoint is given, with a warning).
    """
    zoo = _zoo()
    if checkpoint is not None:
        if zoo is None:
            raise ConfigError("loading checkpoints needs advwsl.models.zoo, which this installation lacks")
        arch = name_or_path if name_or_path in zoo.list_models() else None
        return zoo.load_model(checkpoint, architecture=arch)
    if name_or_path in MODEL_SOURCES:
        return MODEL_SOURCES[name_or_path]()
    path = Path(name_or_path)
    if path.suffix in (".safetensors", ".json") or path.exists() or path.with_name(path.name + ".json").exists():
        if zoo is None:
            raise ConfigError("loading checkpoints needs advwsl.models.zoo, which this installation lacks")
        return zoo.load_model(path)
    known = sorted(MODEL_SOURCES) + (zoo.list_models() if zoo is not None else [])
    if zoo is not None and name_or_path in zoo.list_models():
        warnings.warn(f"model {name_or_path!r} is built with random weights; pass --checkpoint to attack a "
                      "trained one", UserWarning, stacklevel=2)
        return zoo.create_model(name_or_path)
    raise ConfigError(f"unknown model {name_or_path!r}: not a checkpoint path (<stem>.safetensors + <stem>.json) "
                      f"nor a known name ({', '.join(known)})")


def _zoo() -> Any:
    try:
        from ..models import zoo
    except ImportError:
        return None
    return zoo


def resolve_dataset(name: str, *, split: str = "test", data_root: str | None = None,
                    n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_samples`` images (in [0, 1]) and labels of a dataset split.

    ``digits`` is the scikit-learn digits at 16 x 16 (shipped with scikit-learn); other names are looked up
    with ``advwsl.data.get_dataset`` (with ``data_root``) when that registry is available.
    """
    if n_samples is not None and n_samples < 1:
        raise ConfigError(f"--n-samples must be positive, got {n_samples}")
    if name == "digits":
        from ..data.digits import sklearn_digits

        if split not in ("train", "test"):
            raise ConfigError(f"the digits have splits 'train' and 'test', got {split!r}")
        x, y = sklearn_digits(16, split)
        return x[:n_samples], y[:n_samples]
    try:
        from ..data import get_dataset
        from ..data.transforms import eval_transform
    except ImportError:
        raise ConfigError(f"unknown dataset {name!r}; available here: digits") from None
    dataset = get_dataset(name, split=split, root=data_root, transform=eval_transform(name))
    count = len(dataset) if n_samples is None else min(n_samples, len(dataset))
    if count == 0:
        raise ConfigError(f"dataset {name!r} split {split!r} is empty; check --data-root and --split")
    items = [dataset[i] for i in range(count)]
    if isinstance(items[0], dict):
        return torch.stack([it["image"] for it in items]), torch.tensor([int(it["label"]) for it in items])
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])


def attack_kwargs(name: str, budget: int | None) -> dict[str, Any]:
    """Hyper-parameters for a budget of ``budget`` gradient steps (None: the reference's defaults).

    DDN and DeepFool: ``steps = budget``. C&W: 4 binary-search steps of ``budget / 4`` iterations (the
    4 x 25 budget of Table A V-1 for 100) with the MNIST hyper-parameters of Table A V-9 (learning rate 0.5,
    initial constant 1; pass others with ``--attack-kwargs``), or 9 x 10 000 without a budget.
    """
    if budget is None:
        return {}
    if budget < 1:
        raise ConfigError(f"--budget must be a positive number of steps, got {budget}")
    if name in ("cw", "carlini_wagner_l2"):
        searches = 4 if budget >= 4 else 1
        return {"binary_search_steps": searches, "steps": budget // searches, "stepsize": 0.5, "initial_const": 1.0}
    return {"steps": budget}


@dataclass
class AttackJobConfig:
    """Everything ``advwsl attack`` needs; the click options map one to one onto these fields."""

    model: str = "digits-cnn"
    checkpoint: str | None = None
    dataset: str = "digits"
    data_root: str | None = None
    split: str = "test"
    n_samples: int | None = None
    attacks: tuple[str, ...] = ("ddn",)
    budget: int | None = None
    targeted: bool = False
    batch_size: int = 128
    device: str | None = None
    out: str | None = None
    seed: int = 0
    levels: int | None = 256
    progress: bool = True
    extra_kwargs: dict[str, Any] = field(default_factory=dict)


def expand_attacks(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"all"`` -> the reference's three attacks; comma-separated names -> a tuple; names are checked
    against the registry."""
    from ..attacks import get_attack

    if isinstance(names, str):
        names = tuple(n.strip() for n in names.split(",") if n.strip())
    out: list[str] = []
    for name in names:
        for n in (ALL_ATTACKS if name == "all" else (name,)):
            get_attack(n)
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("no attack given; use --attack ddn, cw, deepfool or all")
    return tuple(out)


def attack_job(config: AttackJobConfig) -> Path:
    """Run the attacks of ``config`` and write the run directory; returns its path.

    The directory holds ``config.json``/``versions.json``, per attack ``<name>.csv`` (per sample),
    ``<name>.json`` (summary) and ``<name>.md``, then ``table.md`` (all rows, Table A V-1 layout; with
    several untargeted attacks an "All" row), ``summary.json``, ``robustness_curves.csv`` and
    ``robustness_curves.png``.
    """
    from ..attacks.runner import run_attack

    names = expand_attacks(config.attacks)
    if config.targeted and "deepfool" in names:
        if len(names) == 1:
            raise ConfigError("DeepFool has no targeted form; drop --targeted or choose ddn or cw")
        names = tuple(n for n in names if n != "deepfool")
    if config.extra_kwargs and len(names) > 1:
        raise ConfigError("--attack-kwargs applies to a single attack; run the attacks one by one")
    if config.budget is not None and config.budget < 1:
        raise ConfigError(f"--budget must be a positive number of steps, got {config.budget}")
    if config.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {config.batch_size}")
    if config.n_samples is not None and config.n_samples < 1:
        raise ConfigError(f"--n-samples must be positive, got {config.n_samples}")
    seed_everything(config.seed)
    device = select_device(config.device)
    model = resolve_model(config.model, checkpoint=config.checkpoint).to(device).eval()
    x, y = resolve_dataset(config.dataset, split=config.split, data_root=config.data_root,
                           n_samples=config.n_samples)
    run_dir = create_run_dir("attack", config.out, config={**asdict(config), "attacks": list(names),
                                                          "device": str(device)})
    results: list[AttackResult] = []
    for name in names:
        kwargs = {**attack_kwargs(name, config.budget), **config.extra_kwargs}
        result = run_attack(model, x.to(device), y.to(device), attack=name, attack_kwargs=kwargs,
                            targeted=config.targeted, batch_size=config.batch_size, levels=config.levels,
                            progress=config.progress, seed=config.seed)
        result.save(run_dir, name)
        results.append(result)
    if len(results) > 1 and not config.targeted:
        combined = combine_results(results)
        combined.save(run_dir, "all")
        results.append(combined)
    table = results_table(results)
    (run_dir / "table.md").write_text(table + "\n")
    write_json(run_dir / "summary.json", {"model": config.model, "dataset": config.dataset,
                                          "results": [r.summary() for r in results]})
    _write_curves(results, run_dir)
    return run_dir


def _write_curves(results: list[AttackResult], run_dir: Path) -> None:
    from ..plotting import plot_robustness_curves

    norms = [r.norms[r.success] for r in results]
    top = max((float(n.max()) for n in norms if n.size), default=1.0)
    grid = [top * 1.05 * i / 100 for i in range(101)]
    frames = []
    for r in results:
        curve = r.robustness_curve(grid)
        curve["accuracy"] *= 100
        curve.insert(0, "attack", f"{r.attack} {r.budget}" if r.attack != "All" else "All")
        frames.append(curve)
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(run_dir / "robustness_curves.csv", index=False)
    plot_robustness_curves(frame, run_dir / "robustness_curves.png", title="accuracy under attack")


def check_levels(levels: int | None) -> int | None:
    if levels is not None and levels < 2:
        raise InputError(f"--levels must be >= 2 (256 for 8-bit images), got {levels}")
    return levels
