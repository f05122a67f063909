"""Table A V-1's findings with its C&W 9 x 10 000 row taken from another run on the same model and digits
(e.g. the baseline of Table A V-5, which attacks the first test digits with C&W 9 x 10 000 as well).

    python experiments/a_v_1_findings_with_cw.py experiments/results/A-V-1 experiments/results/A-V-5/baseline/attack-cw

The other rows are A-V-1's (``<attack>-<budget>.csv/json``); the C&W result is the stem of a saved
:class:`~advwsl.attacks.AttackResult`. Refuses when the two disagree on a shared digit's label or clean
prediction (another model or other digits). Prints the C&W row's summary and every A V-1 finding, each on
the digits both of its rows attacked and made adversarial (paired bootstrap 95 % intervals, as the table's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from advwsl.attacks.result import load_result
from advwsl.reproduce import get_entry
from advwsl.reproduce.findings import evaluate_findings, findings_markdown


def main(table: str, cw_stem: str) -> None:
    entry = get_entry("A-V-1")
    rows = {}
    for row in entry.settings.rows:
        path = Path(table) / f"{row.attack}-{row.budget}"
        if path.with_suffix(".csv").is_file():
            rows[row.key] = load_result(path)
    cw = load_result(cw_stem)
    reference = rows[("ddn", "100")]
    if not np.array_equal(np.sort(cw.index), np.sort(reference.index)[:len(cw.index)]):
        raise SystemExit(f"{cw_stem} did not attack the first {len(cw.index)} digits of {table}: the findings pair "
                         "rows image by image")
    shared, i, j = np.intersect1d(reference.index, cw.index, return_indices=True)
    for column in ("label", "clean_pred"):
        if not np.array_equal(getattr(reference, column)[i], getattr(cw, column)[j]):
            raise SystemExit(f"{cw_stem} and {table} disagree on the {column} of shared digits: not the same model "
                             "and digits")
    rows[("cw", "9x10000")] = cw
    s = cw.summary()
    print(f"C&W 9x10000 from {cw_stem}: {len(cw.index)} digits ({len(shared)} shared with {table}), "
          f"{int(cw.originally_correct.sum())} correctly classified; success {100 * s['success']:.1f} %, mean L2 "
          f"{s['mean_l2']:.4f}, median L2 {s['median_l2']:.4f}, {float(np.mean(cw.n_backward)):.0f} gradients "
          f"per digit; options {cw.params}")
    print("\n".join(findings_markdown(evaluate_findings(entry.findings, rows, "mnist-5k"))))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
