"""Curves: learning curves, accuracy against the L2 norm (robustness curves), CAM change against epsilon,
sweeps and the histogram of C&W constants."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np


from . import _base
from ._base import LINE_STYLES, MARKERS, MIN_FONT, _palette, _percent


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | Path, *, title: str | None = None,
                         metrics: Sequence[str] = ("accuracy", "dice", "dice_pixels")) -> Path:
    """Learning curves of a training run: training and validation loss (left) and the validation
    ``metrics`` present in the rows plus the training accuracy (right), against the epoch.

    ``history`` holds one dict per epoch with ``epoch``, ``train_<name>`` and ``valid_<name>`` keys
    (the rows of a run's ``metrics.csv``). Returns the written path (PNG)."""
    path = Path(path)
    epochs = [float(r["epoch"]) for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))

    def series(key: str) -> list[float] | None:
        values = [float(r.get(key, math.nan)) for r in history]
        return None if all(math.isnan(v) for v in values) else values

    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        values = series(key)
        if values is not None:
            ax_loss.plot(epochs, values, marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    plotted = [("train_accuracy", "train accuracy")] + [(f"valid_{m}", f"valid {m}") for m in metrics]
    for key, label in plotted:
        values = series(key)
        if values is not None:
            ax_metric.plot(epochs, [100 * v for v in values], marker="o", ms=3, label=label)
    ax_metric.set(xlabel="epoch", ylabel="%", title="metrics", ylim=(0, 100))
    ax_metric.legend()
    ax_metric.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path = _base._save(fig, path, 120)
    return path


def _curve_from_norms(values: Any, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact accuracy(ε) = share of samples whose minimal norm is > ε (0: misclassified, inf: never
    fooled), on a grid from 0 to ``top`` that holds every finite norm (the steps fall where they are)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    eps = np.union1d(np.linspace(0.0, top, 401), finite[finite <= top])
    return eps, (v[None, :] > eps[:, None]).mean(axis=1)


def _robustness_series(frames: dict[str, Any], attacks: Sequence[str] | None,
                       norms: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """One entry per curve to draw (model, attack, label, epsilon, accuracy, bounded, never-fooled share) and
    the right end of the x axis: every curve's largest finite norm (and largest grid value) is inside it."""
    finite = [float(np.max(f)) for f in (np.asarray(v, float)[np.isfinite(np.asarray(v, float))]
                                         for v in norms.values()) if f.size]
    top = max([float(frame["epsilon"].max()) for frame in frames.values() if len(frame)] + finite + [1e-3])
    top = top * 1.05 if finite else top
    series = []
    for model, frame in frames.items():
        for attack in [a for a in dict.fromkeys(frame["attack"]) if attacks is None or a in attacks]:
            label = f"{model} {attack}".strip()
            sub = frame[frame["attack"] == attack].sort_values("epsilon")
            entry = {"model": model, "attack": attack, "label": label, "epsilon": sub["epsilon"].to_numpy(float),
                     "accuracy": sub["accuracy"].to_numpy(float), "bounded": len(sub) <= 3, "never": None}
            if label in norms:
                values = np.asarray(norms[label], float)
                entry["epsilon"], entry["accuracy"] = _curve_from_norms(values, top)
                entry["bounded"], entry["never"] = False, float(np.isinf(values).mean())
            series.append(entry)
    seen = {e["label"] for e in series}
    for label in (k for k in norms if k not in seen and (attacks is None or k in attacks) and not len(frames) > 1):
        eps, acc = _curve_from_norms(norms[label], top)
        series.append({"model": "", "attack": label, "label": label, "epsilon": eps, "accuracy": acc,
                       "bounded": False, "never": float(np.isinf(np.asarray(norms[label], float)).mean())})
    return series, top


def plot_robustness_curves(curves: Any, path: str | Path, *, title: str | None = None,
                           epsilon: float | Sequence[float] | None = None, attacks: Sequence[str] | None = None,
                           ylabel: str = "accuracy (%)", norms: dict[str, Any] | None = None) -> Path:
    """Figure A V-4: model accuracy against the maximum L2 norm epsilon of the perturbation.

    ``curves`` is a long-format frame (columns ``attack``, ``epsilon``, ``accuracy`` as a share in [0, 1];
    drawn in percent), or a dict mapping a model name to such a frame. ``norms`` optionally maps a curve's
    label (``"<model> <attack>"``, or the attack alone for one model) to its per-sample minimal norms
    (0: misclassified, inf: never fooled; ``AttackResult.norms``): that curve is then drawn exactly, on a
    grid holding every norm, and its legend says which share was never fooled.

    The x axis reaches every curve's largest finite norm and the end of every given grid; a curve still
    above 0 % at the right edge is labelled there with its value. Every curve has its own colour, line
    style and marker (with several models: a colour per model, a style per attack); ``All`` (per sample the
    best attack) is a wide translucent band drawn underneath, so the attack that coincides with it stays
    visible. ``attacks`` selects which attacks to draw (default all); bounded-attack points (three or fewer
    radii) are drawn as markers. ``epsilon`` marks the radius (or radii) of the table with vertical lines;
    ``ylabel`` names what the curve measures (accuracy, or for the CAM goal the share of intact CAMs).
    Returns the written path (PNG)."""
    path = Path(path)
    frames = curves if isinstance(curves, dict) else {"": curves}
    series, top = _robustness_series(frames, attacks, dict(norms or {}))
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    several = len(frames) > 1
    models = list(frames)
    for k, entry in enumerate(series):
        colour, style, marker = _palette(models.index(entry["model"]) if several else k)
        if several:
            style = LINE_STYLES[list(dict.fromkeys(e["attack"] for e in series)).index(entry["attack"]) % len(LINE_STYLES)]
        _draw_curve(ax, entry, colour, style, marker, several=several)
    marks = [] if epsilon is None else [epsilon] if isinstance(epsilon, (int, float)) else list(epsilon)
    for eps in marks:
        ax.axvline(float(eps), color="grey", lw=0.8, ls=":", zorder=0)
    right = max([top] + [float(e) * 1.02 for e in marks])
    ax.set(xlabel="maximum L2 norm of the perturbation (epsilon)", ylabel=ylabel, ylim=(0, 102), xlim=(0, right * 1.08))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_FONT, ncol=2 if several or len(series) > 5 else 1)
    if title:
        ax.set_title(title)
    return _base._save(fig, path, 120)


def _draw_curve(ax: Any, entry: dict[str, Any], colour: Any, style: Any, marker: str, *, several: bool) -> None:
    """One curve of :func:`plot_robustness_curves` (see there for the styles)."""
    eps, y = entry["epsilon"], 100 * entry["accuracy"]
    label = entry["label"]
    if entry["never"]:
        label += f" ({_percent(100 * entry['never'])} never fooled)"
    if entry["bounded"]:  # a bounded attack evaluated at a few radii
        ax.plot(eps, y, marker, color=colour, ms=6, mfc="none", mew=1.4, label=label, zorder=4)
        return
    if entry["attack"] == "All":
        ax.plot(eps, y, "-", color=colour if several else "black", lw=5, alpha=0.3, label=label, zorder=1,
                solid_capstyle="butt")
    else:
        ax.plot(eps, y, linestyle=style, color=colour, lw=1.6, marker=marker, ms=4.5, mfc="none",
                markevery=max(1, len(eps) // 8), label=label, zorder=3)
    if len(y) and y[-1] > 0.5:  # what is left at the right edge is said, not left to the eye
        ax.annotate(_percent(y[-1]), (eps[-1], y[-1]), xytext=(3, 0), textcoords="offset points",
                    fontsize=MIN_FONT, color=colour if entry["attack"] != "All" or several else "black",
                    va="center")


def plot_cam_curves(curve: Any, path: str | Path, *, accuracy: Any | None = None,
                    title: str | None = None) -> Path:
    """CAM robustness against the L2 budget ε, in three panels, each on its own scale: accuracy (share)
    from the minimal norms (``accuracy``: a frame with ``epsilon`` and ``accuracy`` in [0, 1], optional)
    and the CAM's agreement with the ground truth (``mask_dice``, ``mask_iou``, when present); the
    agreement of the adversarial CAM with the clean one (``cam_dice``, ``cam_iou``, ``cam_spearman``); and
    how far its centre of mass moved (``com_shift_px`` in pixels, else ``com_shift`` as a fraction of the
    image diagonal), from 0 to its own maximum. ``curve`` is the frame of
    :func:`advwsl.evaluation.cams.cam_robustness`. Returns the path."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.0))
    lines = [(left, accuracy, "accuracy", "accuracy", "black")] if accuracy is not None else []
    lines += [(left, curve, "mask_dice", "CAM vs mask: Dice", "tab:green"),
              (left, curve, "mask_iou", "CAM vs mask: IoU", "tab:olive"),
              (middle, curve, "cam_dice", "Dice(clean CAM, adv CAM)", "tab:blue"),
              (middle, curve, "cam_iou", "IoU(clean CAM, adv CAM)", "tab:orange"),
              (middle, curve, "cam_spearman", "Spearman rank correlation", "tab:purple")]
    shift = "com_shift_px" if "com_shift_px" in curve else "com_shift"
    lines.append((right, curve, shift, "centre-of-mass shift", "tab:red"))
    for k, (ax, frame, key, label, colour) in enumerate(lines):
        if frame is not None and key in frame:
            ax.plot(frame["epsilon"], frame[key], linestyle=LINE_STYLES[k % len(LINE_STYLES)], color=colour,
                    lw=2 if key == "accuracy" else 1.5, marker=None if key == "accuracy" else MARKERS[k],
                    ms=4, mfc="none", markevery=max(1, len(frame) // 10), label=label)
    lowest = float(np.nanmin(curve["cam_spearman"])) if "cam_spearman" in curve and curve["cam_spearman"].notna().any() else 0.0
    left.set(ylabel="share / score", ylim=(0, 1.02), title="prediction and localization")
    middle.set(ylabel="mean over images", ylim=(min(-0.02, lowest - 0.05), 1.02),
               title="agreement with the clean CAM")
    top = float(np.nanmax(curve[shift])) if shift in curve and curve[shift].notna().any() else 0.0
    right.set(ylabel="pixels" if shift == "com_shift_px" else "fraction of the image diagonal",
              ylim=(0, top * 1.15 if top > 0 else 1.0), title="centre-of-mass shift (mean over images)")
    for ax in (left, middle, right):
        ax.set_xlabel("L2 budget epsilon")
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=MIN_FONT)
    if title:
        fig.suptitle(title, fontsize=10)
    return _base._save(fig, path, 110)


def plot_sweep(frame: Any, path: str | Path, *, measures: Sequence[str], labels: dict[str, str] | None = None,
               x: str = "x", lines: str = "method", panels: str | None = None, xlabel: str = "",
               log_x: bool = False, title: str | None = None) -> Path:
    """A hyper-parameter or training-set sweep (Figures 2.8, 2.9, 3.3, 4.2, 4.3): for each panel (a value of
    the ``panels`` column, or one overall) and each measure, the mean (drawn in percent; shares in [0, 1] in
    ``frame``) against ``x``, one line per value of ``lines``, with the ``<measure>_std`` band when present.
    ``labels`` names the measures on the y axes. Returns the written path (PNG)."""
    path = Path(path)
    panel_values = list(dict.fromkeys(frame[panels])) if panels else [None]
    cells = [(p, m) for p in panel_values for m in measures]
    cols = min(len(cells), 2 if len(cells) % 2 == 0 or len(cells) > 3 else len(cells))
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (panel, measure) in zip(axes.ravel(), cells):
        sub = frame if panel is None else frame[frame[panels] == panel]
        for name in dict.fromkeys(sub[lines]):
            part = sub[sub[lines] == name].sort_values(x)
            y = 100 * part[measure].astype(float)
            ax.plot(part[x], y, "o-", ms=3.5, lw=1.3, label=str(name))
            if f"{measure}_std" in part:
                s = 100 * part[f"{measure}_std"].astype(float).fillna(0.0)
                ax.fill_between(part[x], y - s, y + s, alpha=0.15)
        if log_x:
            ax.set_xscale("symlog", linthresh=min(v for v in frame[x] if v > 0) if (frame[x] > 0).any() else 1.0)
        ax.set(xlabel=xlabel or x, ylabel=f"{(labels or {}).get(measure, measure)} (%)")
        if panel is not None:
            ax.set_title(str(panel), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    if title:
        fig.suptitle(textwrap.fill(title, 45 * cols), fontsize=10)
    return _base._save(fig, path, 120)


def plot_constant_histogram(constants: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Figure A V-2: the histogram of log2 of each image's best C&W constant ``c``, one outlined histogram per
    model (``constants``: model name -> array, NaN where C&W found no adversarial), on bins of width 1/2."""
    values = {k: np.log2(np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))]) for k, v in
              constants.items()}
    finite = np.concatenate([v for v in values.values() if v.size]) if any(v.size for v in values.values()) \
        else np.zeros(1)
    low, high = math.floor(finite.min()) - 1, math.ceil(finite.max()) + 1
    bins = np.arange(low, high + 0.5, 0.5)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    for name, v in values.items():
        ax.hist(v, bins=bins, histtype="step", linewidth=1.6, label=f"{name} ({v.size} images)")
    ax.set_xlabel("log2 of the best constant c")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    return _base._save(fig, path, 120)
