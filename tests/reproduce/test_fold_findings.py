"""The weakly supervised tables test the reference's findings over folds (paired t interval of the
difference between two methods, each fold scoring both on the same test images): on the committed stand-in
runs the verdicts are the README's, and each kind of claim can hold, be contradicted or stay undecided."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from advwsl.evaluation.statistics import CONTRADICTED, HOLDS, UNDECIDED
from advwsl.reproduce import get_entry
from advwsl.reproduce.fold_findings import FoldDifference

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"


@pytest.mark.parametrize("entry_id, verdicts", [("2.7", [HOLDS, CONTRADICTED, CONTRADICTED]),
                                                ("4.1", [HOLDS, UNDECIDED, UNDECIDED, UNDECIDED]),
                                                ("4.2", [UNDECIDED])])
def test_the_committed_stand_ins_give_the_readme_s_verdicts(entry_id, verdicts):
    folds = pd.read_csv(RESULTS / entry_id / "folds.csv").to_dict("records")
    found = [claim.evaluate(folds) for claim in get_entry(entry_id).findings]
    assert [v.verdict for v in found] == verdicts, [v.evidence for v in found]


def _folds(a, b):
    return [{"method": m, "group": "", "fold": k, "dice": v / 100} for m, values in (("A", a), ("B", b))
            for k, v in enumerate(values)]


@pytest.mark.parametrize("claim, a, b, expected", [
    (dict(above=0), [60, 61, 62], [50, 50.5, 51], HOLDS),
    (dict(above=0), [40, 41, 42], [50, 50.5, 51], CONTRADICTED),
    (dict(above=0), [60, 40, 55], [50, 50, 50], UNDECIDED),
    (dict(below=0), [40, 41, 42], [50, 50.5, 51], HOLDS),
    (dict(within=1), [50.1, 50.2, 49.9], [50, 50, 50], HOLDS),
    (dict(within=1), [53, 53.1, 52.9], [50, 50, 50], CONTRADICTED)])
def test_each_kind_of_claim_can_go_each_way(claim, a, b, expected):
    v = FoldDifference("A against B", (("A", "B"),), "dice", **claim).evaluate(_folds(a, b))
    assert v.verdict == expected, v.evidence


def test_one_fold_or_a_missing_method_decides_nothing():
    claim = FoldDifference("A above B", (("A", "B"),), "dice", above=0)
    assert claim.evaluate(_folds([60], [50])).verdict == UNDECIDED
    assert "0 fold(s) with both A and C" in FoldDifference("A above C", (("A", "C"),), "dice", above=0).evaluate(
        _folds([60, 61], [50, 51])).evidence


@pytest.mark.parametrize("a, b, bound", [([60, 61, 62], [50, 50.5, 51], 0), ([60, 40, 55], [50, 50, 50], 0),
                                         ([52, 53.5, 52.2], [50, 50, 50], 2)])
def test_the_p_value_agrees_with_the_interval(a, b, bound):
    """Each pair's evidence carries the paired t test's p against the claim's bound, its folds' differences,
    and p < 0.05 exactly when the 95 % interval leaves the bound out."""
    v = FoldDifference("A against B", (("A", "B"),), "dice", above=bound).evaluate(_folds(a, b))
    p = float(v.evidence.split("p = ")[1].split()[0])
    low, high = (float(t) for t in v.evidence.split("[")[1].split("]")[0].split(","))
    assert (p < 0.05) == (not low <= bound <= high), v.evidence
    assert f"against {bound:g}" in v.evidence and "3 folds: " in v.evidence
