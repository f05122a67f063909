"""Robustness evaluation of a model as in section A V-7: several minimal-norm attacks (C&W, DeepFool, DDN)
per sample, their per-sample minimum ("All"), the rows of Tables A V-5/A V-6 (attack success, mean L2,
median L2, accuracy at a chosen epsilon) and the accuracy-vs-epsilon curves of Figure A V-4, with the
sanity checks of :mod:`advwsl.evaluation.sanity`.

The work is split into batches of ``batch_size`` consecutive samples; shard ``k`` of ``N`` evaluates the
batches ``b`` with ``b % N == k``, each with the same seed as in a single-process run, so merging the
shards (:func:`merge_reports`) reproduces the single-process report exactly.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..config import Shard
from ..config.vocabulary import BudgetPreset
from ..attacks import AttackResult, combine_results, get_attack_spec, pgd_l2, run_attack
from ..attacks.chunks import model_sha256, tensors_sha256
from ..errors import AdvwslWarning, ConfigError, InputError
from ..logs import LOGGER
from ..utils import frozen, model_device
from . import sanity
from .robustness_report import RobustnessReport, concat_results, merge_reports

#: Budget presets: ``"reference"`` is section A V-7's (C&W 9 x 10 000, DeepFool 100, DDN 1 000: each attack's
#: ``AttackSpec.reference_budget``), ``"quick"`` a first look in minutes (``AttackSpec.quick_budget``).
PRESETS: tuple[str, ...] = BudgetPreset.__args__


def parse_shard(text: str | tuple[int, int] | Shard | None) -> tuple[int, int]:
    """``"k/N"`` (0 <= k < N), a pair or a :class:`~advwsl.config.Shard` as ``(k, N)``; None is ``(0, 1)``."""
    k, n = Shard.parse(text)
    return k, n


def default_epsilons(epsilon: float | Sequence[float], num: int = 41) -> tuple[float, ...]:
    """A curve grid from 0 to 2.5 times the (largest) table radius (the range of Figure A V-4 around it)."""
    top = max(epsilon) if isinstance(epsilon, Sequence) else epsilon
    return tuple(float(v) for v in np.round(np.linspace(0.0, 2.5 * top, num), 10))


def preset_budgets(attacks: Sequence[str], preset: str = "reference") -> dict[str, dict[str, Any]]:
    """Each attack's hyper-parameters under a budget preset (:data:`PRESETS`)."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    out = {}
    for name in attacks:
        spec = get_attack_spec(name)
        out[name] = spec.kwargs(spec.reference_budget if preset == "reference" else spec.quick_budget)
    return out


def _seed(seed: int, batch: int, salt: int) -> int:
    """A seed that depends only on the evaluation seed, the batch and the measurement (not on the shard)."""
    return (seed * 1_000_003 + batch * 7_919 + salt) % (2**31 - 1)


def _run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: np.ndarray, attack: Any,
         kwargs: dict[str, Any], levels: int | None, seed: int, name: str | None = None,
         precision: str = "fp32", channels_last: bool = False, checkpoint: Any = None) -> AttackResult:
    """One verified run on one batch, its records carrying the samples' positions ``index`` in the set."""
    torch.manual_seed(seed)
    r = run_attack(model, x, y, attack=attack, attack_kwargs=kwargs, batch_size=len(x), levels=levels,
                   progress=False, seed=seed, name=name, precision=precision, channels_last=channels_last,
                   checkpoint=checkpoint)
    return replace(r, index=index[r.index])


@dataclass(frozen=True)
class EvaluationPlan:
    """Everything an evaluation does, resolved and checked before any attack runs: the attacks and their
    budgets, the table radii and the curve grid, the lattice, the seed, the checks' settings (PGD radii,
    the attack rerun with more steps, the stride of its samples, the noise draws) and this shard's
    batches."""

    attacks: tuple[str, ...]
    budgets: dict[str, dict[str, Any]]
    radii: tuple[float, ...]
    epsilons: tuple[float, ...]
    levels: int | None
    seed: int
    checks: bool
    pgd_epsilons: tuple[float, ...]
    pgd_steps: int
    rerun: str
    more_kwargs: dict[str, Any]
    more_steps_factor: int
    check_samples: int
    stride: int
    noise_draws: int
    batch_size: int
    shard: tuple[int, int]
    batches: tuple[int, ...]
    n: int
    precision: str
    channels_last: bool

    def fingerprint(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Everything a shard's records depend on but its batches: :func:`merge_reports` refuses shards whose
        fingerprints differ, naming the field."""
        return {"model_sha256": model_sha256(model), "inputs_sha256": tensors_sha256(inputs),
                "labels_sha256": tensors_sha256(labels), "n_samples": self.n, "attacks": list(self.attacks),
                "budgets": self.budgets, "epsilon": list(self.radii), "epsilons": list(self.epsilons),
                "levels": self.levels, "seed": self.seed, "batch_size": self.batch_size, "checks": self.checks,
                "pgd_epsilons": list(self.pgd_epsilons), "pgd_steps": self.pgd_steps,
                "more_steps_factor": self.more_steps_factor, "check_samples": self.check_samples,
                "noise_draws": self.noise_draws, "precision": self.precision, "channels_last": self.channels_last,
                "advwsl": __version__}


def _check_arguments(inputs: torch.Tensor, labels: torch.Tensor, epsilon: float | Sequence[float],
                     attacks: Sequence[str], batch_size: int) -> tuple[float, ...]:
    radii = tuple(epsilon) if isinstance(epsilon, Sequence) else (epsilon,)
    if not radii or not all(isinstance(e, (int, float)) and math.isfinite(e) and e > 0 for e in radii):
        raise ConfigError(f"epsilon (the table's accuracy radius) must be positive, got {epsilon!r}")
    if not attacks:
        raise ConfigError("attacks is empty; name at least one of cw, deepfool, ddn")
    if len(set(attacks)) != len(attacks):
        raise ConfigError(f"attacks lists a name twice: {list(attacks)}")
    if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor) or len(inputs) != len(labels):
        raise InputError("inputs and labels must be tensors with one label per image, got "
                         f"{type(inputs).__name__} {tuple(getattr(inputs, 'shape', ()))} and "
                         f"{type(labels).__name__} {tuple(getattr(labels, 'shape', ()))}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return tuple(float(e) for e in radii)


def _more_steps(attacks: Sequence[str], budgets: dict[str, dict[str, Any]], factor: int) -> tuple[str, dict[str, Any]]:
    """The attack the more-steps check reruns (DDN when it ran) and its budget times ``factor``."""
    rerun = "ddn" if "ddn" in attacks else attacks[0]
    more = dict(budgets[rerun])
    params = inspect.signature(get_attack_spec(rerun).fn).parameters
    steps = more.get("steps", params["steps"].default if "steps" in params else None)
    if steps is None:
        raise ConfigError(f"the more-steps check needs a 'steps' budget; {rerun} has none (pass checks=False)")
    more["steps"] = int(steps) * factor
    return rerun, more


def plan_evaluation(inputs: torch.Tensor, labels: torch.Tensor, *, epsilon: float | Sequence[float],
                    attacks: Sequence[str], budgets: Mapping[str, Mapping[str, Any]] | None, preset: str,
                    epsilons: Sequence[float] | None, batch_size: int, levels: int | None, shard: Any, seed: int,
                    checks: bool, more_steps_factor: int, check_samples: int, noise_draws: int,
                    pgd_epsilons: Sequence[float] | None, pgd_steps: int, precision: str,
                    channels_last: bool) -> EvaluationPlan:
    """The :class:`EvaluationPlan` of :func:`evaluate_robustness`'s arguments (checked; nothing runs)."""
    k, n_shards = parse_shard(shard)
    radii = _check_arguments(inputs, labels, epsilon, attacks, batch_size)
    defaults = preset_budgets(attacks, preset)
    budgets = {name: dict((budgets or {}).get(name, defaults[name])) for name in attacks}
    rerun, more = _more_steps(attacks, budgets, more_steps_factor) if checks else (attacks[0], {})
    n = len(inputs)
    batches = tuple(b for b in range(math.ceil(n / batch_size)) if b % n_shards == k)
    if not batches:
        raise ConfigError(f"shard {k}/{n_shards} holds no batch: {n} samples make only "
                          f"{math.ceil(n / batch_size)} batches of {batch_size}; use fewer shards")
    mid = radii[0]
    pgd = tuple(float(e) for e in (pgd_epsilons if pgd_epsilons is not None else (mid / 2, mid, 2 * mid))) \
        if checks else ()
    return EvaluationPlan(
        tuple(attacks), budgets, radii,
        tuple(float(e) for e in (epsilons if epsilons is not None else default_epsilons(radii))), levels, seed,
        checks, pgd, pgd_steps, rerun, more, more_steps_factor, check_samples, max(1, math.ceil(n / check_samples)),
        noise_draws, batch_size, (k, n_shards), batches, n, precision, channels_last)


@dataclass
class _Records:
    """What the batches of a shard produced, per measurement."""

    attacks: dict[str, list[AttackResult]]
    pgd: dict[float, list[AttackResult]]
    more: list[AttackResult]
    noise: list[pd.DataFrame]


def _evaluate_batch(model: nn.Module, plan: EvaluationPlan, x: torch.Tensor, y: torch.Tensor, b: int,
                    records: _Records, checkpoint: Any = None) -> None:
    """Every measurement of batch ``b`` (samples ``x``, ``y``), added to ``records``: the attacks and, with
    the checks, PGD at each radius, the rerun with more steps on its samples, and the noise draws."""
    start = b * plan.batch_size
    index = np.arange(start, start + len(x))
    run = {"precision": plan.precision, "channels_last": plan.channels_last, "checkpoint": checkpoint}
    batch = [_run(model, x, y, index, name, plan.budgets[name], plan.levels, _seed(plan.seed, b, j), **run)
             for j, name in enumerate(plan.attacks)]
    for name, result in zip(plan.attacks, batch):
        records.attacks[name].append(result)
    if not plan.checks:
        return
    for j, eps in enumerate(plan.pgd_epsilons):
        records.pgd[eps].append(_run(model, x, y, index, pgd_l2, {"epsilon": eps, "steps": plan.pgd_steps},
                                     plan.levels, _seed(plan.seed, b, 100 + j), name="PGD", checkpoint=checkpoint))
    pick = np.flatnonzero(index % plan.stride == 0)
    if len(pick):
        records.more.append(_run(model, x[pick], y[pick], index[pick], plan.rerun, plan.more_kwargs, plan.levels,
                                 _seed(plan.seed, b, 200), checkpoint=checkpoint))
    best = combine_results(batch)
    device = model_device(model, x.device)
    fooled = sanity.noise_fooled(model, x.to(device), y.to(device), torch.from_numpy(best.norms).float(),
                                 draws=plan.noise_draws,
                                 generator=torch.Generator().manual_seed(_seed(plan.seed, b, 300)))
    records.noise.append(pd.DataFrame({"index": best.index, "noise_fooled": fooled.cpu().numpy()}))


def evaluate_robustness(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                        epsilon: float | Sequence[float], attacks: Sequence[str] = ("cw", "deepfool", "ddn"),
                        budgets: Mapping[str, Mapping[str, Any]] | None = None, preset: str = "reference",
                        epsilons: Sequence[float] | None = None, batch_size: int = 128, levels: int | None = 256,
                        shard: str | tuple[int, int] | Shard | None = None, seed: int = 0, checks: bool = True,
                        more_steps_factor: int = 3, check_samples: int = 64, noise_draws: int = 8,
                        pgd_epsilons: Sequence[float] | None = None, pgd_steps: int = 20,
                        model_name: str = "model", progress: bool = True, precision: str = "fp32",
                        channels_last: bool = False, checkpoint: str | Path | None = None) -> RobustnessReport:
    """Evaluate the robustness of ``model`` as in section A V-7 (Tables A V-5/A V-6, Figure A V-4).

    Every attack in ``attacks`` (registered names: ``cw``, ``deepfool``, ``ddn``, ...) runs untargeted on
    every sample through :func:`advwsl.attacks.run_attack` (verified records), with the keyword budget
    ``budgets[name]`` (default: the ``preset``'s: ``"reference"``, section A V-7's C&W 9 x 10 000, DeepFool
    100 and DDN 1 000, or ``"quick"``, minutes instead of hours; see :func:`preset_budgets`). ``"All"`` is
    the per-sample smallest adversarial over them.

    With ``checks``, three more measurements feed the sanity checks: PGD-L2 (``pgd_steps`` steps) at
    ``pgd_epsilons`` (default ``epsilon / 2, epsilon, 2 epsilon``), whose accuracies must not increase with
    epsilon; the first attack rerun with ``more_steps_factor`` times its steps on about ``check_samples``
    samples (every ``ceil(N / check_samples)``-th index); and ``noise_draws`` Gaussian perturbations per
    sample with the norm of its "All" adversarial.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits for images in [0, 1]; left as found.
    inputs, labels : Tensor
        The whole evaluation set ``(N, C, H, W)`` in [0, 1] and its labels ``(N,)`` (also when sharded:
        each shard picks its batches from it).
    epsilon : float or sequence of float
        Radius (radii) of the accuracy column(s) of the table (1.5 on MNIST, 0.5 on CIFAR-10 in the reference).
    epsilons : sequence of float, optional
        Grid of the curves (default :func:`default_epsilons`).
    batch_size : int
        Samples per batch; also the unit of sharding.
    levels : int or None
        Lattice of attacks that quantize (256: 8-bit images); None keeps floats.
    shard : "k/N", optional
        Evaluate only the batches ``b`` with ``b % N == k``; :func:`merge_reports` joins the shards.
    seed : int
        Every random draw of batch ``b`` is seeded from ``(seed, b)``, whatever the sharding.
    model_name : str
        Named in the warning of a model that looks gradient-masked.
    progress : bool
        Show a progress bar over batches.
    precision, channels_last
        Precision the attacks run in (``"fp32"``, ``"tf32"``, ``"bf16"``; results verified in fp32) and memory
        format (see :func:`advwsl.attacks.run_attack`).
    checkpoint : path, optional
        Folder of the finished attack chunks (``run_attack``'s ``checkpoint``): an interrupted evaluation
        given the same folder again attacks only what it had not finished, with the same records.

    Returns
    -------
    RobustnessReport
    """
    from tqdm.auto import tqdm

    plan = plan_evaluation(inputs, labels, epsilon=epsilon, attacks=attacks, budgets=budgets, preset=preset,
                           epsilons=epsilons, batch_size=batch_size, levels=levels, shard=shard, seed=seed,
                           checks=checks, more_steps_factor=more_steps_factor, check_samples=check_samples,
                           noise_draws=noise_draws, pgd_epsilons=pgd_epsilons, pgd_steps=pgd_steps,
                           precision=precision, channels_last=channels_last)
    if model.training:
        warnings.warn(f"{model_name} is in train mode; it is evaluated in eval mode and put back in train mode "
                      "afterwards (call model.eval() first to silence this)", AdvwslWarning, stacklevel=2)
    records = _Records({name: [] for name in plan.attacks}, {e: [] for e in plan.pgd_epsilons}, [], [])
    tic = time.perf_counter()
    k, n_shards = plan.shard
    with frozen(model):
        for i, b in enumerate(tqdm(plan.batches, desc=f"robustness {k}/{n_shards}", unit="batch",
                                   disable=not progress)):
            start = b * batch_size
            _evaluate_batch(model, plan, inputs[start:start + batch_size], labels[start:start + batch_size], b,
                            records, checkpoint)
            LOGGER.info("robustness of %s: batch %d of %d done (%.0f s so far)", model_name, i + 1,
                        len(plan.batches), time.perf_counter() - tic)
    results = {name: concat_results(records.attacks[name]) for name in plan.attacks}
    results["All"] = combine_results(list(results.values()))
    config = {"model_name": model_name, "attacks": list(plan.attacks), "budgets": plan.budgets, "preset": preset,
              "precision": precision, "channels_last": channels_last, "levels": levels,
              "fingerprint": plan.fingerprint(model, inputs, labels), "batch_size": batch_size, "seed": seed,
              "n_samples": plan.n, "checks": checks,
              "more_steps": {"attack": plan.rerun, **plan.more_kwargs} if checks else None,
              "check_stride": plan.stride, "noise_draws": noise_draws, "pgd_steps": pgd_steps,
              # this call's wall time only; each result's own seconds also count the chunks of earlier starts
              # restored from ``checkpoint``
              "shard": [k, n_shards], "seconds": time.perf_counter() - tic}
    return RobustnessReport(
        results, plan.radii, plan.epsilons, config, pgd={e: concat_results(v) for e, v in records.pgd.items()},
        more_steps=concat_results(records.more) if records.more else None,
        noise=pd.concat(records.noise, ignore_index=True) if records.noise else None)


__all__ = ["PRESETS", "EvaluationPlan", "RobustnessReport", "default_epsilons", "plan_evaluation", "evaluate_robustness", "merge_reports", "model_sha256",
           "parse_shard", "preset_budgets", "tensors_sha256"]
