"""The reference's findings as testable claims, and their verdicts on a run: "holds", "contradicted" or "not
resolved at this sample size", decided by the interval or the p-value (:mod:`advwsl.evaluation.statistics`),
never by eye.

* :class:`NormRatio` — one attack's mean L2 against another's on the same images (both successful), with a
  paired bootstrap 95 % interval of the ratio: e.g. "DDN 100 is within 5 % of C&W 9 x 10 000".
* :class:`FailureShare` — an attack fails on a sizeable share of the images (exact binomial interval).
* :class:`AccuracyGap` — one model more accurate than another at radii epsilon under the "All" attack, on the
  same images (exact McNemar test, Holm-adjusted over the radii).
* :class:`TargetedNormRatio` — targeted tables (A V-2 to A V-4): one attack's mean L2 against another's on the
  (image, target) pairs both made adversarial (the "average" columns) or, per image, on its worst target
  (the "least likely" columns); the interval comes from a bootstrap over images, whose targets are not
  independent.
* :class:`SuccessGap` — targeted tables: one attack reaches every target of fewer images than another (the
  "least likely" success), exact McNemar test on the images.

Each claim names rows of the run (``(attack, budget)`` for attack tables, ``(model, attack)`` for defense
tables); :func:`evaluate_findings` gives a :class:`Verdict` per claim, and :func:`findings_markdown` the list
every output ends with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..attacks import AttackResult
from ..evaluation.statistics import (CONTRADICTED, HOLDS, UNDECIDED, holm, mcnemar_exact, paired_ratio_interval,
                                     verdict)

__all__ = ["NormRatio", "FailureShare", "AccuracyGap", "TargetedNormRatio", "SuccessGap", "Verdict", "evaluate_findings", "findings_markdown", "applies",
           "same_images_l2"]

Key = tuple[str, str]


@dataclass(frozen=True)
class Verdict:
    """A claim, what the run measured (``evidence``: the statistic with its interval or p-value) and the
    verdict; ``missing`` when a row it needs did not run."""

    claim: str
    verdict: str
    evidence: str
    numbers: dict[str, Any]


def _paired(a: AttackResult, b: AttackResult) -> tuple[np.ndarray, np.ndarray]:
    """The L2 norms of ``a`` and ``b`` on the images both made adversarial (the images of the smaller run)."""
    ia, ib = np.argsort(a.index), np.argsort(b.index)
    n = min(len(ia), len(ib))
    ia, ib = ia[:n], ib[:n]
    both = a.success[ia] & b.success[ib]
    return a.l2[ia][both], b.l2[ib][both]


def same_images_l2(result: AttackResult, other: AttackResult) -> float:
    """Mean L2 of ``other`` on the images ``result`` ran on and both made adversarial (the "same images"
    column of a row run on fewer images)."""
    _, b = _paired(result, other)
    return float(b.mean()) if b.size else float("nan")


@dataclass(frozen=True)
class NormRatio:
    """``mean L2 (numerator) / mean L2 (denominator)`` on the same images: the claim holds when the 95 %
    interval lies below ``below`` (or above ``above``), is contradicted when it lies entirely on the other
    side."""

    claim: str
    numerator: Key
    denominator: Key
    below: float | None = None
    above: float | None = None
    dataset: str = "mnist"

    def _judged(self, r: Any) -> tuple[str, str]:
        """The verdict of the ratio interval ``r`` against the claim's bound, and the bound as text."""
        if self.below is not None:
            return (verdict(supports=r.high < self.below, against=r.low > self.below), f"< {self.below:g}")
        return verdict(supports=r.low > self.above, against=r.high < self.above), f"> {self.above:g}"

    def evaluate(self, rows: Mapping[Key, AttackResult]) -> Verdict:
        if self.numerator not in rows or self.denominator not in rows:
            return Verdict(self.claim, UNDECIDED, "a row it needs did not run", {})
        a, b = _paired(rows[self.numerator], rows[self.denominator])
        if a.size < 2:
            return Verdict(self.claim, UNDECIDED, f"{a.size} images both attacks made adversarial", {})
        r = paired_ratio_interval(a, b)
        v, bound = self._judged(r)
        return Verdict(self.claim, v, f"mean-L2 ratio {r} (claim: {bound})",
                       {"ratio": r.ratio, "low": r.low, "high": r.high, "n": r.n})


@dataclass(frozen=True)
class FailureShare:
    """``attack`` fails on more than ``above`` of the correctly classified images (the exact 95 % binomial
    interval of its failure share lies above ``above``; contradicted when it lies below)."""

    claim: str
    attack: Key
    above: float
    dataset: str = "mnist"

    def evaluate(self, rows: Mapping[Key, AttackResult]) -> Verdict:
        if self.attack not in rows:
            return Verdict(self.claim, UNDECIDED, "the row did not run", {})
        r = rows[self.attack]
        n = int(r.originally_correct.sum())
        k = int((r.originally_correct & ~r.success).sum())
        ci = stats.binomtest(k, n).proportion_ci(0.95) if n else None
        if ci is None:
            return Verdict(self.claim, UNDECIDED, "no correctly classified image", {})
        v = verdict(supports=ci.low > self.above, against=ci.high < self.above)
        return Verdict(self.claim, v, f"fails on {k} of {n} images, 95 % interval [{100 * ci.low:.1f}, "
                                      f"{100 * ci.high:.1f}] % (claim: > {100 * self.above:g} %)",
                       {"failures": k, "n": n, "low": ci.low, "high": ci.high})


@dataclass(frozen=True)
class AccuracyGap:
    """``better`` (a model) is more accurate than ``worse`` under ``attack`` at every radius of ``epsilons``
    on the same images: exact McNemar tests, Holm-adjusted; holds when every adjusted p < 0.05 favours
    ``better``, contradicted when one favours ``worse``."""

    claim: str
    better: str
    worse: str
    epsilons: tuple[float, ...]
    attack: str = "All"
    dataset: str = "mnist"

    def evaluate(self, rows: Mapping[Key, AttackResult]) -> Verdict:
        a, b = rows.get((self.better, self.attack)), rows.get((self.worse, self.attack))
        if a is None or b is None:
            return Verdict(self.claim, UNDECIDED, "a model it needs did not run", {})
        na, nb = a.norms[np.argsort(a.index)], b.norms[np.argsort(b.index)]
        tests = [mcnemar_exact(na > e, nb > e) for e in self.epsilons]
        adjusted = holm([t.p for t in tests])
        favours = [p < 0.05 and t.difference > 0 for t, p in zip(tests, adjusted)]
        against = [p < 0.05 and t.difference < 0 for t, p in zip(tests, adjusted)]
        v = verdict(supports=all(favours), against=any(against))
        detail = "; ".join(f"eps {e:g}: {100 * t.difference:+.1f} points ({t.only_a} vs {t.only_b} images, "
                           f"p = {p:.2g})" for e, t, p in zip(self.epsilons, tests, adjusted))
        return Verdict(self.claim, v, f"{detail} (Holm-adjusted exact McNemar, n = {tests[0].n})",
                       {"epsilons": list(self.epsilons), "differences": [t.difference for t in tests],
                        "p_adjusted": adjusted})


def _targeted_pairs(a: AttackResult, b: AttackResult) -> pd.DataFrame:
    """The records of two targeted runs on the same (image, target) pairs of the images ``a`` classified
    correctly: columns ``index``, ``l2_a``, ``l2_b``, ``ok_a``, ``ok_b`` (success)."""
    def frame(r: AttackResult, side: str) -> pd.DataFrame:
        keep = r.originally_correct
        return pd.DataFrame({"index": r.index[keep], "target": r.target[keep], f"l2_{side}": r.l2[keep],
                             f"ok_{side}": r.success[keep]})

    return frame(a, "a").merge(frame(b, "b"), on=["index", "target"], how="inner")


def _per_image(pairs: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Per image: ``l2_a``, ``l2_b`` (the sums over the pairs both made adversarial for ``"average"``; the
    largest norm over the image's targets for ``"least_likely"``) and ``ok_a``, ``ok_b`` (every target
    reached), with ``pairs`` the number of pairs counted."""
    if scenario == "average":
        both = pairs[pairs["ok_a"] & pairs["ok_b"]]
        out = both.groupby("index").agg(l2_a=("l2_a", "sum"), l2_b=("l2_b", "sum"), pairs=("l2_a", "size"))
        return out.assign(ok_a=True, ok_b=True)
    out = pairs.groupby("index").agg(l2_a=("l2_a", "max"), l2_b=("l2_b", "max"), ok_a=("ok_a", "all"),
                                     ok_b=("ok_b", "all"), pairs=("l2_a", "size"))
    return out


_SCENARIO = {"average": "the (image, target) pairs both reached", "least_likely": "each image's worst target"}


@dataclass(frozen=True)
class TargetedNormRatio(NormRatio):
    """Targeted tables: ``mean L2 (numerator) / mean L2 (denominator)`` over ``scenario`` -- ``"average"``:
    the (image, target) pairs both attacks made adversarial; ``"least_likely"``: per image, its largest norm
    over the targets, on the images both attacks took to every target. The 95 % interval is a paired
    bootstrap over images (each image's pairs resampled together: its targets are not independent); the
    verdict as :class:`NormRatio`'s."""

    scenario: str = "average"

    def evaluate(self, rows: Mapping[Key, AttackResult]) -> Verdict:
        if self.numerator not in rows or self.denominator not in rows:
            return Verdict(self.claim, UNDECIDED, "a row it needs did not run", {})
        per = _per_image(_targeted_pairs(rows[self.numerator], rows[self.denominator]), self.scenario)
        per = per[per["ok_a"] & per["ok_b"]]
        if len(per) < 2:
            return Verdict(self.claim, UNDECIDED, f"{len(per)} images both attacks made adversarial", {})
        r = paired_ratio_interval(per["l2_a"].to_numpy(), per["l2_b"].to_numpy())
        v, bound = self._judged(r)
        pairs = int(per["pairs"].sum())
        over = f"{pairs} pairs of {r.n} images" if self.scenario == "average" else f"{r.n} images"
        return Verdict(self.claim, v, f"mean-L2 ratio {r.ratio:.3f} [{r.low:.3f}, {r.high:.3f}] over "
                                      f"{_SCENARIO[self.scenario]}: {over}, bootstrap over images (claim: {bound})",
                       {"ratio": r.ratio, "low": r.low, "high": r.high, "n": r.n, "pairs": pairs})


@dataclass(frozen=True)
class SuccessGap:
    """Targeted tables: ``worse`` takes fewer images to every one of their targets (the "least likely"
    success) than ``better``, on the images both ran on: an exact McNemar test; holds when p < 0.05 favours
    ``better``, contradicted when p < 0.05 favours ``worse``."""

    claim: str
    worse: Key
    better: Key
    dataset: str = "mnist"

    def evaluate(self, rows: Mapping[Key, AttackResult]) -> Verdict:
        if self.worse not in rows or self.better not in rows:
            return Verdict(self.claim, UNDECIDED, "a row it needs did not run", {})
        per = _per_image(_targeted_pairs(rows[self.better], rows[self.worse]), "least_likely")
        if per.empty:
            return Verdict(self.claim, UNDECIDED, "no correctly classified image", {})
        t = mcnemar_exact(per["ok_a"].to_numpy(), per["ok_b"].to_numpy())
        v = verdict(supports=t.p < 0.05 and t.difference > 0, against=t.p < 0.05 and t.difference < 0)
        share = (100 * per["ok_b"].mean(), 100 * per["ok_a"].mean())
        return Verdict(self.claim, v, f"every target reached on {share[0]:.1f} % against {share[1]:.1f} % of {t.n} "
                                      f"images ({t.only_b} vs {t.only_a} images, exact McNemar p = {t.p:.2g})",
                       {"worse": share[0] / 100, "better": share[1] / 100, "only_worse": t.only_b,
                        "only_better": t.only_a, "n": t.n, "p": t.p})


Claim = NormRatio | FailureShare | AccuracyGap | SuccessGap  # (TargetedNormRatio is a NormRatio)


def evaluate_findings(claims: tuple[Claim, ...], rows: Mapping[Key, AttackResult],
                      dataset: str | None = None) -> list[Verdict]:
    """The verdict of every claim on the run's ``rows``; with ``dataset``, only of the claims the reference
    states for that dataset (its numbers are that dataset's: an MNIST claim says nothing about CIFAR-10)."""
    return [c.evaluate(rows) for c in claims if dataset is None or applies(c, dataset)]


def applies(claim: Claim, dataset: str) -> bool:
    """Whether ``claim`` (stated for ``claim.dataset``) is tested on ``dataset``: the same dataset or a subset
    of it named ``<dataset>-...`` (``mnist-5k`` is MNIST)."""
    return dataset == claim.dataset or dataset.startswith(claim.dataset + "-")


def findings_markdown(verdicts: list[Verdict], untested: tuple[Claim, ...] = ()) -> list[str]:
    """The findings section of an output: one bullet per claim, its verdict and its evidence; ``untested``
    claims (stated for another dataset) are named in one line."""
    if untested and not verdicts:
        sets = sorted({c.dataset for c in untested})
        return ["", f"The reference's findings ({len(untested)}) are stated for {', '.join(sets)}: not tested on "
                    "this dataset."]
    if not verdicts:
        return []
    mark = {HOLDS: "holds", CONTRADICTED: "**contradicted**", UNDECIDED: "not resolved at this sample size"}
    return ["", "## The reference's findings on this run", ""] + [
        f"- {v.claim}: {mark[v.verdict]} — {v.evidence}" for v in verdicts]
