"""Table A V-1's C&W 9 x 10 000 row, rerun with the original early-abort window, against the committed row
(which ran with a 100-step window) and DDN 1000 on the same digits.

    python experiments/compare_cw_abort.py experiments/results/A-V-1-cw-abort experiments/results/A-V-1

Prints, on the digits every run attacked and all three made adversarial: success rates, mean L2 of each,
gradients per digit, and the DDN 1000 / C&W mean-L2 ratio with a paired bootstrap 95 % interval (10,000
resamples, seed 0) for each C&W run.
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
    rerun, table = Path(sys.argv[1]), Path(sys.argv[2])
    new = pd.read_csv(rerun / "cw.csv").set_index("index")
    old = pd.read_csv(table / "cw-9x10000.csv").set_index("index")
    ddn = pd.read_csv(table / "ddn-1000.csv").set_index("index")
    idx = new.index[new.originally_correct.astype(bool)]
    o, n, d = old.loc[idx], new.loc[idx], ddn.loc[idx]
    both = (o.success & n.success & d.success).astype(bool)
    print(f"{len(idx)} correctly classified digits; success: 100-step window {100 * o.success.mean():.1f} %, "
          f"original window {100 * n.success.mean():.1f} %, DDN 1000 {100 * d.success.mean():.1f} %")
    print(f"on the {int(both.sum())} digits all three made adversarial, mean L2: C&W 100-step window "
          f"{o.l2[both].mean():.4f}, C&W original window {n.l2[both].mean():.4f}, DDN 1000 {d.l2[both].mean():.4f}")
    print(f"gradients per digit: 100-step window {o.n_backward.mean():.0f}, original window {n.n_backward.mean():.0f}")
    for name, cw in (("100-step window", o), ("original window", n)):
        r, lo, hi = _ratio_interval(d.l2[both].to_numpy(), cw.l2[both].to_numpy())
        print(f"DDN 1000 / C&W ({name}) mean L2: {r:.3f} [{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    main()
