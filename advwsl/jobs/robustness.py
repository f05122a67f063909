"""The jobs behind ``advwsl evaluate-robustness`` and ``advwsl merge``: the robustness evaluation of
section A V-7 (Tables A V-5/A V-6, Figure A V-4, gradient-masking checks) of any model the resolver knows,
sharded by sample index, and the exact merge of the shards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..attacks import get_attack_spec, parse_budgets
from ..errors import ConfigError
from ..evaluation.robustness import (PRESETS, RobustnessReport, evaluate_robustness, merge_reports, parse_shard,
                                     preset_budgets)
from ..runs import check_out, run_directory
from ..utils import select_device
from .attack import check_attack_kwargs, expand_attacks
from .data import ModelDataConfig

__all__ = ["RobustnessConfig", "parse_epsilons", "robustness_job", "merge_job"]


def parse_epsilons(text: str | None) -> tuple[float, ...] | None:
    """A curve grid given as a comma list (``0,0.5,1``) or ``START:STOP:NUM``; None stays None."""
    if not text:
        return None
    try:
        if ":" in text:
            lo, hi, num = text.split(":")
            return tuple(float(v) for v in np.linspace(float(lo), float(hi), int(num)))
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--curve must be a comma list or START:STOP:NUM, got {text!r}") from None


@dataclass
class RobustnessConfig(ModelDataConfig):
    """``advwsl evaluate-robustness``: the model (built-in, checkpoint or zoo architecture with
    ``checkpoint``), the data, the attacks and their budgets (``--budget`` items over the ``preset``), the
    table radii ``epsilon`` and the curve grid, sharding and checks."""

    attacks: tuple[str, ...] = ("ddn", "cw", "deepfool")
    budget: tuple[str, ...] = ()
    preset: str = "reference"
    epsilon: tuple[float, ...] = (1.5,)
    curve: tuple[float, ...] | None = None
    shard: str | None = None
    batch_size: int = 128
    levels: int | None = 256
    checks: bool = True
    seed: int = 0
    device: str | None = None
    out: str | None = None
    progress: bool = True
    retrain: bool = False
    precision: str = "fp32"
    channels_last: bool = False

    def validate(self) -> dict[str, dict[str, Any]]:
        """Check every option (no side effect); returns each attack's hyper-parameters."""
        self.attacks = expand_attacks(self.attacks)
        for name in self.attacks:
            if not get_attack_spec(name).minimal_norm or get_attack_spec(name).goal != "label":
                raise ConfigError(f"{name} is not a minimal-norm label attack; the robustness evaluation takes ddn, "
                                  "cw, deepfool")
        if self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        given = parse_budgets(list(self.budget), self.attacks)
        defaults = preset_budgets(self.attacks, self.preset)
        budgets = {n: get_attack_spec(n).kwargs(b) if b is not None else defaults[n] for n, b in given.items()}
        for name, kwargs in budgets.items():
            check_attack_kwargs(get_attack_spec(name), kwargs, option="--budget")
        self.epsilon = tuple(float(e) for e in self.epsilon)
        if not self.epsilon or any(not np.isfinite(e) or e <= 0 for e in self.epsilon):
            raise ConfigError(f"--epsilon must be positive L2 radii (1.5 on MNIST, 0.5 on CIFAR-10), got "
                              f"{self.epsilon}")
        self.check_counts()
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"--levels must be >= 2, or 0 for no quantization; got {self.levels!r}")
        parse_shard(self.shard)
        select_device(self.device)
        check_out(self.out)
        return budgets


def robustness_job(config: RobustnessConfig, *, log: Callable[[str], None] | None = None
                   ) -> tuple[Path, RobustnessReport]:
    """Evaluate, save the report (:meth:`RobustnessReport.save`) in a new run directory and return both."""
    say = log or (lambda message: None)
    budgets = config.validate()
    device, resolved = config.start(say)
    data = config.load_data(resolved)
    k, n_shards = parse_shard(config.shard)
    settings = {**asdict(config), "attacks": list(config.attacks), "budgets": budgets, "device": str(device),
                "model_resolved": resolved.describe(), "data": data.describe()}
    with run_directory("evaluate-robustness", config.out, config=settings) as run_dir:
        report = evaluate_robustness(resolved.model.to(device).eval(), data.images, data.labels,
                                     epsilon=config.epsilon, attacks=config.attacks, budgets=budgets,
                                     preset=config.preset, epsilons=config.curve, batch_size=config.batch_size,
                                     levels=config.levels, shard=(k, n_shards), seed=config.seed,
                                     checks=config.checks, model_name=resolved.name, progress=config.progress,
                                     precision=config.precision, channels_last=config.channels_last)
        report.config["fingerprint"].update(dataset=data.dataset, dataset_kwargs=data.dataset_kwargs,
                                            split=data.split)
        report.save(run_dir)
    return run_dir, report


def merge_job(run_dirs: Sequence[str | Path], out: str | None = None) -> tuple[Path, RobustnessReport]:
    """Join the shards of one evaluation (their run directories) into the single-process report."""
    check_out(out)
    merged = merge_reports([RobustnessReport.load(d) for d in run_dirs], names=[str(d) for d in run_dirs])
    with run_directory("merge", out, config={"shards": [str(d) for d in run_dirs]}) as run_dir:
        merged.save(run_dir)
    return run_dir, merged
