"""The reference's findings on the weakly supervised tables (chapters 2 and 4) as claims tested over folds:
each fold trains every method and scores it on the same test images, so the difference of two methods is
paired fold by fold, with a t interval (95 %) over the folds. Three folds give wide intervals, and the
interval leans on roughly normal differences between folds: a verdict says what the run's folds decide, on
the data it ran on (a stand-in's verdict is the stand-in's)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats

from ..evaluation.statistics import UNDECIDED, verdict
from .findings import Verdict

__all__ = ["FoldDifference"]


@dataclass(frozen=True)
class FoldDifference:
    """``measure`` of ``a`` minus that of ``b`` (in points) for every pair ``(a, b)`` of ``pairs``, paired
    by (group, fold). The claim holds when every pair's 95 % t interval lies above ``above`` (below
    ``below``, or within ``±within`` for "the same"), and is contradicted when one pair's lies entirely on
    the other side."""

    claim: str
    pairs: tuple[tuple[str, str], ...]
    measure: str
    above: float | None = None
    below: float | None = None
    within: float | None = None

    def evaluate(self, per_fold: Sequence[Mapping[str, Any]]) -> Verdict:
        frame = pd.DataFrame(list(per_fold))
        parts, supports, against = [], [], []
        for a, b in self.pairs:
            d = _paired(frame, a, b, self.measure)
            if d.size < 2:
                return Verdict(self.claim, UNDECIDED, f"{d.size} fold(s) with both {a} and {b}: no interval", {})
            mean, sd = float(d.mean()), float(d.std(ddof=1))
            half = float(stats.t.ppf(0.975, d.size - 1) * sd / math.sqrt(d.size))
            low, high = mean - half, mean + half
            supports.append(self._inside(low, high))
            against.append(self._outside(low, high))
            parts.append(f"{a} against {b}: {mean:+.1f} [{low:+.1f}, {high:+.1f}] points, "
                         f"{_p_value(d, self._bound())} ({d.size} folds: {', '.join(f'{v:+.1f}' for v in d)})")
        bound = (f"> {self.above:g}" if self.above is not None else f"< {self.below:g}" if self.below is not None
                 else f"within ±{self.within:g}")
        return Verdict(self.claim, verdict(supports=all(supports), against=any(against)),
                       "; ".join(parts) + f" (paired t over folds; claim: {bound})",
                       {"pairs": [list(p) for p in self.pairs]})

    def _bound(self) -> float:
        """The difference the p-value tests against: the claim's bound (0 for "within")."""
        return self.above if self.above is not None else self.below if self.below is not None else 0.0

    def _inside(self, low: float, high: float) -> bool:
        if self.above is not None:
            return low > self.above
        if self.below is not None:
            return high < self.below
        return -self.within < low and high < self.within

    def _outside(self, low: float, high: float) -> bool:
        if self.above is not None:
            return high < self.above
        if self.below is not None:
            return low > self.below
        return high < -self.within or low > self.within


def _p_value(d: pd.Series, bound: float) -> str:
    """Two-sided paired t test of a mean difference equal to ``bound`` (the 95 % interval's dual: p < 0.05
    exactly when the interval excludes it); unadjusted over a claim's pairs."""
    if float(d.std(ddof=1)) == 0.0:
        return "p undefined (the same difference on every fold)"
    p = float(stats.ttest_1samp(d, bound).pvalue)
    return f"p = {p:.2g} against {bound:g}"


def _paired(frame: pd.DataFrame, a: str, b: str, measure: str) -> pd.Series:
    """``measure`` of ``a`` minus ``b`` in points, one value per (group, fold) both ran (and scored)."""
    if frame.empty or measure not in frame:
        return pd.Series(dtype=float)
    key = [c for c in ("group", "fold") if c in frame]
    sides = [frame[frame["method"] == m].set_index(key)[measure] for m in (a, b)]
    return (100 * (sides[0] - sides[1])).dropna()
