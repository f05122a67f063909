"""Appendix V, section 7: Tables A V-5 / A V-6 and Figures A V-4 / A V-5 — a baseline, a Madry-trained and a
DDN-trained model (section A V-6's recipes, :func:`defense_model`) evaluated with C&W 9 x 10 000, DeepFool 100,
DDN 1 000 and their per-sample best (:func:`defense_table`); the shared helpers are in :mod:`.appendix_v`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd
import torch

from ..attacks import AttackResult, combine_results, get_attack_spec, run_attack
from ..config import DefenseTableSettings
from ..config.reproduce import DefenseSettings
from ..errors import AdvwslWarning, ConfigError
from ..evaluation.robustness import evaluate_robustness
from ..io import atomic_write_text
from ..models import checkpoint_info, load_model
from ..jobs.data import load_data
from ..pretrained.trained import trained_model
from ..plotting import plot_defense_examples, plot_robustness_curves
from ..utils import select_device, worker_threads
from .compare import Measure, side_by_side, side_by_side_markdown
from .findings import applies, evaluate_findings, findings_markdown
from .appendix_v import DATASETS, _budget_kwargs, _data, _spawned
from .registry import Context, Experiment, Outcome

__all__ = ["defense_table", "defense_model", "defense_recipe", "check_defense_checkpoints", "DEFENSE_TABLE"]

DEFENSE = (Measure("success", "Attack success (%)", "share"), Measure("mean_l2", "Mean L2"),
           Measure("median_l2", "Median L2"), Measure("accuracy", "Accuracy at eps (%)", "share"))


def defense_recipe(dataset: str, kind: str, defense: DefenseSettings, base: dict[str, Any]
                   ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The cache name, training recipe and adversarial options of the ``madry`` / ``ddn`` defense of
    ``dataset`` trained as ``defense`` says (section A V-6), ``base`` being the baseline's recipe."""
    d = defense
    recipe = {**base, "epochs": d.epochs, "lr": d.lr, "schedule": "step", "milestones": [d.milestone], "gamma": 0.1}
    adversarial = {"attack": "ddn" if kind == "ddn" else "pgd", "epsilon": d.epsilon,
                   "steps": d.ddn_steps if kind == "ddn" else d.pgd_steps, "levels": 256}
    return f"{base['model']}-{dataset}-{kind}", recipe, adversarial


def defense_model(dataset: str, kind: str, defense: DefenseSettings, base: dict[str, Any], *,
                  data_root: str | None = None, progress: bool = True,
                  log: Callable[[str], None] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The ``baseline`` of ``dataset``, or its ``madry`` / ``ddn`` defense trained as ``defense`` says (from
    scratch or from the baseline; cached, and resumed when a training was interrupted), or the checkpoint
    ``defense.checkpoints`` names. ``base`` is the baseline's training recipe."""
    if kind in defense.checkpoints:
        path = defense.checkpoints[kind]
        return load_model(path), {**checkpoint_info(path), "checkpoint": path}
    model, info = trained_model(f"{base['model']}-{dataset}", {**base, "progress": progress}, log=log)
    if kind == "baseline":
        return model, info
    name, recipe, adversarial = defense_recipe(dataset, kind, defense, base)
    return trained_model(name, {**recipe, "progress": progress}, adversarial=adversarial,
                         init=None if defense.from_scratch else info["checkpoint"], log=log)


def _defense_task(payload: tuple) -> str:
    """Worker process: train (or find in the cache) one defense; returns its checkpoint."""
    dataset, kind, defense, base, data_root, threads = payload
    torch.set_num_threads(threads)
    return defense_model(dataset, kind, DefenseSettings.from_mapping(defense), base, data_root=data_root,
                         progress=False)[1]["checkpoint"]


def _defended_all(ctx: Context, dataset: str, base: dict[str, Any]) -> dict[str, tuple[torch.nn.Module, dict]]:
    """The three models of the table; with ``ctx.workers > 1`` the baseline first, then the two defenses
    trained side by side in worker processes (the cores divided among them)."""
    d = ctx.settings.defense
    kinds = ("baseline", "madry", "ddn")
    pending = [k for k in kinds[1:] if k not in d.checkpoints]
    if ctx.workers > 1 and len(pending) > 1:
        defense_model(dataset, "baseline", d, base, data_root=ctx.data_root, progress=ctx.progress, log=ctx.log)
        threads = worker_threads(min(ctx.workers, len(pending)))
        ctx.log(f"training the {len(pending)} defenses in {min(ctx.workers, len(pending))} worker processes, "
                f"{threads} thread(s) each")
        _spawned(_defense_task, {k: (dataset, k, d.to_dict(), base, ctx.data_root, threads) for k in pending},
                 ctx.workers)
    return {k: defense_model(dataset, k, d, base, data_root=ctx.data_root, progress=ctx.progress, log=ctx.log)
            for k in kinds}


def defense_table(ctx: Context) -> Outcome:
    """Tables A V-5 / A V-6 and Figure A V-4 (see the module docstring). Settings: ``dataset``, ``n_samples``,
    ``epsilon`` (the accuracy column, 1.5 on MNIST), ``budgets`` (per attack), ``defense`` (``epsilon``:
    epsilon_max of the training adversarials, ``epochs``, ``lr``, ``milestone``, ``ddn_steps``, ``pgd_steps``)."""
    dataset = ctx.settings.dataset
    base = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.recipe}
    device = select_device(ctx.device)
    images, labels = _data(ctx, dataset, ctx.settings.n_samples)
    eps = ctx.settings.epsilon
    budgets, extras = _defense_attacks(ctx.settings)
    names = NAMES
    ours, curves, notes, rows, models = [], {}, [], {}, {}
    infos = _defended_all(ctx, dataset, base)
    attacked = _evaluations(ctx, infos, images, labels, budgets, extras, eps, dataset)
    reports = {kind: report for kind, (report, _) in attacked.items()}
    for kind, name in names.items():
        model, info = infos[kind]
        models[name] = model = model.to(device).eval()
        with torch.no_grad():
            clean = float((model(images.to(device)).argmax(1).cpu() == labels).float().mean())
        report = reports[kind]
        report.save(ctx.run_dir / kind)
        for key, result in report.results.items():
            rows[(name, key)] = result
        for result, row in zip(report.results.values(), report.table().to_dict(orient="records")):
            attack = row["attack"] if row["attack"] == "All" else f"{row['attack']} {row['budget']}"
            ours.append({"defense": name, "attack": attack, **_counts(result), "success": row["success"],
                         "mean_l2": row["mean_l2"], "median_l2": row["median_l2"],
                         "accuracy": row[f"accuracy_at_{eps:g}"]})
        curves[name] = report.curves()
        failed = [c.name for c in report.checks() if not c.passed]
        notes.append(f"- {name}: clean accuracy {100 * clean:.2f} % on these {len(labels)} images; sanity checks "
                     + ("all pass" if not failed else f"FAILED: {', '.join(failed)}")
                     + f"; checkpoint {info.get('checkpoint')}")
    ours += _extra_rows(ctx, reports, {kind: extra for kind, (_, extra) in attacked.items()}, rows, eps)
    _examples(ctx, models, images, labels, dataset)
    reference = [r for r in ctx.entry.reference if r.get("dataset") == DATASETS[dataset]["reference"]]
    frame = side_by_side(ours, reference, ["defense", "attack"], DEFENSE, extra=["images", "counted"])
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    plot_robustness_curves(curves, ctx.run_dir / "fig-A-V-4.png", epsilon=eps, attacks=("All",),
                           norms={f"{name} All": rows[(name, "All")].norms for name in names.values()},
                           title=f"Figure A V-4: accuracy under the best of the attacks ({dataset})")
    frames = [c.assign(defense=n) for n, c in curves.items()]
    atomic_write_text(ctx.run_dir / "fig-A-V-4.csv", pd.concat(frames, ignore_index=True).to_csv(index=False))
    d = ctx.settings.defense
    text = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    start = "are trained from scratch" if d.from_scratch else "start from the baseline and train"
    text += [f"Data: {dataset}, the first {len(labels)} test images. Defenses {start}: "
             f"{d.epochs} epochs (learning rate {d.lr}, x0.1 after {int(100 * d.milestone)} %) on adversarials "
             f"projected on the L2 ball of epsilon_max = {d.epsilon} (section A V-6): DDN {d.ddn_steps} steps "
             f"(eq. A V-9), or Madry with PGD-L2 {d.pgd_steps} steps (eq. A V-7). Accuracy at eps <= "
             f"{eps:g}. Ours / reference (ratio, or difference in points); 'counted': the images the model "
             "classifies correctly, over which success and norms are taken (the accuracy is over every image).", "",
             side_by_side_markdown(frame, ["defense", "attack", "images", "counted"], DEFENSE), *notes]
    verdicts = evaluate_findings(ctx.entry.findings, rows, dataset)
    text += findings_markdown(verdicts, tuple(c for c in ctx.entry.findings if not applies(c, dataset)))
    return Outcome("\n".join(text), ["table.csv", "fig-A-V-4.png", "fig-A-V-4.csv", "fig-A-V-5.png"],
                   {"rows": ours, "findings": [asdict(v) for v in verdicts]})


def _defense_attacks(settings: DefenseTableSettings) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The keyword arguments of each attack of a defense table's ``budgets`` and ``extra_budgets`` (its
    budget, then its ``attack_kwargs``), checked against the attack's signature."""
    def kwargs(attack: str, budget: str, where: str) -> dict[str, Any]:
        given = {**_budget_kwargs(attack, budget, settings.dataset), **settings.attack_kwargs.get(attack, {})}
        return get_attack_spec(attack).check(given, option=f"{where}.{attack}")
    return ({a: kwargs(a, b, "budgets") for a, b in settings.budgets.items()},
            {a: kwargs(a, b, "extra_budgets") for a, b in settings.extra_budgets.items()})


def _extra_rows(ctx: Context, reports: dict[str, Any], beyond: dict[str, dict[str, AttackResult]], rows: dict,
                eps: float) -> list[dict[str, Any]]:
    """The attacks of ``extra_budgets`` (e.g. FMN and FAB, which postdate the reference; ``beyond``: their
    results per model) as rows marked "beyond the reference", and the per-sample best over every attack; the
    reference's "All" row is left as the reference defines it (its three attacks)."""
    out = []
    for kind, name in NAMES.items():
        done = []
        for attack, budget in ctx.settings.extra_budgets.items():
            result = beyond[kind][attack]
            result.save(ctx.run_dir / kind, f"beyond-{attack}-{budget}")
            rows[(name, get_attack_spec(attack).display)] = result
            done.append(result)
        if done:
            best = combine_results([r for k, r in reports[kind].results.items() if k != "All"] + done)
            rows[(name, "All beyond")] = best
            for r, label in [*((r, f"{r.attack} {r.budget} (beyond the reference)") for r in done),
                             (best, "All, with the attacks beyond the reference")]:
                s = r.summary()
                out.append({"defense": name, "attack": label, **_counts(r), "success": s["success"],
                            "mean_l2": s["mean_l2"], "median_l2": s["median_l2"], "accuracy": float(r.accuracy(eps))})
    return out


def _counts(result: AttackResult) -> dict[str, int]:
    """A row's ``images`` (attacked) and ``counted`` (correctly classified: success and norms are over those;
    the accuracy is over every image)."""
    return {"images": len(result.originally_correct), "counted": int(result.originally_correct.sum())}


#: How the table names the three models.
NAMES = {"baseline": "Baseline", "madry": "Madry", "ddn": "Ours"}


def _model_attacks(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, kind: str,
                   budgets: dict[str, dict[str, Any]], extras: dict[str, dict[str, Any]], eps: float,
                   batch_size: int, chunks: Any, progress: bool, log: Callable[[str], None]
                   ) -> tuple[Any, dict[str, AttackResult]]:
    """One model's robustness evaluation (the reference's attacks, their best and the checks) and the
    attacks beyond the reference (``extras``: checked keyword arguments per attack)."""
    report = evaluate_robustness(model, images, labels, epsilon=eps, attacks=list(budgets), budgets=budgets,
                                 batch_size=batch_size, model_name=NAMES[kind], progress=progress, checkpoint=chunks)
    beyond = {}
    for attack, kwargs in extras.items():
        spec = get_attack_spec(attack)
        log(f"{NAMES[kind]}: {spec.display} {spec.budget_label(kwargs)} (beyond the reference)")
        beyond[attack] = run_attack(model, images, labels, attack=attack, attack_kwargs=kwargs, batch_size=batch_size,
                                    progress=progress, checkpoint=chunks)
    return report, beyond


def _evaluation_task(payload: tuple) -> Any:
    """One model's attacks (:func:`_model_attacks`) in a worker process (top level: spawned workers import it)."""
    checkpoint, dataset, data_root, n, threads, options = payload
    torch.set_num_threads(threads)
    data = load_data(dataset, split="test", data_root=data_root, n_samples=n)
    return _model_attacks(load_model(checkpoint).eval(), data.images, data.labels, progress=False,
                          log=lambda message: None, **options)


def _evaluations(ctx: Context, infos: dict[str, tuple], images: torch.Tensor, labels: torch.Tensor,
                 budgets: dict[str, dict[str, Any]], extras: dict[str, dict[str, Any]], eps: float, dataset: str
                 ) -> dict[str, tuple[Any, dict[str, AttackResult]]]:
    """Each model's robustness report and attacks beyond the reference: one model after another, or with
    ``ctx.workers > 1`` in worker processes side by side (the cores divided among them)."""
    options = {"budgets": budgets, "extras": extras, "eps": eps, "batch_size": ctx.settings.batch_size,
               "chunks": ctx.chunks}
    if ctx.workers > 1:
        threads = worker_threads(ctx.workers)
        ctx.log(f"evaluating the {len(infos)} models in {ctx.workers} worker processes, {threads} thread(s) each")
        return _spawned(_evaluation_task, {kind: (info["checkpoint"], dataset, ctx.data_root, len(labels), threads,
                                                  {**options, "kind": kind})
                                           for kind, (_, info) in infos.items()}, ctx.workers)
    device = select_device(ctx.device)
    out = {}
    for kind, (model, _) in infos.items():
        ctx.log(f"evaluating {NAMES[kind]}")
        out[kind] = _model_attacks(model.to(device).eval(), images, labels, kind=kind, progress=ctx.progress,
                                   log=ctx.log, **options)
    return out


def _examples(ctx: Context, models: dict[str, torch.nn.Module], images: torch.Tensor, labels: torch.Tensor,
              dataset: str) -> None:
    """Figure A V-5: DDN 1 000 adversarials of the first 10 test images against each model (one row each)."""
    x, y = images[:10], labels[:10]
    rows = []
    for name, model in models.items():
        result = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 1000}, batch_size=len(x),
                            progress=False, keep_adversarials=True, checkpoint=ctx.chunks)
        rows.append((name, result.adversarials, torch.as_tensor(result.adv_pred)))
    plot_defense_examples(x, rows, y, ctx.run_dir / "fig-A-V-5.png",
                          title=f"Figure A V-5: DDN 1000 adversarials against three models ({dataset}); above each: "
                                "predicted class and L2 norm")


def _check_defense_table(settings: DefenseTableSettings) -> None:
    """Refuse a defense table whose attack hyper-parameters the attacks do not take, or whose
    ``defense.checkpoints`` were trained otherwise than its ``defense`` settings say, before any training."""
    _defense_attacks(settings)
    check_defense_checkpoints(settings)


def check_defense_checkpoints(settings: Any) -> None:
    """Every checkpoint of ``settings.defense.checkpoints`` trained as ``settings.defense`` says, on
    ``settings.dataset`` (:func:`_check_trained_as_said`): Table A V-5's and Figure A V-2's check."""
    for kind, path in settings.defense.checkpoints.items():
        _check_trained_as_said(kind, path, settings)


def _check_trained_as_said(kind: str, path: str, settings: Any) -> None:
    """The checkpoint of the ``kind`` defense was trained as ``settings.defense`` says (its sidecar records
    the training recipe, the adversarial options and the epoch reached), so that the table's departures
    describe the models it evaluates: a checkpoint trained otherwise is refused with the ``--set`` that
    declares it; one whose sidecar records no training (trained elsewhere) gets a warning."""
    info = checkpoint_info(path)
    training, adversarial = info.get("training"), info.get("adversarial")
    if not isinstance(training, dict) or not isinstance(adversarial, dict):
        warnings.warn(f"defense.checkpoints.{kind} = {path} records no advwsl adversarial training: the table cannot "
                      "check that it was trained as its defense settings (section A V-6's recipe unless --set) say",
                      AdvwslWarning, stacklevel=2)
        return
    d = settings.defense
    steps = "ddn_steps" if kind == "ddn" else "pgd_steps"
    wanted = {"epochs": d.epochs, "lr": d.lr, "from_scratch": d.from_scratch, "epsilon": d.epsilon,
              steps: getattr(d, steps), "milestone": d.milestone}
    found = {"epochs": training.get("epochs"), "lr": training.get("lr"), "from_scratch": info.get("init") is None,
             "epsilon": adversarial.get("epsilon"), steps: adversarial.get("steps"),
             "milestone": (training.get("milestones") or [None])[0]}
    differ = [k for k in wanted if found[k] != wanted[k]]
    attack = "ddn" if kind == "ddn" else "pgd"
    problems = [f"{k} {found[k]!r} (the settings say {wanted[k]!r})" for k in differ]
    if adversarial.get("attack") != attack:
        problems.append(f"adversarials from {adversarial.get('attack')!r}, not {attack!r}")
    if training.get("dataset") != settings.dataset:
        problems.append(f"dataset {training.get('dataset')!r}, not {settings.dataset!r}")
    if problems:
        fix = " ".join(f"--set defense.{k}={json.dumps(found[k])}" for k in differ)
        raise ConfigError(f"defense.checkpoints.{kind} = {path} was trained with " + "; ".join(problems)
                          + (f": pass {fix} so that the table declares it" if fix else "")
                          + ", or give the checkpoint trained as the settings say")
    if info.get("epoch") != d.epochs:
        raise ConfigError(f"defense.checkpoints.{kind} = {path} is the model of epoch {info.get('epoch')} of its "
                          f"{d.epochs}: its training has not finished (rerun it to resume)")


DEFENSE_TABLE = Experiment("defense table", defense_table, DefenseTableSettings, check=_check_defense_table)

