"""Statistics of paired claims against closed forms and known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from advwsl.errors import InputError
from advwsl.evaluation.statistics import (CONTRADICTED, HOLDS, UNDECIDED, holm, mcnemar_exact,
                                          paired_ratio_interval, verdict)


def test_exact_mcnemar_matches_the_binomial_test():
    # 6 images right by A only, 1 by B only: the two-sided exact p is 2 * P(X <= 1), X ~ B(7, 1/2) = 0.125
    a = np.array([1] * 6 + [0] * 1 + [1] * 20 + [0] * 13, bool)
    b = np.array([0] * 6 + [1] * 1 + [1] * 20 + [0] * 13, bool)
    t = mcnemar_exact(a, b)
    assert (t.only_a, t.only_b, t.n) == (6, 1, 40) and t.p == pytest.approx(0.125)
    assert t.p == pytest.approx(stats.binomtest(1, 7, 0.5).pvalue)
    assert t.difference == pytest.approx(5 / 40)
    assert mcnemar_exact(a, a).p == 1.0


def test_paired_ratio_interval_covers_the_true_ratio():
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, 400)
    a, b = 1.1 * base * rng.uniform(0.95, 1.05, 400), base
    r = paired_ratio_interval(a, b)
    assert r.low < 1.1 < r.high and r.low > 1.0 and r.n == 400
    assert r.ratio == pytest.approx(a.sum() / b.sum())
    # pairing matters: the same samples unpaired (shuffled) give a wider interval
    unpaired = paired_ratio_interval(a, rng.permutation(b))
    assert unpaired.high - unpaired.low > r.high - r.low
    with pytest.raises(InputError):
        paired_ratio_interval(a, b[:10])


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_verdicts():
    assert verdict(supports=True, against=False) == HOLDS
    assert verdict(supports=False, against=True) == CONTRADICTED
    assert verdict(supports=False, against=False) == UNDECIDED
