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
