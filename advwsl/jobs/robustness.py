"""The jobs behind ``advwsl evaluate-robustness`` and ``advwsl merge``: the robustness evaluation of
section A V-7 (Tables A V-5/A V-6, Figure A V-4, gradient-masking checks) of any model the resolver knows,
sharded by sample index, and the exact merge of the shards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..attacks import expand_attacks, get_attack_spec, parse_budgets
from ..config import MergeConfig, RobustnessConfig, check_levels
from ..errors import ConfigError
from ..evaluation.robustness import RobustnessReport, evaluate_robustness, merge_reports
from ..runs import check_out, run_directory
from ..utils import select_device
from .data import job_data, start

__all__ = ["RobustnessConfig", "RobustnessPlan", "plan_robustness", "robustness_job", "MergeConfig", "merge_job"]


@dataclass(frozen=True)
class RobustnessPlan:
    """What :func:`robustness_job` runs, resolved before any work: each attack's hyper-parameters (in order),
    the quantization lattice and the run directory to create."""

    budgets: dict[str, dict[str, Any]]
    levels: int | None
    out: Path | None


def plan_robustness(config: RobustnessConfig) -> RobustnessPlan:
    """Check every option of ``config`` against the registries (no side effect) and resolve each attack's
    hyper-parameters: its ``--budget``, else the budget preset's."""
    names = expand_attacks(config.attacks)
    for name in names:
        spec = get_attack_spec(name)
        if not spec.minimal_norm or spec.goal != "label":
            raise ConfigError(f"{name} is not a minimal-norm label attack; the robustness evaluation takes ddn, cw, "
                              "deepfool (or another minimal-norm label attack)")
    given = parse_budgets(list(config.budget), names)
    budgets = {n: get_attack_spec(n).check(get_attack_spec(n).kwargs(b), option="--budget") for n, b in given.items()}
    select_device(config.device)
    return RobustnessPlan(budgets, check_levels(config.levels), check_out(config.out))


def robustness_job(config: RobustnessConfig, *, log: Callable[[str], None] | None = None
                   ) -> tuple[Path, RobustnessReport]:
    """Evaluate, save the report (:meth:`RobustnessReport.save`) in a new run directory and return both."""
    say = log or (lambda message: None)
    plan = plan_robustness(config)
    device, resolved = start(config, say)
    data = job_data(config, resolved)
    settings = {**config.to_dict(), "budgets": plan.budgets, "device": str(device),
                "model_resolved": resolved.describe(), "data": data.describe()}
    with run_directory("evaluate-robustness", config.out, config=settings) as run_dir:
        report = evaluate_robustness(resolved.model.to(device).eval(), data.images, data.labels,
                                     epsilon=config.epsilon, attacks=list(plan.budgets), budgets=plan.budgets,
                                     epsilons=config.curve, batch_size=config.batch_size,
                                     levels=plan.levels, shard=config.shard, seed=config.seed,
                                     checks=config.checks, model_name=resolved.name, progress=config.progress,
                                     precision=config.precision, channels_last=config.channels_last)
        report.config["fingerprint"].update(dataset=data.dataset, dataset_kwargs=data.dataset_kwargs,
                                            split=data.split)
        report.save(run_dir)
    return run_dir, report


def merge_job(config: MergeConfig) -> tuple[Path, RobustnessReport]:
    """Join the shards of one evaluation (their run directories) into the single-process report."""
    check_out(config.out)
    dirs = list(config.run_dirs)
    merged = merge_reports([RobustnessReport.load(d) for d in dirs], names=dirs)
    with run_directory("merge", config.out, config={"shards": dirs}) as run_dir:
        merged.save(run_dir)
    return run_dir, merged
