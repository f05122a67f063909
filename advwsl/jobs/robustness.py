"""The jobs behind ``advwsl evaluate-robustness`` and ``advwsl merge``: the robustness evaluation of
section A V-7 (Tables A V-5/A V-6, Figure A V-4, gradient-masking checks) of any model the resolver knows,
sharded by sample index, and the exact merge of the shards."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..attacks import ATTACK_PRESETS, expand_attacks, get_attack_spec, parse_budgets
from ..config import MergeConfig, RobustnessConfig, check_levels
from ..data import get_dataset_spec
from ..errors import ConfigError
from ..evaluation.robustness import RobustnessReport, evaluate_robustness, merge_reports
from ..report_html import write_html_report
from ..runs import CHUNKS, check_out, run_directory
from ..training import init_distributed
from ..utils import select_device, worker_threads
from ..workers import process_pool
from .data import job_data, start

#: How to continue an interrupted evaluation (the attacks' finished chunks are kept for it).
CONTINUE = ("rerun the same command with --out {run_dir}: the attacks' finished chunks are read back, the rest is "
            "attacked")

__all__ = ["RobustnessConfig", "RobustnessPlan", "plan_robustness", "robustness_job", "MergeConfig", "merge_job"]


@dataclass(frozen=True)
class RobustnessPlan:
    """What :func:`robustness_job` runs, resolved before any work: each attack's hyper-parameters (in order),
    the quantization lattice and the run directory to create."""

    budgets: dict[str, dict[str, Any]]
    levels: int | None
    out: Path | None
    notices: tuple[str, ...] = ()


def plan_robustness(config: RobustnessConfig) -> RobustnessPlan:
    """Check every option of ``config`` against the registries (no side effect) and resolve each attack's
    hyper-parameters: its ``--budget``, else the budget preset's."""
    requested = config.attacks.split(",") if isinstance(config.attacks, str) else list(config.attacks)
    names, skipped = [], []
    for item in (i.strip() for i in requested if i.strip()):
        for name in expand_attacks(item):
            spec = get_attack_spec(name)
            if spec.minimal_norm and spec.goal == "label":
                if name not in names:
                    names.append(name)
            elif item in ATTACK_PRESETS:  # a preset's fixed-radius members do not fit a minimal-norm evaluation
                skipped.append(name)
            else:
                raise ConfigError(f"{name} is not a minimal-norm label attack; the robustness evaluation takes ddn, "
                                  "cw, deepfool (or another minimal-norm label attack)")
    names = tuple(names)
    notices = (f"{', '.join(skipped)}: fixed-radius attacks, left out of the minimal-norm evaluation (`advwsl attack "
               "--attack strong` runs them at each radius and reports robust accuracy)",) if skipped else ()
    given = parse_budgets(list(config.budget), names)
    budgets = {n: get_attack_spec(n).check(get_attack_spec(n).kwargs(b), option="--budget") for n, b in given.items()}
    select_device(config.device)
    # under torchrun only rank 0 checks --out: it claims the folder before the ranks evaluate, so a rank
    # checking after that claim would find it running (and a rerun on another host could not tell that the
    # interrupted run there had stopped)
    out = check_out(config.out, command="evaluate-robustness") if int(os.environ.get("RANK", "0")) == 0 \
        else (Path(config.out) if config.out is not None else None)
    return RobustnessPlan(budgets, check_levels(config.levels), out, notices)


def _settings(config: RobustnessConfig, plan: RobustnessPlan, device: Any, resolved: Any, data: Any) -> dict[str, Any]:
    return {**config.to_dict(), "budgets": plan.budgets, "device": str(device), "model_resolved": resolved.describe(),
            "data": data.describe()}


def _evaluate(config: RobustnessConfig, plan: RobustnessPlan, model: Any, data: Any, name: str,
              shard: Any, chunks: Path | None = None) -> RobustnessReport:
    report = evaluate_robustness(model, data.images, data.labels, epsilon=config.epsilon, attacks=list(plan.budgets),
                                 budgets=plan.budgets, epsilons=config.curve, batch_size=config.batch_size,
                                 levels=plan.levels, shard=shard, seed=config.seed, checks=config.checks,
                                 model_name=name, progress=config.progress, precision=config.precision,
                                 channels_last=config.channels_last, checkpoint=chunks)
    report.config["fingerprint"].update(dataset=data.dataset, dataset_kwargs=data.dataset_kwargs, split=data.split)
    return report


def _shard_worker(payload: tuple[dict[str, Any], int, int, str, int, str]) -> str:
    """One worker process of ``--workers``: shard ``k`` of ``n`` of the evaluation into ``out``, its attack
    chunks in the parent run's folder ``chunks``."""
    import torch

    settings, k, n, out, threads, chunks = payload
    torch.set_num_threads(threads)
    config = RobustnessConfig.from_mapping({**settings, "shard": f"{k}/{n}", "out": out, "workers": 1,
                                            "progress": False})
    robustness_job(config, chunks=Path(chunks))
    return out


def _in_workers(config: RobustnessConfig, run_dir: Path, say: Callable[[str], None]) -> RobustnessReport:
    """Run ``config.workers`` shards side by side in worker processes (each with an equal share of the cores)
    into ``run_dir/shards/<k>`` and merge them."""
    n = config.workers
    threads = worker_threads(n)
    settings = {k: v for k, v in config.to_dict().items() if k not in ("shard", "out", "workers")}
    outs = [str(run_dir / "shards" / str(k)) for k in range(n)]
    say(f"evaluating in {n} worker processes, {threads} thread{'s' if threads > 1 else ''} each")
    with process_pool(n) as pool:
        done = list(pool.map(_shard_worker, [(settings, k, n, outs[k], threads, str(run_dir / CHUNKS))
                                             for k in range(n)]))
    return merge_reports([RobustnessReport.load(d) for d in done], names=done)


def _gathered(report: RobustnessReport, rank: int, world: int) -> RobustnessReport | None:
    """Under ``torchrun``: every rank's report gathered on rank 0 and merged there (None elsewhere)."""
    import torch.distributed as dist

    reports = [None] * world if rank == 0 else None
    dist.gather_object(report, reports, dst=0)
    return merge_reports(reports, names=[f"rank {r}" for r in range(world)]) if rank == 0 else None


def robustness_job(config: RobustnessConfig, *, log: Callable[[str], None] | None = None,
                   chunks: Path | None = None) -> tuple[Path | None, RobustnessReport | None]:
    """Evaluate, save the report (:meth:`RobustnessReport.save`) in a new run directory and return both.
    With ``workers`` the shards run in worker processes and are merged here; under ``torchrun`` every rank
    evaluates its shard and rank 0 merges them and writes the run directory (the other ranks return
    ``(None, None)``). Either way the records equal one process's at the same threads per process.

    The attacks save their finished chunks in ``RUN_DIR/chunks`` (or ``chunks``; under ``torchrun`` every
    rank in rank 0's run directory): the same command rerun with the same ``--out`` after an interruption
    reads them back (:mod:`advwsl.attacks.chunks`, keyed by everything the records depend on) and attacks
    only the rest."""
    say = log or (lambda message: None)
    plan = plan_robustness(config)
    for message in plan.notices:
        say(message)
    rank, world, _ = init_distributed()
    if world > 1 and (config.shard is not None or config.workers > 1):
        raise ConfigError("under torchrun every rank evaluates its own shard: drop --shard and --workers")
    device, resolved = start(config, say)
    data = job_data(config, resolved)
    config = config.replace(epsilon=config.epsilon or (get_dataset_spec(data.dataset).table_epsilon,))
    model = resolved.model.to(device).eval()
    with contextlib.ExitStack() as stack:
        run_dir = None
        if rank == 0:
            run_dir = _open(stack, config, lambda: _settings(config, plan, device, resolved, data), world)
        if world > 1:
            run_dir = _shared_path(run_dir, rank)
            shared = run_dir / CHUNKS
            if not shared.is_dir():  # (rank 0 created it: this rank does not see rank 0's filesystem)
                say(f"rank {rank} cannot see rank 0's run directory {run_dir} (no shared filesystem?): its attacks "
                    "save no chunks, so an interrupted run attacks its batches again")
                shared = None
            merged = _gathered(_evaluate(config, plan, model, data, resolved.name, (rank, world), shared), rank, world)
            if rank != 0:
                return None, None
            _finish(run_dir, merged, resolved.name, data)
            return run_dir, merged
        if config.workers > 1:
            report = _in_workers(config, run_dir, say)
        else:
            report = _evaluate(config, plan, model, data, resolved.name, config.shard, chunks or run_dir / CHUNKS)
        _finish(run_dir, report, resolved.name, data)
    return run_dir, report


def _open(stack: contextlib.ExitStack, config: RobustnessConfig, settings: Callable[[], dict[str, Any]],
          world: int) -> Path:
    """The run directory, created or continued (its chunks kept) and held until ``stack`` closes; under
    ``torchrun`` (on rank 0) with its chunks folder created, for the other ranks to learn its path -- or
    that it could not be opened."""
    try:
        run_dir = stack.enter_context(run_directory("evaluate-robustness", config.out, config=settings(),
                                                    keep_partial=(CHUNKS,), hint=CONTINUE))
        if world > 1:
            (run_dir / CHUNKS).mkdir(exist_ok=True)
        return run_dir
    except BaseException as exc:
        if world > 1:  # (the other ranks wait for the path)
            _broadcast([None, f"{type(exc).__name__}: {exc}"])
        raise


def _shared_path(run_dir: Path | None, rank: int) -> Path:
    """Under ``torchrun``: rank 0's run directory on every rank (the attacks' chunks are shared there, each
    rank writing its own batches' chunks, so that a rerun continues every rank; ranks on other machines
    need it on a shared filesystem)."""
    holder = _broadcast([str(run_dir.resolve()), None] if rank == 0 else [None, None])
    if holder[0] is None:
        raise ConfigError(f"rank 0 could not open the run directory ({holder[1]}); fix that and rerun")
    return Path(holder[0])


def _broadcast(holder: list[Any]) -> list[Any]:
    import torch.distributed as dist

    dist.broadcast_object_list(holder, src=0)
    return holder


def _finish(run_dir: Path, report: RobustnessReport, name: str, data: Any) -> None:
    """Save the report and its HTML page in ``run_dir``; the chunks go (the report holds every record now)."""
    report.save(run_dir)
    write_html_report(run_dir, f"advwsl evaluate-robustness: {name} on {data.description}")
    shutil.rmtree(run_dir / CHUNKS, ignore_errors=True)


def merge_job(config: MergeConfig) -> tuple[Path, RobustnessReport]:
    """Join the shards of one evaluation (their run directories) into the single-process report."""
    check_out(config.out, command="merge")
    dirs = list(config.run_dirs)
    merged = merge_reports([RobustnessReport.load(d) for d in dirs], names=dirs)
    with run_directory("merge", config.out, config={"shards": dirs}) as run_dir:
        merged.save(run_dir)
    return run_dir, merged
