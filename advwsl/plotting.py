"""All matplotlib code of advwsl (figures are written to files; the non-interactive Agg backend is used)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_robustness_curves(curves: Any, path: str | Path, *, title: str | None = None,
                           epsilon: float | None = None, attacks: Sequence[str] | None = None) -> Path:
    """Figure A V-4: model accuracy (%) against the maximum L2 norm epsilon of the perturbation.

    ``curves`` is the long-format frame of ``RobustnessReport.curves()`` (columns ``attack``, ``epsilon``,
    ``accuracy``), or a dict mapping a model name to such a frame (one colour per model, one line style per
    attack; ``All`` drawn solid and thick). ``attacks`` selects which attacks to draw (default all);
    bounded-attack points are drawn as markers. ``epsilon`` marks the radius of the table with a vertical
    line. Returns the written path (PNG)."""
    path = Path(path)
    frames = curves if isinstance(curves, dict) else {"": curves}
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m, (model, frame) in enumerate(frames.items()):
        colour = colours[m % len(colours)]
        names = [a for a in dict.fromkeys(frame["attack"]) if attacks is None or a in attacks]
        for j, attack in enumerate(names):
            sub = frame[frame["attack"] == attack].sort_values("epsilon")
            label = f"{model} {attack}".strip()
            if len(sub) <= 3:  # a bounded attack evaluated at a few radii
                ax.plot(sub["epsilon"], sub["accuracy"], "o", color=colour, ms=5, mfc="none", label=label)
            elif attack == "All":
                ax.plot(sub["epsilon"], sub["accuracy"], "-", color=colour, lw=2.2, label=label)
            else:
                ax.plot(sub["epsilon"], sub["accuracy"], linestyle=styles[j % len(styles)], color=colour, lw=1.2,
                        label=label)
    if epsilon is not None:
        ax.axvline(epsilon, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="maximum L2 norm of the perturbation (epsilon)", ylabel="accuracy (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(frames) > 1 else 1)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
