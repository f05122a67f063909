"""Table A V-1's C&W 9 x 10 000 row rerun with other early-abort settings, against the committed row (which
ran with a 100-step window) and DDN 1000 on the same digits.

    python experiments/compare_cw_abort.py experiments/results/A-V-1 \\
        "original window=experiments/results/A-V-1-cw-abort" \\
        "window 300, window-found 100=experiments/results/A-V-1-cw-fast"

Each LABEL=DIR is an ``advwsl attack --attack cw`` run directory on the first digits of the table. Prints,
on the digits every run attacked and all made adversarial: success rates, mean L2, gradients per digit, the
DDN 1000 / C&W mean-L2 ratio with a paired bootstrap 95 % interval (10,000 resamples, seed 0) for each C&W
run, and each rerun's mean L2 against the first rerun's (the same interval).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _ratio_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(a), (10_000, len(a)))
    boots = a[draws].mean(1) / b[draws].mean(1)
    return a.mean() / b.mean(), *np.percentile(boots, [2.5, 97.5])


def main() -> None:
    table = Path(sys.argv[1])
    reruns = dict(arg.split("=", 1) for arg in sys.argv[2:])
    runs = {label: pd.read_csv(Path(folder) / "cw.csv").set_index("index") for label, folder in reruns.items()}
    first = next(iter(runs.values()))
    idx = first.index[first.originally_correct.astype(bool)]
    for label, run in runs.items():
        idx = idx.intersection(run.index[run.originally_correct.astype(bool)])
    runs = {"100-step window (the table's row)": pd.read_csv(table / "cw-9x10000.csv").set_index("index"), **runs}
    ddn = pd.read_csv(table / "ddn-1000.csv").set_index("index").loc[idx]
    runs = {label: run.loc[idx] for label, run in runs.items()}
    both = ddn.success.astype(bool)
    for run in runs.values():
        both &= run.success.astype(bool)
    print(f"{len(idx)} correctly classified digits; success: "
          + ", ".join(f"{label} {100 * run.success.mean():.1f} %" for label, run in runs.items())
          + f", DDN 1000 {100 * ddn.success.mean():.1f} %")
    print(f"on the {int(both.sum())} digits all made adversarial, mean L2: "
          + ", ".join(f"C&W {label} {run.l2[both].mean():.4f}" for label, run in runs.items())
          + f", DDN 1000 {ddn.l2[both].mean():.4f}")
    print("gradients per digit: " + ", ".join(f"{label} {run.n_backward.mean():.0f}" for label, run in runs.items()))
    for label, run in runs.items():
        r, lo, hi = _ratio_interval(ddn.l2[both].to_numpy(), run.l2[both].to_numpy())
        print(f"DDN 1000 / C&W ({label}) mean L2: {r:.3f} [{lo:.3f}, {hi:.3f}]")
    labels = list(runs)[1:]
    for label in labels[1:]:
        r, lo, hi = _ratio_interval(runs[label].l2[both].to_numpy(), runs[labels[0]].l2[both].to_numpy())
        print(f"C&W ({label}) / C&W ({labels[0]}) mean L2: {r:.4f} [{lo:.4f}, {hi:.4f}]")


if __name__ == "__main__":
    main()
